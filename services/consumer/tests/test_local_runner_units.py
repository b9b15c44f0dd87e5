"""Local runner against an in-memory stream: shard-end accounting (no network)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest
from changelake.events import Position
from changelake_consumer.local_runner import LocalConsumer
from changelake_consumer.ports import Page, ShardInfo
from changelake_consumer.settings import ConsumerSettings
from changelake_testsupport.fakes import (
    InMemoryCheckpointStore,
    InMemoryObjectStore,
    RecordingMetrics,
)
from changelake_testsupport.person_changes import change

pytestmark = pytest.mark.unit


class MemoryStream:
    """Shards as lists of records; ``closed`` shards end (null iterator) after their last one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: dict[str, list[tuple[bytes, str]]] = {}
        self.parents: dict[str, tuple[str, ...]] = {}
        self.closed: set[str] = set()

    def add_shard(self, sid: str, parents: tuple[str, ...] = ()) -> None:
        with self.lock:
            self.records[sid] = []
            self.parents[sid] = parents

    def put(self, sid: str, data: bytes, seq: int) -> None:
        with self.lock:
            self.records[sid].append((data, str(seq)))

    def list_shards(self) -> list[ShardInfo]:
        with self.lock:
            return [
                ShardInfo(
                    sid,
                    self.parents[sid],
                    (recs[-1][1] if recs else "0") if sid in self.closed else None,
                )
                for sid, recs in self.records.items()
            ]

    def iterator(self, shard_id: str, after: str | None, initial_position: str) -> str:
        del initial_position
        return f"{shard_id}|{after or 0}"

    def get_records(self, shard_id: str, iterator: str, limit: int) -> Page:
        after = int(iterator.split("|")[1])
        with self.lock:
            page = [(d, s) for d, s in self.records[shard_id] if int(s) > after][:limit]
            last = int(page[-1][1]) if page else after
            ended = shard_id in self.closed and all(
                int(s) <= last for _, s in self.records[shard_id]
            )
        records = [(d, Position(shard_id, s, None)) for d, s in page]
        return Page(records, None if ended else f"{shard_id}|{last}", 0)


def _settings() -> ConsumerSettings:
    return ConsumerSettings(
        stream_name="s",
        lake_bucket="b",
        flush_age_s=0.05,
        get_records_per_s=5.0,
        shard_sync_s=0.05,
        write_backoff_s=0.0,
    )


def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_local_runner_reports_records_beyond_finished_shard_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = MemoryStream()
    stream.add_shard("parent")
    for i in range(3):
        stream.put("parent", change(i)[0], i + 1)
    stream.closed.add("parent")
    stream.add_shard("child", ("parent",))
    checkpoints = InMemoryCheckpointStore()
    metrics = RecordingMetrics()
    consumer = LocalConsumer(_settings(), stream, checkpoints, InMemoryObjectStore(), metrics)
    consumer.start()
    try:
        # GIVEN the closed parent was read to its end and finished at ending sequence 3
        _wait(lambda: ("end", "parent") in consumer.history)
        assert checkpoints.finished_end("parent") == "3"
        assert metrics.counters["records_beyond_shard_end"] == 0
        # WHEN a record still lands on the finished parent (moto's split routing bug)
        with caplog.at_level(logging.ERROR):
            stream.put("parent", change(3)[0], 4)
            # THEN the runner says so loudly: an error line and a metric, once
            _wait(lambda: metrics.counters["records_beyond_shard_end"] == 1)
            time.sleep(0.2)
    finally:
        consumer.stop()
    assert metrics.counters["records_beyond_shard_end"] == 1
    errors = [r for r in caplog.records if "beyond a finished shard" in r.getMessage()]
    assert len(errors) == 1
    assert (errors[0].shard_id, errors[0].recorded_end, errors[0].ending_sequence) == (  # type: ignore[attr-defined]
        "parent",
        "3",
        "4",
    )
    assert consumer.failure is None
