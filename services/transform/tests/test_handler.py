"""The transform Lambda against the Firehose transformation contract (docs/aws-behaviour.md)."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from changelake_lake.layout import firehose_raw_prefix_expression
from changelake_testsupport import golden
from changelake_testsupport.records import encode, kinesis_dynamodb_record
from changelake_transform.handler import handler
from changelake_transform.service import MAX_RESPONSE_BYTES, one_line, transform_records

pytestmark = pytest.mark.unit

# 2026-11-27T23:59:59.999999Z: the last µs of a day, to pin the hour/day boundary.
END_OF_DAY_US = 1_795_823_999_999_999


def _event(payloads: list[bytes], *, with_metadata: bool = True) -> dict[str, Any]:
    records = []
    for i, data in enumerate(payloads):
        record: dict[str, Any] = {
            "recordId": f"4965482136715678901234567890123456789012345678901234{i:04d}000000",
            "approximateArrivalTimestamp": 1_795_774_530_500,
            "data": base64.b64encode(data).decode(),
        }
        if with_metadata:
            record["kinesisRecordMetadata"] = {
                "sequenceNumber": f"4965482136715678901234567890123456789012345678901234{i:04d}",
                "subsequenceNumber": 0,
                "partitionKey": "A1B2",
                "shardId": "shardId-000000000000",
                "approximateArrivalTimestamp": 1_795_774_530_500,
            }
        records.append(record)
    return {
        "invocationId": "inv-1",
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/raw",
        "sourceKinesisStreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
        "region": "us-east-1",
        "records": records,
    }


def _insert(pk: str, event_time_us: int, precision: str = "MILLISECOND") -> bytes:
    return encode(
        kinesis_dynamodb_record(
            event_name="INSERT",
            keys={"pk": pk},
            new_image={"pk": pk, "n": 1},
            event_time_us=event_time_us,
            precision=precision,
            event_id=f"00000000-0000-0000-0000-{len(pk):012d}",
        )
    )


def _data(entry: dict[str, Any]) -> bytes:
    return base64.b64decode(entry["data"])


def test_handler_keeps_every_record_id_in_order_when_batch_mixes_good_and_bad() -> None:
    # GIVEN valid golden records interleaved with malformed ones
    valid = [f.raw for f in golden.load_valid()]
    malformed = [f.raw for f in golden.load_malformed()]
    payloads = [p for pair in zip(valid, malformed, strict=False) for p in pair]
    event = _event(payloads)
    # WHEN the handler runs
    response = handler(event, None)
    # THEN ids come back once each, in input order, and nothing is Dropped
    assert [r["recordId"] for r in response["records"]] == [r["recordId"] for r in event["records"]]
    assert {r["result"] for r in response["records"]} == {"Ok", "ProcessingFailed"}


@pytest.mark.parametrize("fixture", golden.load_valid(), ids=lambda f: f.name)
def test_handler_returns_ok_with_one_newline_for_each_valid_fixture(fixture: Any) -> None:
    (entry,) = handler(_event([fixture.raw]), None)["records"]
    assert entry["result"] == "Ok"
    data = _data(entry)
    assert data == fixture.raw.rstrip(b"\n") + b"\n"
    assert data.count(b"\n") == 1
    assert orjson.loads(data) == orjson.loads(fixture.raw)
    # Partition keys are the event time's UTC day and hour (golden expectation).
    assert entry["metadata"]["partitionKeys"] == {
        "table": fixture.table,
        "dt": fixture.dt,
        "hour": fixture.hour,
    }


@pytest.mark.parametrize("fixture", golden.load_malformed(), ids=lambda f: f.name)
def test_handler_marks_processing_failed_for_each_malformed_fixture(fixture: Any) -> None:
    event = _event([fixture.raw])
    (entry,) = handler(event, None)["records"]
    assert entry["result"] == "ProcessingFailed"
    assert _data(entry) == fixture.raw  # original bytes echoed, never altered
    assert "metadata" not in entry
    # the actual reason, the same one the consumer gives (one codec, one table-name rule)
    (reason,) = transform_records(event["records"]).failures.values()
    assert fixture.reason in reason


def test_handler_logs_the_reason_of_every_failed_record(caplog: pytest.LogCaptureFixture) -> None:
    bad = [f.raw for f in golden.load_malformed() if f.raw and f.name.startswith("table_name")]
    event = _event(bad * 10)  # 30 failures: more than any cap
    with caplog.at_level("WARNING", logger="changelake_transform.handler"):
        handler(event, None)
    lines = [r for r in caplog.records if r.getMessage() == "record ProcessingFailed"]
    assert [r.recordId for r in lines] == [r["recordId"] for r in event["records"]]  # type: ignore[attr-defined]
    assert all("invalid DynamoDB table name" in r.reason for r in lines)  # type: ignore[attr-defined]


def test_handler_appends_no_second_newline_when_data_already_ends_with_one() -> None:
    raw = _insert("p-1", 1_795_774_530_123_000)
    for suffix in (b"\n", b"\r\n", b"\n\n", b"  \n"):
        (entry,) = handler(_event([raw + suffix]), None)["records"]
        assert entry["result"] == "Ok"
        assert _data(entry) == raw + b"\n"


def test_one_line_compacts_record_when_json_spans_lines() -> None:
    raw = _insert("p-1", 1_795_774_530_123_000)
    pretty = orjson.dumps(orjson.loads(raw), option=orjson.OPT_INDENT_2)
    assert b"\n" in pretty
    out = one_line(pretty)
    assert out.count(b"\n") == 1
    assert out.endswith(b"\n")
    assert orjson.loads(out) == orjson.loads(raw)


@pytest.mark.parametrize(
    ("event_time_us", "precision", "dt", "hour"),
    [
        (END_OF_DAY_US, "MICROSECOND", "2026-11-27", "23"),
        (END_OF_DAY_US + 1, "MICROSECOND", "2026-11-28", "00"),
        (END_OF_DAY_US // 1000 * 1000, "MILLISECOND", "2026-11-27", "23"),
        (END_OF_DAY_US // 1000 * 1000 + 1000, "MILLISECOND", "2026-11-28", "00"),
    ],
)
def test_handler_partition_keys_follow_event_time_when_precision_varies(
    event_time_us: int, precision: str, dt: str, hour: str
) -> None:
    (entry,) = handler(_event([_insert("p-1", event_time_us, precision)]), None)["records"]
    assert entry["metadata"]["partitionKeys"] == {"table": "persons", "dt": dt, "hour": hour}


def test_partition_keys_match_the_firehose_prefix_expression() -> None:
    (entry,) = handler(_event([_insert("p-1", END_OF_DAY_US)]), None)["records"]
    expression = firehose_raw_prefix_expression()
    prefix = expression
    for name, value in entry["metadata"]["partitionKeys"].items():
        prefix = prefix.replace(f"!{{partitionKeyFromLambda:{name}}}", value)
    assert prefix == "raw/persons/dt=2026-11-27/hour=23/"


def test_handler_marks_processing_failed_when_data_is_not_base64() -> None:
    event = _event([b"x"])
    event["records"][0]["data"] = "@@not base64@@"
    (entry,) = handler(event, None)["records"]
    assert entry["result"] == "ProcessingFailed"


def test_handler_accepts_record_without_kinesis_metadata() -> None:
    (entry,) = handler(_event([_insert("p-1", END_OF_DAY_US)], with_metadata=False), None)[
        "records"
    ]
    assert entry["result"] == "Ok"


def test_handler_raises_when_record_id_missing() -> None:
    event = _event([_insert("p-1", END_OF_DAY_US)])
    del event["records"][0]["recordId"]
    with pytest.raises(ValueError, match="recordId"):
        handler(event, None)


def test_handler_raises_when_event_has_no_records() -> None:
    with pytest.raises(ValueError, match="records"):
        handler({"invocationId": "x"}, None)


def test_transform_keeps_response_under_6mb_when_batch_is_near_the_limit() -> None:
    # GIVEN ~6 MB of input whose Ok responses (newline + partition keys) would exceed 6 MB
    big = "x" * 900
    raw = encode(
        kinesis_dynamodb_record(
            event_name="INSERT",
            keys={"pk": "p"},
            new_image={"pk": "p", "blob": big},
            event_time_us=END_OF_DAY_US,
        )
    )
    count = MAX_RESPONSE_BYTES // len(base64.b64encode(raw)) + 50
    event = _event([raw] * count, with_metadata=False)
    # WHEN transformed
    response = handler(event, None)
    # THEN the response fits, every record is answered, and the overflow is ProcessingFailed
    assert len(orjson.dumps(response)) <= MAX_RESPONSE_BYTES
    results = [r["result"] for r in response["records"]]
    assert len(results) == count
    assert [r["recordId"] for r in response["records"]] == [r["recordId"] for r in event["records"]]
    ok = results.count("Ok")
    assert 0 < ok < count
    assert results == ["Ok"] * ok + ["ProcessingFailed"] * (count - ok)
    assert all(r["data"] == "" for r in response["records"][ok:])


def test_transform_respects_a_smaller_limit_exactly() -> None:
    payloads = [_insert(f"p-{i}", END_OF_DAY_US) for i in range(40)]
    event = _event(payloads)
    for limit in (6_000, 10_000, 20_000):
        result = transform_records(event["records"], max_response_bytes=limit)
        assert len(orjson.dumps(result.response())) <= limit
        assert result.ok + result.failed == 40
        assert result.oversize == 40 - result.ok


def test_transform_raises_when_even_minimal_answers_exceed_the_limit() -> None:
    event = _event([_insert("p-1", END_OF_DAY_US)] * 10)
    with pytest.raises(ValueError, match="too many records"):
        transform_records(event["records"], max_response_bytes=200)
