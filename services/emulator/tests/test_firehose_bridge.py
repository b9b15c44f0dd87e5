"""The Firehose bridge's pure rules: event shape, response interpretation, prefixes, errors."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson
import pytest
from changelake_emulator.firehose_bridge import (
    PrefixError,
    SourceRecord,
    error_line,
    evaluate_prefix,
    firehose_event,
    interpret_response,
    object_name,
)
from changelake_lake.layout import firehose_error_prefix_expression, firehose_raw_prefix_expression

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 27, 23, 59, 58, tzinfo=UTC)


def _records(n: int) -> list[SourceRecord]:
    return [
        SourceRecord(
            f"id-{i}", f"data-{i}".encode(), 1_795_774_530_500 + i, "shardId-0", f"{i}", "PK"
        )
        for i in range(n)
    ]


def test_firehose_event_has_the_kinesis_source_shape() -> None:
    event = firehose_event(
        _records(1), invocation_id="inv", delivery_stream_arn="d", source_stream_arn="s", region="r"
    )
    assert set(event) == {
        "invocationId",
        "deliveryStreamArn",
        "sourceKinesisStreamArn",
        "region",
        "records",
    }
    (record,) = event["records"]
    assert record["recordId"] == "id-0"
    assert base64.b64decode(record["data"]) == b"data-0"
    assert record["approximateArrivalTimestamp"] == 1_795_774_530_500
    assert record["kinesisRecordMetadata"] == {
        "sequenceNumber": "0",
        "subsequenceNumber": 0,
        "partitionKey": "PK",
        "shardId": "shardId-0",
        "approximateArrivalTimestamp": 1_795_774_530_500,
    }


def test_interpret_response_routes_each_result_when_all_kinds_present() -> None:
    batch = _records(4)
    keys = {"table": "persons", "dt": "2026-11-27", "hour": "23"}
    response = {
        "records": [
            {
                "recordId": "id-0",
                "result": "Ok",
                "data": base64.b64encode(b"a\n").decode(),
                "metadata": {"partitionKeys": keys},
            },
            {"recordId": "id-1", "result": "Dropped", "data": ""},
            {"recordId": "id-2", "result": "ProcessingFailed", "data": ""},
            {"recordId": "id-3", "result": "Maybe", "data": ""},
        ]
    }
    delivered, failed = interpret_response(batch, response)
    assert [(d.source.record_id, d.data, dict(d.partition_keys)) for d in delivered] == [
        ("id-0", b"a\n", keys)
    ]
    assert [(f.source.record_id, f.error_code) for f in failed] == [
        ("id-2", "Lambda.ProcessingFailedStatus"),
        ("id-3", "Lambda.InvalidReturnFormat"),
    ]
    assert failed[0].error_message == "ProcessingFailed status set for record"


def test_interpret_response_fails_records_when_ids_missing_or_duplicated() -> None:
    batch = _records(3)
    ok = {"result": "Ok", "data": ""}
    response = {
        "records": [
            {"recordId": "id-0", **ok},
            {"recordId": "id-1", **ok},
            {"recordId": "id-1", **ok},
            {"recordId": "zzz", **ok},
        ]
    }
    delivered, failed = interpret_response(batch, response)
    assert [d.source.record_id for d in delivered] == ["id-0"]
    assert {(f.source.record_id, f.error_code) for f in failed} == {
        ("id-1", "Lambda.DuplicatedRecordId"),
        ("id-2", "Lambda.MissingRecordId"),
    }


def test_interpret_response_fails_batch_when_response_is_malformed() -> None:
    delivered, failed = interpret_response(_records(2), {"nope": []})
    assert delivered == []
    assert {f.error_code for f in failed} == {"Lambda.InvalidReturnFormat"}


def test_interpret_response_fails_batch_when_response_exceeds_6mb() -> None:
    big = base64.b64encode(b"x" * (5 * 1024 * 1024)).decode()
    delivered, failed = interpret_response(
        _records(1), {"records": [{"recordId": "id-0", "result": "Ok", "data": big}]}
    )
    assert delivered == []
    assert [f.error_code for f in failed] == ["Lambda.ResponseSizeExceeded"]


def test_evaluate_prefix_fills_lambda_keys_when_raw_expression() -> None:
    prefix = evaluate_prefix(
        firehose_raw_prefix_expression(),
        now=NOW,
        partition_keys={"table": "persons", "dt": "2026-11-26", "hour": "07"},
    )
    assert prefix == "raw/persons/dt=2026-11-26/hour=07/"


def test_evaluate_prefix_uses_error_type_and_arrival_date_when_error_expression() -> None:
    prefix = evaluate_prefix(
        firehose_error_prefix_expression(), now=NOW, error_output_type="processing-failed"
    )
    assert prefix == "errors/firehose/processing-failed/2026-11-27/"


def test_evaluate_prefix_raises_when_partition_key_missing() -> None:
    with pytest.raises(PrefixError, match="hour"):
        evaluate_prefix(
            firehose_raw_prefix_expression(), now=NOW, partition_keys={"table": "t", "dt": "d"}
        )


def test_error_line_carries_firehose_error_fields() -> None:
    from changelake_emulator.firehose_bridge import Failed

    (record,) = _records(1)
    line = error_line(
        Failed(record, "Lambda.ProcessingFailedStatus", "m"),
        attempts=1,
        ending_ms=9,
        lambda_arn="arn:l",
    )
    assert line.endswith(b"\n")
    assert orjson.loads(line) == {
        "attemptsMade": 1,
        "arrivalTimestamp": 1_795_774_530_500,
        "errorCode": "Lambda.ProcessingFailedStatus",
        "errorMessage": "m",
        "attemptEndingTimestamp": 9,
        "rawData": base64.b64encode(b"data-0").decode(),
        "lambdaArn": "arn:l",
    }


def test_object_name_follows_firehose_naming() -> None:
    name = object_name("changelake-raw", NOW)
    assert name.startswith("changelake-raw-1-2026-11-27-23-59-58-")


class FakeKinesis:
    """Two shards; counts GetRecords per shard; hands out one scripted record once."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {"shardId-000000000000": 0, "shardId-000000000001": 0}
        self.pending = [{"SequenceNumber": "1", "Data": b"x" * 600, "PartitionKey": "k"}]

    def list_shards(self, StreamName: str) -> dict[str, object]:  # noqa: N803 - boto3 name
        return {"Shards": [{"ShardId": s} for s in self.calls]}

    def get_shard_iterator(self, **kwargs: str) -> dict[str, str]:
        return {"ShardIterator": kwargs["ShardId"]}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, object]:  # noqa: N803
        self.calls[ShardIterator] += 1
        records, self.pending = self.pending, []
        return {"NextShardIterator": ShardIterator, "Records": records}


def _bridge(kinesis: FakeKinesis, *, buffer_seconds: float, buffer_mb: float) -> object:
    from changelake_emulator.firehose_bridge import FirehoseBridge

    bridge = FirehoseBridge(
        kinesis=kinesis,
        s3=None,
        handler=lambda e, c: e,
        stream_name="s",
        delivery_stream="d",
        bucket="b",
        region="us-east-1",
        prefix=firehose_raw_prefix_expression(),
        error_prefix=firehose_error_prefix_expression(),
        lambda_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
        buffer_seconds=buffer_seconds,
        buffer_mb=buffer_mb,
    )
    bridge._discover_shards("LATEST")
    return bridge


def test_bridge_calls_get_records_once_per_shard_when_polling() -> None:
    # Firehose's budget: one GetRecords per shard per poll, leaving the rest to the consumer.
    kinesis = FakeKinesis()
    bridge = _bridge(kinesis, buffer_seconds=60, buffer_mb=1)
    for _ in range(3):
        bridge._poll_all()  # type: ignore[attr-defined]
    assert kinesis.calls == {"shardId-000000000000": 3, "shardId-000000000001": 3}


def test_bridge_is_due_when_buffer_reaches_size_hint() -> None:
    bridge = _bridge(FakeKinesis(), buffer_seconds=3600, buffer_mb=500 / (1024 * 1024))
    assert not bridge._due()  # type: ignore[attr-defined]
    bridge._poll_all()  # type: ignore[attr-defined]
    assert bridge._due()  # type: ignore[attr-defined]


def test_bridge_is_not_due_when_buffer_small_and_interval_not_reached() -> None:
    bridge = _bridge(FakeKinesis(), buffer_seconds=3600, buffer_mb=1)
    bridge._poll_all()  # type: ignore[attr-defined]
    assert not bridge._due()  # type: ignore[attr-defined]


def test_bridge_is_due_when_interval_elapsed() -> None:
    bridge = _bridge(FakeKinesis(), buffer_seconds=0, buffer_mb=1)
    bridge._poll_all()  # type: ignore[attr-defined]
    assert bridge._due()  # type: ignore[attr-defined]
