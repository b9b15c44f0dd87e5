"""The produce loop against an in-memory writer: counts, batching, ordering, pacing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from changelake_producer.generator import Mix, Operation
from changelake_producer.service import TableMissingError, produce

pytestmark = pytest.mark.unit


class FakeWriter:
    """Applies operations to a dict and records the calls."""

    def __init__(self, missing: bool = False) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, list[Operation]]] = []
        self.missing = missing

    def check(self) -> None:
        if self.missing:
            raise TableMissingError("no table")

    def write_batch(self, operations: Sequence[Operation]) -> None:
        assert 1 <= len(operations) <= 25
        assert len({op.pk for op in operations}) == len(operations)
        self.calls.append(("batch", list(operations)))
        for op in operations:
            if op.kind == "insert":
                self.items[op.pk] = dict(op.item or {})
            else:
                del self.items[op.pk]

    def update(self, operation: Operation) -> None:
        assert operation.pk in self.items
        self.calls.append(("update", [operation]))
        self.items[operation.pk].update(operation.changes or {})


class FakeClock:
    """A clock that only moves when slept."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now += seconds


def test_produce_writes_exactly_count_changes_when_count_given() -> None:
    writer = FakeWriter()
    summary = produce(writer, count=300, mix=Mix(0.5, 0.3, 0.2), seed=4, keep_operations=True)
    assert summary.total == 300
    assert sum(len(ops) for _, ops in writer.calls) == 300
    assert (summary.inserts, summary.updates, summary.deletes) == (
        sum(op.kind == "insert" for op in summary.operations),
        sum(op.kind == "update" for op in summary.operations),
        sum(op.kind == "delete" for op in summary.operations),
    )
    # The table ends exactly as the generator believes: live pks and their images.
    assert sorted(writer.items) == summary.live_pks
    last = {op.pk: op for op in summary.operations}
    for pk, item in writer.items.items():
        assert item == last[pk].item


def test_produce_keeps_generation_order_when_writing() -> None:
    writer = FakeWriter()
    summary = produce(writer, count=200, seed=9, keep_operations=True)
    written = [op for _, ops in writer.calls for op in ops]
    assert written == summary.operations


def test_produce_paces_to_rate_when_rate_given() -> None:
    clock = FakeClock()
    summary = produce(FakeWriter(), count=100, rate=50, seed=1, clock=clock, sleep=clock.sleep)
    # 100 changes at 50/s: the last batch starts near 2 s; the clock only moved by sleeping.
    assert 1.7 <= clock.slept <= 2.0
    assert summary.elapsed_s == pytest.approx(clock.slept)


def test_produce_stops_after_duration_when_duration_given() -> None:
    clock = FakeClock()
    summary = produce(FakeWriter(), duration=1.0, rate=20, seed=1, clock=clock, sleep=clock.sleep)
    assert summary.total == 20


def test_produce_uses_small_batches_when_rate_is_low() -> None:
    writer = FakeWriter()
    clock = FakeClock()
    produce(writer, count=20, rate=10, mix=Mix(1, 0, 0), seed=1, clock=clock, sleep=clock.sleep)
    assert all(len(ops) <= 2 for _, ops in writer.calls)


def test_produce_raises_table_missing_when_writer_says_so() -> None:
    with pytest.raises(TableMissingError):
        produce(FakeWriter(missing=True), count=1)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"count": -1}, {"count": 1, "rate": 0}, {"count": 1, "batch_size": 26}],
)
def test_produce_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"count|rate|batch_size|duration"):
        produce(FakeWriter(), **kwargs)


def test_summary_to_dict_lists_live_pks() -> None:
    summary = produce(FakeWriter(), count=10, mix=Mix(1, 0, 0), seed=2)
    out = summary.to_dict()
    assert out["total"] == 10
    assert out["live"] == 10
    assert out["live_pks"] == summary.live_pks
    assert "live_pks" not in summary.to_dict(with_pks=False)


def test_rich_progress_draws_on_the_given_console_when_producing() -> None:
    import io

    from changelake_producer.progress import RichProgress
    from rich.console import Console

    buffer = io.StringIO()
    bar = RichProgress(console=Console(file=buffer, force_terminal=False, width=100))
    produce(FakeWriter(), count=30, seed=1, progress=bar)
    assert "30/30" in buffer.getvalue()
