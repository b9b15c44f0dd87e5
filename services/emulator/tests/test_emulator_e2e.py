"""The emulator over real HTTP: producer → DynamoDB → Kinesis → Firehose → S3 raw prefix."""

from __future__ import annotations

import base64
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote_plus

import boto3
import orjson
import pytest
from changelake import ddb_json
from changelake.events import DecodeFailure, Position, decode_record
from changelake.settings import ChangelakeSettings
from changelake.timeutil import normalize_epoch_us, now_us
from changelake_emulator.bootstrap import bootstrap
from changelake_emulator.emulator import Emulator
from changelake_emulator.faults import FaultConfig
from changelake_lake.layout import partition_for_us
from changelake_producer.bootstrap import produce as produce_changes
from changelake_producer.generator import Mix, Operation
from changelake_testsupport import golden
from changelake_testsupport.records import kinesis_dynamodb_record

pytestmark = pytest.mark.aws

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
SETTINGS = ChangelakeSettings()


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1")


def _wait(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached in time")
        time.sleep(0.1)


def read_stream(
    endpoint: str, expected: int, timeout: float = 30.0
) -> dict[str, list[dict[str, Any]]]:
    """Every record on the stream, per shard in order, once ``expected`` arrived (own iterators)."""
    kinesis = _client("kinesis", endpoint)
    shards = kinesis.list_shards(StreamName=SETTINGS.stream_name)["Shards"]
    iterators = {
        s["ShardId"]: kinesis.get_shard_iterator(
            StreamName=SETTINGS.stream_name, ShardId=s["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for s in shards
    }
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    deadline = time.monotonic() + timeout
    while sum(len(v) for v in out.values()) < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{sum(len(v) for v in out.values())} of {expected} records")
        for shard_id, iterator in iterators.items():
            resp = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            iterators[shard_id] = resp["NextShardIterator"]
            for rec in resp["Records"]:
                out[shard_id].append(
                    {
                        "data": orjson.loads(rec["Data"]),
                        "raw": bytes(rec["Data"]),
                        "partition_key": rec["PartitionKey"],
                        "sequence_number": rec["SequenceNumber"],
                    }
                )
        time.sleep(0.2)
    return out


def _expected(op: Operation, actual: dict[str, Any], precision: str) -> dict[str, Any]:
    """The record the operation must produce, built with the shared golden-shape builder."""
    name = {"insert": "INSERT", "update": "MODIFY", "delete": "REMOVE"}[op.kind]
    ddb = actual["dynamodb"]
    return kinesis_dynamodb_record(
        event_name=name,
        keys=op.key,
        new_image=op.item,
        old_image=op.old,
        event_time_us=normalize_epoch_us(
            ddb["ApproximateCreationDateTime"], ddb.get("ApproximateCreationDateTimePrecision")
        ),
        precision=precision,
        event_id=actual["eventID"],
    )


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    # Set members have no order in DynamoDB: compare images as decoded values.
    out = dict(record)
    ddb = dict(out["dynamodb"])
    for key in ("Keys", "NewImage", "OldImage"):
        if key in ddb:
            ddb[key] = ddb_json.deserialize_image(ddb[key])
    out["dynamodb"] = ddb
    return out


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Emulator]]:
    started: list[Emulator] = []

    def make(**kwargs: Any) -> Emulator:
        kwargs.setdefault("firehose_buffer_seconds", 0.5)
        kwargs.setdefault("firehose_poll_seconds", 0.5)
        emu = Emulator(0, **kwargs)
        started.append(emu)
        return emu.start()

    yield make
    for emu in started:
        emu.stop()


@pytest.mark.parametrize("precision", ["MILLISECOND", "MICROSECOND"])
def test_emulator_puts_exact_kinesis_records_when_producer_writes(
    make_emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch, precision: str
) -> None:
    # GIVEN an emulator at the chosen precision
    emu = make_emulator(precision=precision)
    monkeypatch.setenv("AWS_ENDPOINT_URL", emu.endpoint)
    before = now_us()
    # WHEN the producer writes a seeded mix of changes
    summary = produce_changes(count=60, mix=Mix(0.5, 0.35, 0.15), seed=11, keep_operations=True)
    after = now_us()
    assert summary.updates > 0
    assert summary.deletes > 0
    by_shard = read_stream(emu.endpoint, summary.total)
    # THEN the stream holds exactly one record per change, field by field
    actual_by_pk: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for records in by_shard.values():
        for rec in records:
            actual_by_pk[rec["data"]["dynamodb"]["Keys"]["pk"]["S"]].append(rec)
    expected_by_pk: dict[str, list[Operation]] = defaultdict(list)
    for op in summary.operations:
        expected_by_pk[op.pk].append(op)
    assert sum(len(v) for v in actual_by_pk.values()) == summary.total
    assert set(actual_by_pk) == set(expected_by_pk)
    event_ids = set()
    for pk, ops in expected_by_pk.items():
        actual = actual_by_pk[pk]
        assert len(actual) == len(ops)
        # One item → one partition key → one shard, in write order.
        assert len({a["partition_key"] for a in actual}) == 1
        for op, rec in zip(ops, actual, strict=True):
            data = rec["data"]
            assert _comparable(data) == _comparable(_expected(op, data, precision))
            assert UUID_RE.match(data["eventID"])
            event_ids.add(data["eventID"])
            stamp = data["dynamodb"]["ApproximateCreationDateTime"]
            if precision == "MICROSECOND":
                assert len(str(stamp)) == 16
                assert data["dynamodb"]["ApproximateCreationDateTimePrecision"] == "MICROSECOND"
            else:
                assert len(str(stamp)) == 13
                assert "ApproximateCreationDateTimePrecision" not in data["dynamodb"]
            event_us = normalize_epoch_us(
                stamp, data["dynamodb"].get("ApproximateCreationDateTimePrecision")
            )
            assert before - 1000 <= event_us <= after + 1000
            decoded = decode_record(rec["raw"], Position("s", rec["sequence_number"]))
            assert not isinstance(decoded, DecodeFailure), decoded
    assert len(event_ids) == summary.total
    assert emu.stats().records_forwarded == summary.total


def test_emulator_writes_raw_json_lines_by_event_time_when_changes_flow(
    make_emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = make_emulator()
    monkeypatch.setenv("AWS_ENDPOINT_URL", emu.endpoint)
    summary = produce_changes(count=50, seed=5)
    stream = read_stream(emu.endpoint, summary.total)
    stream_ids = {r["data"]["eventID"] for rs in stream.values() for r in rs}
    _wait(lambda: emu.stats().firehose_ok >= summary.total)
    s3 = _client("s3", emu.endpoint)
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=SETTINGS.lake_bucket, Prefix="raw/")["Contents"]
    ]
    lines: list[bytes] = []
    for key in keys:
        match = re.fullmatch(
            r"raw/persons/dt=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/changelake-raw-1-[\d-]+-[0-9a-f-]+",
            key,
        )
        assert match, key
        body = s3.get_object(Bucket=SETTINGS.lake_bucket, Key=key)["Body"].read()
        assert body.endswith(b"\n")
        assert b"\n\n" not in body
        for line in body.splitlines():
            record = orjson.loads(line)
            ddb = record["dynamodb"]
            part = partition_for_us(normalize_epoch_us(ddb["ApproximateCreationDateTime"]))
            assert (match[1], match[2]) == (part.dt, part.hour)  # event time, not arrival
            lines.append(line)
    assert len(lines) == summary.total
    assert {orjson.loads(line)["eventID"] for line in lines} == stream_ids
    assert emu.stats().firehose_failed == 0


def test_emulator_streams_every_table_to_the_one_stream_and_raw_prefix_per_table(
    make_emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an emulator capturing two tables (one Kinesis stream for both, ADR 0032)
    settings = ChangelakeSettings(tables="persons,orders")
    emu = make_emulator(settings=settings)
    monkeypatch.setenv("AWS_ENDPOINT_URL", emu.endpoint)
    assert sorted(_client("dynamodb", emu.endpoint).list_tables()["TableNames"]) == [
        "orders",
        "persons",
    ]
    # WHEN each table is written (with its own seed: distinct keys)
    written = {
        table: produce_changes(
            table=table, settings=settings, count=n, seed=n, keep_operations=True
        )
        for table, n in (("persons", 30), ("orders", 20))
    }
    total = sum(s.total for s in written.values())
    stream = read_stream(emu.endpoint, total)
    # THEN every change is on the stream once, carrying its own table's name
    on_stream: dict[str, list[str]] = defaultdict(list)
    for records in stream.values():
        for record in records:
            keys = ddb_json.deserialize_image(record["data"]["dynamodb"]["Keys"])
            on_stream[record["data"]["tableName"]].append(str(keys["pk"]))
    for table, summary in written.items():
        assert sorted(on_stream[table]) == sorted(op.pk for op in summary.operations)
    assert set(on_stream) == {"persons", "orders"}
    # AND Firehose writes each table's records under its own raw/<table>/ prefix
    _wait(lambda: emu.stats().firehose_ok >= total)
    s3 = _client("s3", emu.endpoint)
    per_prefix: dict[str, set[str]] = defaultdict(set)
    for obj in s3.list_objects_v2(Bucket=settings.lake_bucket, Prefix="raw/")["Contents"]:
        body = s3.get_object(Bucket=settings.lake_bucket, Key=obj["Key"])["Body"].read()
        for line in body.splitlines():
            record = orjson.loads(line)
            assert obj["Key"].startswith(f"raw/{record['tableName']}/dt=")
            per_prefix[record["tableName"]].add(record["eventID"])
    assert {t: len(ids) for t, ids in per_prefix.items()} == {"persons": 30, "orders": 20}
    assert emu.stats().stream_records_read == total


def test_emulator_routes_bad_record_to_firehose_error_prefix(
    make_emulator: Callable[..., Emulator],
) -> None:
    emu = make_emulator()
    kinesis = _client("kinesis", emu.endpoint)
    traversal = next(f for f in golden.load_malformed() if f.name == "table_name_traversal")
    for data in (b'{"not": "a change"}', traversal.raw):
        kinesis.put_record(StreamName=SETTINGS.stream_name, Data=data, PartitionKey="x")
    _wait(lambda: emu.stats().firehose_failed >= 2)
    s3 = _client("s3", emu.endpoint)
    lines = []
    for obj in s3.list_objects_v2(Bucket=SETTINGS.lake_bucket, Prefix="errors/firehose/")[
        "Contents"
    ]:
        assert re.match(
            r"errors/firehose/processing-failed/\d{4}-\d{2}-\d{2}/changelake-raw-1-", obj["Key"]
        )
        body = s3.get_object(Bucket=SETTINGS.lake_bucket, Key=obj["Key"])["Body"].read()
        lines += [orjson.loads(line) for line in body.splitlines()]
    errors = {base64.b64decode(e["rawData"]): e for e in lines}
    assert set(errors) == {b'{"not": "a change"}', traversal.raw}
    for raw, error in errors.items():
        assert error["errorCode"] == "Lambda.ProcessingFailedStatus"
        assert error["attemptsMade"] == 1
        assert error["lambdaArn"].endswith(":function:changelake-transform")
        # AWS's fixed message, then the reason the transform logged for this record
        assert error["errorMessage"].startswith("ProcessingFailed status set for record: "), raw
    assert "not a Kinesis-for-DynamoDB record" in errors[b'{"not": "a change"}']["errorMessage"]
    assert (
        "$.tableName: invalid DynamoDB table name '../../etc'"
        in (errors[traversal.raw]["errorMessage"])
    )
    # nothing under raw/ (no raw/../../etc/ prefix)
    assert "Contents" not in s3.list_objects_v2(Bucket=SETTINGS.lake_bucket, Prefix="raw/")


def _fault_run(
    make_emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, list[tuple[str, int, str]]], Any]:
    emu = make_emulator(
        faults=FaultConfig(seed=99, duplicate_rate=0.25, reorder_window=6, ttl_rate=1.0)
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", emu.endpoint)
    summary = produce_changes(count=48, mix=Mix(0.6, 0.2, 0.2), seed=3)
    _wait(
        lambda: (
            emu.stats().records_forwarded >= summary.total + emu.stats().duplicates_injected
            and emu.stats().stream_records_read >= summary.total
        )
    )
    time.sleep(0.5)  # let the idle flush release the last partial window
    stats = emu.stats()
    by_shard = read_stream(emu.endpoint, stats.records_forwarded)

    # Event IDs differ between runs; (pk, version, eventName) identify a change.
    def ident(r: dict[str, Any]) -> tuple[str, int, str]:
        d = r["data"]
        image = d["dynamodb"].get("NewImage") or d["dynamodb"]["OldImage"]
        return (d["dynamodb"]["Keys"]["pk"]["S"], int(image["version"]["N"]), d["eventName"])

    seqs = {shard: [ident(r) for r in recs] for shard, recs in by_shard.items()}
    emu.stop()  # one emulator per process at a time
    return seqs, (stats, by_shard, summary)


def test_emulator_injects_same_faults_when_seed_repeats(
    make_emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, (stats, by_shard, summary) = _fault_run(make_emulator, monkeypatch)
    # Duplicates: exactly as many extra records as claimed, each the same bytes twice.
    assert stats.duplicates_injected > 0
    all_records = [r for recs in by_shard.values() for r in recs]
    assert len(all_records) == summary.total + stats.duplicates_injected
    ids = [r["data"]["eventID"] for r in all_records]
    assert len(ids) - len(set(ids)) == stats.duplicates_injected
    # Reordering: the stream disagrees with write order somewhere.
    assert stats.out_of_order > 0
    # TTL: every REMOVE carries the DynamoDB service identity (ttl_rate=1).
    removes = [r["data"] for r in all_records if r["data"]["eventName"] == "REMOVE"]
    assert removes
    assert all(
        r["userIdentity"] == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
        for r in removes
    )
    # The same seed again gives the same streams, shard by shard.
    second, _ = _fault_run(make_emulator, monkeypatch)
    assert second == first


def test_bootstrap_creates_every_resource_when_run_twice(
    make_emulator: Callable[..., Emulator],
) -> None:
    emu = make_emulator()
    bootstrap(SETTINGS, endpoint_url=emu.endpoint)  # second run: idempotent
    ep = emu.endpoint
    table = _client("dynamodb", ep).describe_table(TableName="persons")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert table["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    summary = _client("kinesis", ep).describe_stream_summary(StreamName=SETTINGS.stream_name)
    assert summary["StreamDescriptionSummary"]["OpenShardCount"] == 2
    sqs = _client("sqs", ep)
    url = sqs.get_queue_url(QueueName=SETTINGS.catalog_queue)["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    redrive = orjson.loads(attrs["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"].endswith(f":{SETTINGS.catalog_queue}-dlq")
    assert int(redrive["maxReceiveCount"]) == 5
    s3 = _client("s3", ep)
    notification = s3.get_bucket_notification_configuration(Bucket=SETTINGS.lake_bucket)
    (queue_conf,) = notification["QueueConfigurations"]
    assert queue_conf["QueueArn"] == attrs["QueueArn"]
    (rule,) = queue_conf["Filter"]["Key"]["FilterRules"]
    assert (rule["Name"].lower(), rule["Value"]) == ("prefix", "changes/")
    assert _client("glue", ep).get_database(Name="changelake")["Database"]["Name"] == "changelake"
    stream = _client("firehose", ep).describe_delivery_stream(
        DeliveryStreamName=SETTINGS.firehose_name
    )
    assert stream["DeliveryStreamDescription"]["DeliveryStreamType"] == "KinesisStreamAsSource"


def test_bucket_notification_reaches_queue_when_change_object_written(
    make_emulator: Callable[..., Emulator],
) -> None:
    emu = make_emulator()
    s3 = _client("s3", emu.endpoint)
    s3.put_object(Bucket=SETTINGS.lake_bucket, Key="raw/persons/x.json", Body=b"{}\n")
    s3.put_object(
        Bucket=SETTINGS.lake_bucket,
        Key="changes/persons/dt=2026-11-27/hour=10/a.parquet",
        Body=b"x",
    )
    sqs = _client("sqs", emu.endpoint)
    url = sqs.get_queue_url(QueueName=SETTINGS.catalog_queue)["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=2).get(
        "Messages", []
    )
    keys = [
        rec["s3"]["object"]["key"]
        for m in messages
        for rec in orjson.loads(m["Body"]).get("Records", [])
    ]
    # Event keys are URL-encoded (as on AWS; moto encodes '/' too): decode before use.
    assert [unquote_plus(k) for k in keys] == ["changes/persons/dt=2026-11-27/hour=10/a.parquet"]


def test_emulator_stop_leaves_no_integration_threads(
    make_emulator: Callable[..., Emulator],
) -> None:
    emu = make_emulator()
    emu.stop()
    emu.stop()  # idempotent
    names = {t.name for t in threading.enumerate()}
    assert "streaming-destination" not in names
    assert "firehose" not in names


def test_emulator_refuses_to_start_when_another_runs(
    make_emulator: Callable[..., Emulator],
) -> None:
    make_emulator()
    with pytest.raises(RuntimeError, match="another Emulator"):
        Emulator(0).start()


def test_emulator_fails_fast_when_port_taken() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with pytest.raises(OSError, match="cannot listen"):
            Emulator(sock.getsockname()[1]).start()


def test_emulator_fixture_points_clients_at_emulator(emulator: Emulator) -> None:
    tables = boto3.client("dynamodb").list_tables()["TableNames"]
    assert tables == list(SETTINGS.tables)
    assert emulator.endpoint.startswith("http://127.0.0.1:")


def test_emulator_fails_batch_after_retries_when_handler_raises(
    make_emulator: Callable[..., Emulator],
) -> None:
    calls: list[str] = []

    def broken(event: Any, context: Any) -> Any:
        calls.append(event["invocationId"])
        raise RuntimeError("boom")

    emu = make_emulator(transform_handler=broken)
    kinesis = _client("kinesis", emu.endpoint)
    kinesis.put_record(StreamName=SETTINGS.stream_name, Data=b"payload", PartitionKey="x")
    _wait(lambda: emu.stats().firehose_failed >= 1)
    assert len(calls) == 4  # one invocation + Firehose's three retries, same invocation id
    assert len(set(calls)) == 1
    s3 = _client("s3", emu.endpoint)
    (obj,) = s3.list_objects_v2(Bucket=SETTINGS.lake_bucket, Prefix="errors/firehose/")["Contents"]
    error = orjson.loads(s3.get_object(Bucket=SETTINGS.lake_bucket, Key=obj["Key"])["Body"].read())
    assert error["errorCode"] == "Lambda.FunctionError"
    assert "boom" in error["errorMessage"]
    assert error["attemptsMade"] == 4
    assert base64.b64decode(error["rawData"]) == b"payload"
