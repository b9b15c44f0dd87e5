"""Local runner against moto over real HTTP: resume, replay, poison records, resharding, lag."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable, Iterator

import boto3
import orjson
import pyarrow.parquet as pq
import pytest
from changelake.events import Position
from changelake_consumer.adapters.dynamodb_checkpoints import DynamoDBCheckpointStore
from changelake_consumer.bootstrap import build_local as build
from changelake_consumer.local_runner import LocalConsumer
from changelake_consumer.settings import ConsumerSettings
from changelake_testsupport import golden
from changelake_testsupport.fakes import RecordingMetrics
from changelake_testsupport.person_changes import change, event_id_of

pytestmark = pytest.mark.aws
STREAM = "changelake-test"
BUCKET = "lake-test"


def _settings(**overrides: object) -> ConsumerSettings:
    values: dict[str, object] = {
        "stream_name": STREAM,
        "lake_bucket": BUCKET,
        "checkpoint_table": "ckpt-test",
        "flush_age_s": 0.2,
        "get_records_per_s": 5.0,
        "shard_sync_s": 0.2,
        "write_backoff_s": 0.0,
    }
    values.update(overrides)
    return ConsumerSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def stream(aws_endpoint: str) -> Iterator[object]:
    """A one-shard stream and the lake bucket on the moto server."""
    kinesis = boto3.client("kinesis")
    kinesis.create_stream(StreamName=STREAM, ShardCount=1)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return kinesis


def _put(kinesis: object, records: list[tuple[bytes, Position]], key: str = "pk") -> None:
    for i, (data, _pos) in enumerate(records):
        kinesis.put_record(StreamName=STREAM, Data=data, PartitionKey=f"{key}-{i}")  # type: ignore[attr-defined]


def _objects(prefix: str) -> dict[str, bytes]:
    s3 = boto3.client("s3")
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        for o in page.get("Contents", [])
    ]
    return {k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys}


def _rows() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for data in _objects("changes/").values():
        rows.extend(pq.read_table(io.BytesIO(data)).to_pylist())
    return rows


def _wait(
    predicate: Callable[[], bool],
    timeout: float = 20.0,
    on_timeout: Callable[[], object] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"condition not reached in time: {on_timeout() if on_timeout else ''}")


def _run(settings: ConsumerSettings, metrics: RecordingMetrics | None = None) -> LocalConsumer:
    consumer = build(settings)
    if metrics is not None:
        consumer._metrics = metrics
    consumer.start()
    return consumer


def test_local_runner_writes_every_change_and_resumes_after_restart(stream: object) -> None:
    settings = _settings()
    metrics = RecordingMetrics()
    consumer = _run(settings, metrics)
    try:
        _put(stream, [change(i) for i in range(20)])
        _wait(lambda: len(_rows()) == 20)
    finally:
        consumer.stop()
    assert consumer.failure is None
    assert sorted(r["event_id"] for r in _rows()) == sorted(
        str(change(i)[0] and event_id_of(i)) for i in range(20)
    )
    assert "lag_ms" in metrics.gauges
    shard = boto3.client("kinesis").list_shards(StreamName=STREAM)["Shards"][0]["ShardId"]
    store = DynamoDBCheckpointStore(settings.checkpoint_table, STREAM)
    checkpoint = store.load(shard)
    assert checkpoint is not None
    objects = set(_objects("changes/"))
    # WHEN the consumer restarts and new changes arrive
    again = _run(settings)
    try:
        _put(stream, [change(i) for i in range(20, 25)], key="more")
        _wait(lambda: len(_rows()) == 25)
    finally:
        again.stop()
    # THEN it resumed after the checkpoint: the old objects are untouched, 5 new rows only
    assert objects < set(_objects("changes/"))
    assert len({r["event_id"] for r in _rows()}) == 25


def test_local_runner_replay_from_older_checkpoint_creates_nothing_new(stream: object) -> None:
    settings = _settings()
    consumer = _run(settings)
    try:
        _put(stream, [change(i) for i in range(12)])
        _wait(lambda: len(_rows()) == 12)
    finally:
        consumer.stop()
    before = _objects("changes/")
    shard = boto3.client("kinesis").list_shards(StreamName=STREAM)["Shards"][0]["ShardId"]
    store = DynamoDBCheckpointStore(settings.checkpoint_table, STREAM)
    # GIVEN the checkpoint moved back to the 3rd record (an older checkpoint)
    first_seqs = sorted((r["sequence_number"] for r in _rows()), key=int)
    store.save(shard, str(first_seqs[2]))
    replay = _run(settings)
    try:
        _wait(lambda: store.load(shard) == str(first_seqs[-1]))
    finally:
        replay.stop()
    # THEN no object was added or changed and no row is duplicated
    assert _objects("changes/") == before
    assert len(_rows()) == 12


def test_local_runner_poison_records_go_to_errors_and_shard_moves_on(stream: object) -> None:
    malformed = golden.load_malformed()
    consumer = _run(_settings())
    try:
        batch: list[tuple[bytes, Position]] = [change(0)]
        batch += [(f.raw or b"", f.position) for f in malformed if f.raw]
        batch.append(change(1))
        _put(stream, batch)
        _wait(lambda: len(_rows()) == 2)
        _wait(
            lambda: (
                sum(len(v.splitlines()) for v in _objects("errors/consumer/").values())
                == len([f for f in malformed if f.raw])
            )
        )
    finally:
        consumer.stop()
    lines = [
        orjson.loads(line) for v in _objects("errors/consumer/").values() for line in v.splitlines()
    ]
    reasons = {line["data_base64"]: line["reason"] for line in lines}
    for fixture in malformed:
        if fixture.raw:
            assert fixture.reason in reasons[base64.b64encode(fixture.raw).decode()], fixture.name


@pytest.fixture
def open_shard_routing() -> None:
    """The emulator's Kinesis resharding fidelity (moto alone routes to closed parents).

    The moto server runs in this process, so patching its model patches the server.
    """
    from changelake_emulator.kinesis_resharding import install

    install()


@pytest.mark.usefixtures("open_shard_routing")
def test_local_runner_follows_split_then_merge_parents_first(stream: object) -> None:
    kinesis = boto3.client("kinesis")
    consumer = _run(_settings())
    try:
        _put(kinesis, [change(i) for i in range(10)], key="a")
        _wait(lambda: len({r["event_id"] for r in _rows()}) == 10)
        parent = kinesis.list_shards(StreamName=STREAM)["Shards"][0]
        middle = str((int(parent["HashKeyRange"]["EndingHashKey"]) + 1) // 2)
        kinesis.split_shard(
            StreamName=STREAM, ShardToSplit=parent["ShardId"], NewStartingHashKey=middle
        )
        _put(kinesis, [change(i) for i in range(10, 20)], key="b")
        _wait(lambda: len({r["event_id"] for r in _rows()}) == 20)
        children = [
            s for s in kinesis.list_shards(StreamName=STREAM)["Shards"] if s.get("ParentShardId")
        ]
        assert len(children) == 2
        ordered = sorted(children, key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]))
        kinesis.merge_shards(
            StreamName=STREAM,
            ShardToMerge=ordered[0]["ShardId"],
            AdjacentShardToMerge=ordered[1]["ShardId"],
        )
        _put(kinesis, [change(i) for i in range(20, 30)], key="c")
        _wait(
            lambda: len({r["event_id"] for r in _rows()}) == 30,
            on_timeout=lambda: (
                consumer.history,
                consumer.failure,
                kinesis.list_shards(StreamName=STREAM)["Shards"],
            ),
        )
        _wait(lambda: sum(1 for kind, _ in consumer.history if kind == "end") == 3)
    finally:
        consumer.stop()
    assert consumer.failure is None
    # every change is in the lake exactly once (parents keep their records, as in Kinesis)
    assert sorted(r["event_id"] for r in _rows()) == sorted(event_id_of(i) for i in range(30))
    shards = {s["ShardId"]: s for s in kinesis.list_shards(StreamName=STREAM)["Shards"]}
    history = consumer.history
    for sid, shard in shards.items():
        for parent_id in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")):
            if parent_id:
                assert history.index(("end", parent_id)) < history.index(("start", sid))
