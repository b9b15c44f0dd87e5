"""Fault injection for the streaming destination: duplicates, reordering, TTL identity, ms/µs.

docs/aws-behaviour.md: Kinesis Data Streams for DynamoDB delivers at least once and out of
order, TTL deletes carry the DynamoDB service identity, and real captures mix 13- and 16-digit
timestamps. The emulator is exactly-once and in order unless asked otherwise; these faults let
tests prove the consumer copes with what AWS really does.

Every decision is a pure function of ``(seed, ordinal, copy)``, where *ordinal* is the record's
position in the table's DynamoDB stream. The same seed over the same sequence of changes
therefore yields the same duplicates, the same TTL marks and the same emission order, however
the records happen to be batched by the polling loop. The only timing-dependent step is
:meth:`FaultInjector.drain`, which releases an incomplete reorder window when the source is idle.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

Precision = Literal["MILLISECOND", "MICROSECOND"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Which faults to inject; everything off by default, deterministic by ``seed``."""

    seed: int
    duplicate_rate: float = 0
    reorder_window: int = 0
    ttl_rate: float = 0
    precision_mix: bool = False

    def __post_init__(self) -> None:
        for name in ("duplicate_rate", "ttl_rate"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.reorder_window < 0:
            raise ValueError(f"reorder_window must be >= 0, got {self.reorder_window}")

    @property
    def enabled(self) -> bool:
        """Whether any fault is switched on."""
        return bool(
            self.duplicate_rate or self.reorder_window > 1 or self.ttl_rate or self.precision_mix
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens to one source record."""

    duplicate: bool
    ttl: bool
    precision: Precision | None


@dataclass(frozen=True, slots=True)
class Emission(Generic[T]):
    """One record to put on the stream: its source ordinal, which copy, and the payload."""

    ordinal: int
    copy: int
    item: T


def _draw(seed: int, ordinal: int, salt: str) -> float:
    # Seeding with a string hashes it with SHA-512: stable across runs and platforms.
    return random.Random(f"{seed}:{ordinal}:{salt}").random()


class FaultInjector(Generic[T]):
    """Applies a :class:`FaultConfig` to the ordered sequence of source records.

    ``push`` takes records in stream order and returns those ready to emit; ``drain`` returns
    the rest. Counters record what was injected so tests can check the claims.
    """

    def __init__(self, config: FaultConfig | None) -> None:
        self.config = config
        self._window: list[Emission[T]] = []
        self._window_id: int | None = None
        self._max_emitted = -1
        self.duplicates = 0
        self.ttl_marked = 0
        self.out_of_order = 0
        self.emitted = 0

    def decide(self, ordinal: int, *, is_remove: bool) -> Decision:
        """The faults of the record at ``ordinal`` (pure in seed and ordinal)."""
        cfg = self.config
        if cfg is None:
            return Decision(duplicate=False, ttl=False, precision=None)
        duplicate = cfg.duplicate_rate > 0 and _draw(cfg.seed, ordinal, "dup") < cfg.duplicate_rate
        ttl = is_remove and cfg.ttl_rate > 0 and _draw(cfg.seed, ordinal, "ttl") < cfg.ttl_rate
        precision: Precision | None = None
        if cfg.precision_mix:
            precision = (
                "MICROSECOND" if _draw(cfg.seed, ordinal, "precision") < 0.5 else "MILLISECOND"
            )
        if duplicate:
            self.duplicates += 1
        if ttl:
            self.ttl_marked += 1
        return Decision(duplicate=duplicate, ttl=ttl, precision=precision)

    def push(self, ordinal: int, item: T, *, duplicate: bool) -> list[Emission[T]]:
        """Add one source record (and its duplicate); return whatever is ready, in emit order."""
        copies = [Emission(ordinal, 0, item)]
        if duplicate:
            copies.append(Emission(ordinal, 1, item))
        window = self.config.reorder_window if self.config is not None else 0
        if window <= 1:
            return self._account(copies)
        ready: list[Emission[T]] = []
        window_id = ordinal // window
        if self._window_id is not None and window_id != self._window_id:
            ready.extend(self._release())
        self._window_id = window_id
        self._window.extend(copies)
        if ordinal % window == window - 1:  # last ordinal of the window: it is complete
            ready.extend(self._release())
        return self._account(ready)

    def drain(self) -> list[Emission[T]]:
        """Release an incomplete reorder window (the source went idle)."""
        return self._account(self._release())

    def _release(self) -> list[Emission[T]]:
        if not self._window or self.config is None:
            return []
        seed = self.config.seed
        out = sorted(self._window, key=lambda e: _draw(seed, e.ordinal, f"order{e.copy}"))
        self._window = []
        self._window_id = None
        return out

    def _account(self, emissions: list[Emission[T]]) -> list[Emission[T]]:
        for e in emissions:
            if e.ordinal < self._max_emitted:
                self.out_of_order += 1
            self._max_emitted = max(self._max_emitted, e.ordinal)
        self.emitted += len(emissions)
        return emissions
