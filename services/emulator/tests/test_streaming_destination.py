"""The streaming destination's record shape and event clock (pure parts)."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from changelake.events import DecodeFailure, Position, decode_record
from changelake.timeutil import datetime_to_us
from changelake_emulator.streaming_destination import (
    EventClock,
    event_id,
    kinesis_record,
    partition_key,
    wire_image,
)
from changelake_testsupport.records import encode

pytestmark = pytest.mark.unit

T = datetime(2026, 11, 27, 10, 15, 30, 123000, tzinfo=UTC)
T_US = datetime_to_us(T)


def _stream_record(
    name: str, new: dict[str, Any] | None, old: dict[str, Any] | None
) -> dict[str, Any]:
    ddb: dict[str, Any] = {
        "ApproximateCreationDateTime": T,
        "Keys": {"pk": {"S": "p-1"}},
        "SequenceNumber": "1100000000017454423009",
        "SizeBytes": 999,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        ddb["NewImage"] = new
    if old is not None:
        ddb["OldImage"] = old
    return {
        "eventID": "5c455abe08064c2688494b120a8ad045",
        "eventName": name,
        "eventVersion": "1.0",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": ddb,
    }


NEW = {
    "pk": {"S": "p-1"},
    "n": {"N": "2"},
    "b": {"B": b"\x00\x01"},
    "m": {"M": {"bs": {"BS": [b"\x02"]}}},
}
OLD = {"pk": {"S": "p-1"}, "n": {"N": "1"}}


@pytest.mark.parametrize(
    ("name", "new", "old", "members"),
    [
        ("INSERT", NEW, None, {"ApproximateCreationDateTime", "Keys", "NewImage", "SizeBytes"}),
        (
            "MODIFY",
            NEW,
            OLD,
            {"ApproximateCreationDateTime", "Keys", "NewImage", "OldImage", "SizeBytes"},
        ),
        ("REMOVE", None, OLD, {"ApproximateCreationDateTime", "Keys", "OldImage", "SizeBytes"}),
    ],
)
def test_kinesis_record_has_streaming_destination_shape_when_millisecond(
    name: str, new: dict[str, Any] | None, old: dict[str, Any] | None, members: set[str]
) -> None:
    rec = kinesis_record(
        _stream_record(name, new, old),
        table="persons",
        region="us-east-1",
        event_time_us=T_US,
        precision="MILLISECOND",
    )
    assert list(rec) == [
        "awsRegion",
        "eventID",
        "eventName",
        "userIdentity",
        "recordFormat",
        "tableName",
        "dynamodb",
        "eventSource",
    ]
    assert rec["eventID"] == "5c455abe-0806-4c26-8849-4b120a8ad045"
    assert rec["userIdentity"] is None
    assert rec["recordFormat"] == "application/json"
    assert rec["tableName"] == "persons"
    assert set(rec["dynamodb"]) == members  # no SequenceNumber / StreamViewType / eventVersion
    assert rec["dynamodb"]["ApproximateCreationDateTime"] == T_US // 1000
    assert len(str(rec["dynamodb"]["ApproximateCreationDateTime"])) == 13
    decoded = decode_record(encode(rec), Position("s", "1"))
    assert not isinstance(decoded, DecodeFailure), decoded
    assert decoded.event_time_us == T_US


def test_kinesis_record_encodes_binary_as_base64() -> None:
    rec = kinesis_record(
        _stream_record("INSERT", NEW, None),
        table="persons",
        region="us-east-1",
        event_time_us=T_US,
        precision="MILLISECOND",
    )
    assert rec["dynamodb"]["NewImage"]["b"] == {"B": "AAE="}
    assert rec["dynamodb"]["NewImage"]["m"] == {"M": {"bs": {"BS": ["Ag=="]}}}


def test_kinesis_record_carries_precision_field_when_microsecond() -> None:
    rec = kinesis_record(
        _stream_record("INSERT", NEW, None),
        table="persons",
        region="us-east-1",
        event_time_us=T_US + 7,
        precision="MICROSECOND",
    )
    ddb = rec["dynamodb"]
    assert list(ddb)[:2] == ["ApproximateCreationDateTime", "ApproximateCreationDateTimePrecision"]
    assert ddb["ApproximateCreationDateTime"] == T_US + 7
    assert ddb["ApproximateCreationDateTimePrecision"] == "MICROSECOND"


def test_kinesis_record_marks_ttl_identity_only_on_remove() -> None:
    remove = kinesis_record(
        _stream_record("REMOVE", None, OLD),
        table="persons",
        region="r",
        event_time_us=T_US,
        precision="MILLISECOND",
        ttl_delete=True,
    )
    insert = kinesis_record(
        _stream_record("INSERT", NEW, None),
        table="persons",
        region="r",
        event_time_us=T_US,
        precision="MILLISECOND",
        ttl_delete=True,
    )
    assert remove["userIdentity"] == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    assert insert["userIdentity"] is None


def test_size_bytes_counts_keys_and_images() -> None:
    rec = kinesis_record(
        _stream_record("MODIFY", NEW, OLD),
        table="persons",
        region="r",
        event_time_us=T_US,
        precision="MILLISECOND",
    )
    import orjson

    ddb = rec["dynamodb"]
    assert ddb["SizeBytes"] == sum(
        len(orjson.dumps(ddb[k])) for k in ("Keys", "NewImage", "OldImage")
    )


def test_partition_key_is_stable_per_item_key() -> None:
    a = partition_key({"pk": {"S": "p-1"}})
    assert a == partition_key(wire_image({"pk": {"S": "p-1"}}))
    assert a != partition_key({"pk": {"S": "p-2"}})
    assert re.fullmatch(r"[0-9A-F]{32}", a)


def test_event_id_keeps_non_hex_ids() -> None:
    assert event_id("not-hex") == "not-hex"


def test_event_clock_keeps_stream_millisecond_when_resolution_is_ms() -> None:
    clock = EventClock()
    assert clock.event_time_us(T, observed_us=T_US + 5_000_000) == T_US


def test_event_clock_gives_distinct_ordered_micros_when_records_share_a_ms() -> None:
    clock = EventClock()
    times = [clock.event_time_us(T, observed_us=T_US) for _ in range(3)]
    assert times == [T_US, T_US + 1, T_US + 2]
    assert clock.event_time_us(T + timedelta(milliseconds=1), observed_us=T_US) == T_US + 1000


def test_event_clock_refines_within_the_second_when_stream_time_is_coarse() -> None:
    coarse = T.replace(microsecond=0)
    coarse_us = datetime_to_us(coarse)
    clock = EventClock()
    assert clock.event_time_us(coarse, observed_us=coarse_us + 456_789) == coarse_us + 456_000
    # An observation from a later second is clamped into the stream's own second.
    assert (
        EventClock().event_time_us(coarse, observed_us=coarse_us + 5_000_000) == coarse_us + 999_000
    )


def test_event_clock_gives_one_item_strictly_later_ms_when_its_changes_share_a_ms() -> None:
    # GIVEN three changes of item A and one of item B read with the same stream millisecond
    clock = EventClock()
    a = [clock.event_time_us(T, observed_us=T_US, item="A") for _ in range(3)]
    b = clock.event_time_us(T, observed_us=T_US, item="B")
    # THEN item A's changes sit in distinct, increasing milliseconds (as real serialized writes
    # do), so ms and µs renderings of them normalize to the same order; B is not pushed.
    assert [t // 1000 for t in a] == [T_US // 1000, T_US // 1000 + 1, T_US // 1000 + 2]
    assert b // 1000 == T_US // 1000
    for earlier, later in itertools.pairwise(a):
        assert (later // 1000) * 1000 > earlier  # a later change in ms beats an earlier one in µs
