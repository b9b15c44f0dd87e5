"""Split and merge while the producer writes (emulator, real HTTP): every change read once.

Issue 18, finding 1: after a split, moto routed writes to the closed parent and the local
runner, having finished the parent, lost them silently. On the emulator writes follow the
open shards, so the runner reads every change exactly once across parents and children.
"""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
from changelake_consumer.bootstrap import build_local as build
from changelake_consumer.settings import ConsumerSettings
from changelake_producer.bootstrap import produce
from changelake_producer.service import ProduceSummary
from changelake_testsupport.fakes import RecordingMetrics
from changelake_testsupport.resharding import merge, open_shards, split_in_half

pytestmark = pytest.mark.e2e


def _rows(bucket: str) -> list[dict[str, Any]]:
    s3 = boto3.client("s3")
    rows: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="changes/"):
        for obj in page.get("Contents", []):
            data = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            rows.extend(pq.read_table(io.BytesIO(data)).to_pylist())
    return rows


def _wait_forwarded(emulator: Any, count: int) -> None:
    deadline = time.monotonic() + 60
    while emulator.stats().records_forwarded < count:
        assert time.monotonic() < deadline, "the producer stalled"
        time.sleep(0.05)


def test_split_and_merge_during_produce_every_change_read_once(emulator: Any) -> None:
    settings = ConsumerSettings(
        flush_age_s=0.3, shard_sync_s=0.2, get_records_per_s=5, checkpoint_table="reshard-ckpt"
    )
    stream = settings.stream_name
    kinesis = boto3.client("kinesis")
    metrics = RecordingMetrics()
    consumer = build(settings)
    consumer._metrics = metrics
    summary: list[ProduceSummary] = []
    producer = threading.Thread(
        target=lambda: summary.append(produce(count=400, rate=200, seed=18, settings=settings))
    )
    consumer.start()
    try:
        producer.start()
        # WHEN shard 0 is split once a quarter of the changes are on the stream ...
        _wait_forwarded(emulator, 100)
        first = open_shards(kinesis, stream)[0]
        children = split_in_half(kinesis, stream, first)
        # ... and its two children are merged again at half, while writes go on
        _wait_forwarded(emulator, 200)
        merge(kinesis, stream, *children)
        producer.join(timeout=60)
        assert summary, "producer did not finish"
        total = summary[0].total
        deadline = time.monotonic() + 60
        while len(_rows(settings.lake_bucket)) < total and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1.0)  # anything read twice would arrive now
    finally:
        consumer.stop()
    assert consumer.failure is None
    # THEN the split happened mid-run (records on the parent, the children and the merged shard)
    rows = _rows(settings.lake_bucket)
    by_shard: dict[str, int] = {}
    for row in rows:
        by_shard[row["shard_id"]] = by_shard.get(row["shard_id"], 0) + 1
    shards = {s["ShardId"]: s for s in kinesis.list_shards(StreamName=stream)["Shards"]}
    merged = next(s for s in shards.values() if s.get("AdjacentParentShardId"))
    assert by_shard.get(first["ShardId"], 0) > 0
    assert all(by_shard.get(c["ShardId"], 0) > 0 for c in children), by_shard
    assert by_shard.get(merged["ShardId"], 0) > 0, by_shard
    # AND every change is in the lake exactly once
    assert len(rows) == total == 400
    assert len({r["event_id"] for r in rows}) == total
    # AND parents finished before their children started; nothing landed beyond a shard's end
    history = consumer.history
    for sid, shard in shards.items():
        for parent in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")):
            if parent:
                assert history.index(("end", parent)) < history.index(("start", sid))
    assert metrics.counters["records_beyond_shard_end"] == 0
