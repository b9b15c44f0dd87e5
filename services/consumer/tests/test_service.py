"""ShardProcessor: durable Parquet, safe checkpoints, idempotent replay, quarantine, failures."""

from __future__ import annotations

import base64
import io

import orjson
import pyarrow.parquet as pq
import pytest
from changelake.events import Position
from changelake_consumer.ports import LeaseLostError
from changelake_consumer.service import BatchPolicy, ShardProcessor, WriteError
from changelake_lake import layout
from changelake_testsupport import golden
from changelake_testsupport.fakes import InMemoryObjectStore, RecordingMetrics
from changelake_testsupport.person_changes import SHARD, T0, change, changes, event_id_of, seq

pytestmark = pytest.mark.unit
HOUR_US = 3_600_000_000


class Clock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _processor(
    store: InMemoryObjectStore,
    metrics: RecordingMetrics | None = None,
    clock: Clock | None = None,
    start_after: str | None = None,
    **policy: int | float,
) -> ShardProcessor:
    return ShardProcessor(
        SHARD,
        store,
        metrics or RecordingMetrics(),
        BatchPolicy(**{"max_age_s": 5.0, "write_backoff_s": 0.01, **policy}),  # type: ignore[arg-type]
        clock=clock or Clock(),
        start_after=start_after,
        sleep=lambda _s: None,
    )


def _rows(store: InMemoryObjectStore) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for key in store.list("changes/"):
        rows.extend(pq.read_table(io.BytesIO(store.objects[key])).to_pylist())
    return rows


def test_processor_flush_all_writes_one_object_with_deterministic_key() -> None:
    store = InMemoryObjectStore()
    proc = _processor(store)
    assert proc.process(changes(0, 10)) is None  # nothing durable yet
    assert proc.flush_all() == seq(9)
    assert list(store.objects) == [
        layout.change_object_key("persons", layout.partition_for_us(T0), SHARD, seq(0), seq(9))
    ]
    rows = _rows(store)
    assert [r["event_id"] for r in rows] == [event_id_of(i) for i in range(10)]
    assert {r["sequence_number"] for r in rows} == {seq(i) for i in range(10)}


def test_processor_flushes_on_rows() -> None:
    store = InMemoryObjectStore()
    metrics = RecordingMetrics()
    proc = _processor(store, metrics, max_rows=4)
    checkpoint = proc.process(changes(0, 10))
    assert len(store.objects) == 2  # rows 0-3 and 4-7 flushed, 8-9 buffered
    assert checkpoint == seq(7)
    assert metrics.counters["rows_written"] == 8
    assert metrics.counters["records_in"] == 10


def test_processor_flushes_on_age() -> None:
    store = InMemoryObjectStore()
    clock = Clock()
    proc = _processor(store, clock=clock, max_age_s=2.0)
    assert proc.process(changes(0, 3)) is None
    clock.t = 1.9
    assert proc.process([]) is None
    clock.t = 2.0
    assert proc.process([]) == seq(2)
    assert len(store.objects) == 1


def test_processor_checkpoint_is_before_oldest_unflushed_record() -> None:
    # GIVEN two partition buffers: hour A opened at t=0 (record 0), hour B at t=5 (record 1)
    store = InMemoryObjectStore()
    clock = Clock()
    proc = _processor(store, clock=clock, max_age_s=10.0)
    assert proc.process([change(0, event_time_us=T0)]) is None
    clock.t = 5.0
    assert proc.process([change(1, event_time_us=T0 + HOUR_US)]) is None
    # WHEN hour A (records 0 and 2) is flushed by age and B (record 1) is not
    clock.t = 10.0
    checkpoint = proc.process([change(2, event_time_us=T0 + 2)])
    # THEN the checkpoint stops just before record 1, the oldest unflushed one
    assert checkpoint == seq(0)
    assert len(store.objects) == 1
    # WHEN B is flushed too, everything seen is durable
    clock.t = 15.0
    assert proc.process([]) == seq(2)
    assert len(store.objects) == 2


def test_processor_replay_from_older_checkpoint_creates_no_new_objects() -> None:
    store = InMemoryObjectStore()
    proc = _processor(store, max_rows=4)
    proc.process(changes(0, 10))
    proc.flush_all()
    before = dict(store.objects)
    puts = len(store.puts)
    # WHEN a new processor replays the whole range with different cut points
    again = _processor(store, max_rows=3)
    again.process(changes(0, 10))
    assert again.flush_all() == seq(9)
    # THEN nothing was written and no row is duplicated
    assert len(store.puts) == puts
    assert store.objects == before
    assert sorted(r["sequence_number"] for r in _rows(store)) == [seq(i) for i in range(10)]


def test_processor_crash_between_write_and_checkpoint_loses_nothing() -> None:
    store = InMemoryObjectStore()
    saved: str | None = None
    proc = _processor(store, max_rows=5)
    saved = proc.process(changes(0, 5))  # durable, checkpoint returned = seq(4)
    assert saved == seq(4)
    proc.process(changes(5, 10))  # rows 5..9 written ...
    # ... and the process dies before saving seq(9) as checkpoint.
    restarted = _processor(store, max_rows=5, start_after=saved)
    checkpoint = restarted.process(changes(5, 13))
    assert restarted.flush_all() == seq(12)
    assert checkpoint is not None
    rows = _rows(store)
    assert sorted(r["sequence_number"] for r in rows) == [seq(i) for i in range(13)]
    assert len({r["event_id"] for r in rows}) == 13


def test_processor_partial_overlap_writes_only_missing_rows() -> None:
    store = InMemoryObjectStore()
    proc = _processor(store)
    proc.process(changes(0, 6))
    proc.flush_all()
    again = _processor(store)
    again.process(changes(3, 9))
    again.flush_all()
    rows = _rows(store)
    assert sorted(r["sequence_number"] for r in rows) == [seq(i) for i in range(9)]
    assert len(store.objects) == 2
    assert (
        layout.change_object_key("persons", layout.partition_for_us(T0), SHARD, seq(6), seq(8))
        in store.objects
    )


def test_processor_quarantines_every_malformed_fixture_and_moves_on() -> None:
    store = InMemoryObjectStore()
    metrics = RecordingMetrics()
    proc = _processor(store, metrics)
    malformed = golden.load_malformed()
    batch = [change(0)]
    for i, fixture in enumerate(malformed, start=1):
        batch.append((fixture.raw, Position(SHARD, seq(i), T0)))
    batch.append(change(len(malformed) + 1))
    proc.process(batch)
    assert proc.flush_all() == seq(len(malformed) + 1)
    lines = [
        orjson.loads(line)
        for key in store.list("errors/consumer/")
        for line in store.objects[key].splitlines()
    ]
    assert len(lines) == len(malformed)
    by_seq = {line["sequence_number"]: line for line in lines}
    for i, fixture in enumerate(malformed, start=1):
        line = by_seq[seq(i)]
        assert fixture.reason in line["reason"], fixture.name
        assert base64.b64decode(line["data_base64"]) == fixture.raw
        assert line["shard_id"] == SHARD
        assert line["arrival_time"].startswith("2026-11-27T10:00")
    assert metrics.counters["decode_failures"] == len(malformed)
    assert len(_rows(store)) == 2


def test_processor_quarantine_replay_does_not_duplicate() -> None:
    store = InMemoryObjectStore()
    bad = [(b"not json", Position(SHARD, seq(i), T0)) for i in range(3)]
    _processor(store).process(bad)
    keys = list(store.objects)
    _processor(store).process(bad)
    assert list(store.objects) == keys
    assert len(store.puts) == 1


def test_processor_write_failure_raises_after_retries_and_keeps_buffer() -> None:
    store = InMemoryObjectStore()
    metrics = RecordingMetrics()
    # backoff 0.01, 0.02, 0.04 …: within 0.035 s two retries fit (0.03), a third does not
    proc = _processor(store, metrics, write_timeout_s=0.035)
    proc.process(changes(0, 4))
    store.fail_next = 3
    with pytest.raises(WriteError):
        proc.flush_all()
    assert store.objects == {}
    assert proc.safe_checkpoint() is None
    assert metrics.counters["write_retries"] == 2
    # the batch is retried later and lands once
    assert proc.flush_all() == seq(3)
    assert len(_rows(store)) == 4


def test_processor_write_recovers_within_retries() -> None:
    store = InMemoryObjectStore()
    proc = _processor(store, write_timeout_s=0.035)
    proc.process(changes(0, 2))
    store.fail_next = 2
    assert proc.flush_all() == seq(1)
    assert len(_rows(store)) == 2


def test_processor_write_budget_counts_elapsed_time_not_only_attempts() -> None:
    # issue 18, finding 7: each attempt that itself takes long (an SDK retrying inside it)
    # spends the budget; the writer stops once the budget is gone, however few attempts
    clock = Clock()
    store = InMemoryObjectStore()
    slow_failures = 0

    def slow_put(key: str, data: bytes, content_type: str = "") -> None:
        nonlocal slow_failures
        slow_failures += 1
        clock.t += 45.0  # one call retried for 45 s by the client
        raise OSError("S3 unavailable")

    store.put = slow_put  # type: ignore[method-assign]
    proc = _processor(store, clock=clock, write_timeout_s=60.0, write_backoff_s=0.5)
    proc.process(changes(0, 2))
    with pytest.raises(WriteError, match=r"failed 2 times in 90.0 s \(write budget 60 s\)"):
        proc.flush_all()
    assert slow_failures == 2


def test_consumer_s3_writes_do_not_retry_inside_the_sdk() -> None:
    from changelake.adapters.s3_store import write_client

    retries = write_client().meta.config.retries
    assert retries == {"mode": "standard", "total_max_attempts": 1}


def test_processor_drop_writes_nothing_and_keeps_checkpoint() -> None:
    store = InMemoryObjectStore()
    proc = _processor(store, start_after=seq(0))
    proc.process(changes(1, 5))
    proc.drop()
    assert store.objects == {}
    assert proc.buffered_rows == 0


def test_processor_bounds_open_partitions() -> None:
    store = InMemoryObjectStore()
    proc = _processor(store, max_open_partitions=2)
    batch = [change(i, event_time_us=T0 + i * HOUR_US) for i in range(4)]
    assert proc.process(batch) == seq(1)
    assert len(store.objects) == 2


def test_processor_partitions_by_event_time() -> None:
    store = InMemoryObjectStore()
    proc = _processor(store)
    proc.process([change(0, event_time_us=T0), change(1, event_time_us=T0 + HOUR_US)])
    proc.flush_all()
    hours = sorted(layout.parse_change_object_key(k).partition.hour for k in store.objects)  # type: ignore[union-attr]
    assert hours == ["10", "11"]


class Fence:
    """A write fence whose lease can be lost before the n-th check (ADR 0043)."""

    def __init__(self, lost_at: int | None = None) -> None:
        self.lost_at = lost_at
        self.checks = 0

    def __call__(self) -> None:
        self.checks += 1
        if self.lost_at is not None and self.checks >= self.lost_at:
            raise LeaseLostError("another worker owns the shard")


def _fenced(store: InMemoryObjectStore, fence: Fence, metrics: RecordingMetrics) -> ShardProcessor:
    return ShardProcessor(
        SHARD,
        store,
        metrics,
        BatchPolicy(write_backoff_s=0.01),
        clock=Clock(),
        sleep=lambda _s: None,
        fence=fence,
    )


def test_a_fenced_processor_checks_the_lease_before_and_after_every_put() -> None:
    store, fence, metrics = InMemoryObjectStore(), Fence(), RecordingMetrics()
    proc = _fenced(store, fence, metrics)
    proc.process(changes(0, 4))
    assert proc.flush_all() == seq(3)
    assert len(_rows(store)) == 4
    assert fence.checks == 2
    assert "writes_fenced" not in metrics.counters


def test_a_processor_that_lost_its_lease_writes_nothing_and_keeps_its_checkpoint() -> None:
    # the stalled owner woke up after another worker took the shard over: no PUT at all
    store, fence, metrics = InMemoryObjectStore(), Fence(lost_at=1), RecordingMetrics()
    proc = _fenced(store, fence, metrics)
    proc.process(changes(0, 4))
    with pytest.raises(LeaseLostError):
        proc.flush_all()
    assert store.objects == {}
    assert proc.safe_checkpoint() is None
    assert metrics.counters["writes_fenced"] == 1


def test_a_lease_lost_during_the_put_is_counted_as_a_possible_duplicate() -> None:
    store, fence, metrics = InMemoryObjectStore(), Fence(lost_at=2), RecordingMetrics()
    proc = _fenced(store, fence, metrics)
    proc.process(changes(0, 4))
    with pytest.raises(LeaseLostError):
        proc.flush_all()
    assert len(_rows(store)) == 4  # written: the new owner may have listed before it landed
    assert metrics.counters["writes_after_lease_lost"] == 1


def test_a_failing_fence_is_retried_like_a_failing_put() -> None:
    # the lease table throttled: one more attempt within the write budget, then the PUT
    store, metrics = InMemoryObjectStore(), RecordingMetrics()
    calls = 0

    def throttled_once() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("ProvisionedThroughputExceededException")

    proc = ShardProcessor(
        SHARD,
        store,
        metrics,
        BatchPolicy(write_backoff_s=0.01),
        sleep=lambda _s: None,
        fence=throttled_once,
    )
    proc.process(changes(0, 2))
    assert proc.flush_all() == seq(1)
    assert len(_rows(store)) == 2
    assert metrics.counters["write_retries"] == 1
