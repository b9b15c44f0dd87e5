"""Produce a mix of person changes at a target rate, against a writer port (no AWS here)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from changelake_producer.generator import Mix, Operation, PersonGenerator

MAX_BATCH = 25  # BatchWriteItem's limit
# With a target rate, a batch covers about this much time, so pacing stays smooth.
_BATCH_WINDOW_S = 0.2


class TableMissingError(RuntimeError):
    """The target table does not exist (the message says how to fix it)."""


class ItemWriter(Protocol):
    """Where operations go. Every method returns only once the change is applied, or raises."""

    def check(self) -> None:
        """Raise :class:`TableMissingError` if the table is not there."""
        ...

    def write_batch(self, operations: Sequence[Operation]) -> None:
        """Apply up to 25 inserts/deletes on distinct keys (retrying unprocessed items)."""
        ...

    def update(self, operation: Operation) -> None:
        """Apply one update of an existing item."""
        ...


class Progress(Protocol):
    """Progress display; the rich one writes to stderr."""

    def start(self, total: int | None) -> None:
        """Begin; ``total`` is ``None`` for a duration run."""
        ...

    def advance(self, n: int) -> None:
        """``n`` more changes written."""
        ...

    def stop(self) -> None:
        """End the display."""
        ...


@dataclass(frozen=True, slots=True)
class ProduceSummary:
    """What a run wrote; ``live_pks`` are the persons that exist at the end, sorted."""

    seed: int
    mix: str
    inserts: int
    updates: int
    deletes: int
    elapsed_s: float
    live_pks: list[str]
    operations: list[Operation] = field(default_factory=list, repr=False)

    @property
    def total(self) -> int:
        """Changes written."""
        return self.inserts + self.updates + self.deletes

    @property
    def rate(self) -> float:
        """Achieved changes per second."""
        return self.total / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self, *, with_pks: bool = True) -> dict[str, Any]:
        """Plain data for JSON output."""
        out: dict[str, Any] = {
            "seed": self.seed,
            "mix": self.mix,
            "inserts": self.inserts,
            "updates": self.updates,
            "deletes": self.deletes,
            "total": self.total,
            "elapsed_s": round(self.elapsed_s, 3),
            "rate": round(self.rate, 1),
            "live": len(self.live_pks),
        }
        if with_pks:
            out["live_pks"] = self.live_pks
        return out


def produce(
    writer: ItemWriter,
    *,
    count: int | None = None,
    duration: float | None = None,
    rate: float | None = None,
    mix: Mix | None = None,
    seed: int = 0,
    batch_size: int = MAX_BATCH,
    progress: Progress | None = None,
    keep_operations: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ProduceSummary:
    """Write ``count`` changes (or for ``duration`` seconds) at ``rate``/s (None: flat out).

    Inserts and deletes go in batches of distinct keys; an update flushes the pending batch
    first, so changes reach the table in generation order per key.
    """
    if count is None and duration is None:
        raise ValueError("give a count or a duration")
    if count is not None and count < 0:
        raise ValueError("count must be >= 0")
    if rate is not None and rate <= 0:
        raise ValueError("rate must be > 0")
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be within 1..{MAX_BATCH}")
    writer.check()
    mix = mix or Mix()
    if rate is not None:
        batch_size = max(1, min(batch_size, int(rate * _BATCH_WINDOW_S)))
    generator = PersonGenerator(seed, mix)
    counts = {"insert": 0, "update": 0, "delete": 0}
    kept: list[Operation] = []
    pending: list[Operation] = []
    pending_keys: set[str] = set()
    written = 0
    started = clock()

    def flush() -> None:
        nonlocal written
        if pending:
            writer.write_batch(list(pending))
            written += len(pending)
            if progress is not None:
                progress.advance(len(pending))
            pending.clear()
            pending_keys.clear()

    def pace(generated: int) -> None:
        if rate is not None:
            delay = started + generated / rate - clock()
            if delay > 0:
                sleep(delay)

    def done(generated: int) -> bool:
        if count is not None and generated >= count:
            return True
        if duration is None:
            return False
        # With a rate, the next change's scheduled time decides (batches are built ahead).
        if rate is not None and generated / rate >= duration:
            return True
        return clock() - started >= duration

    if progress is not None:
        progress.start(count)
    generated = 0
    try:
        while not done(generated):
            op = generator.next()
            generated += 1
            counts[op.kind] += 1
            if keep_operations:
                kept.append(op)
            if op.kind == "update":
                flush()
                pace(generated - 1)
                writer.update(op)
                written += 1
                if progress is not None:
                    progress.advance(1)
                continue
            if op.pk in pending_keys:
                flush()  # one batch must not touch a key twice
            if not pending:
                pace(generated - 1)
            pending.append(op)
            pending_keys.add(op.pk)
            if len(pending) >= batch_size:
                flush()
        flush()
    finally:
        if progress is not None:
            progress.stop()
    return ProduceSummary(
        seed=seed,
        mix=str(mix),
        inserts=counts["insert"],
        updates=counts["update"],
        deletes=counts["delete"],
        elapsed_s=clock() - started,
        live_pks=generator.live_pks(),
        operations=kept,
    )
