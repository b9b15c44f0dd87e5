"""The fuzz targets: input bytes in, the properties every input must keep checked.

Each target takes the bytes that arrive from outside (a Kinesis record's data, a DynamoDB-JSON
value, a Firehose transformation event, an SQS message body) and returns an outcome label
(``"ok"``: accepted and round-tripped; ``"rejected"``: refused with a typed error and a reason).
A broken property raises :class:`PropertyViolationError`; any other exception that escapes is a
crash. Both fuzzing engines (hypothesis and atheris) drive these same functions.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import orjson
from changelake import ddb_json
from changelake.events import ChangeEvent, DecodeFailure, Position, decode_record
from changelake.privacy import PrivacyPolicy, sample_policy
from changelake.table_name import check_table_name
from changelake_catalog.exceptions import InvalidNotificationError
from changelake_catalog.notifications import parse_notification
from changelake_consumer.rows import prepare, prepare_event
from changelake_lake import layout
from changelake_lake.column_policy import PreparedRow
from changelake_testsupport.records import encode, kinesis_dynamodb_record
from changelake_transform.handler import handler
from changelake_transform.service import DROPPED, OK, PROCESSING_FAILED, transform_records

POSITION = Position("shardId-000000000000", "49654821367156789012345678901234567890", 1_700_000)
BUCKET = "lake"
# The sample policy of the demo and the local stack, with a fixed key: the privacy paths of
# the consumer and the transform are input-facing code too.
PRIVACY = PrivacyPolicy.from_text(sample_policy(), b"fuzz-key-0123456789abcdef-0123456789")
RECORD_SEPARATOR = b"\n--\n"
"""How the transform target splits raw (non-JSON) input into the records of one event."""

CALLS: Counter[str] = Counter()
"""Inputs run per ``target:outcome`` in this process (the runners report them)."""


class PropertyViolationError(AssertionError):
    """An input broke a property: a failure without a reason, a lost or altered value…"""


def _check(condition: object, message: str) -> None:
    if not condition:
        raise PropertyViolationError(message)


def _exact(value: Any) -> Any:
    """A decoded value as exactly comparable plain data: what image_to_json must spell."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_exact(v) for v in value]
    if isinstance(value, set | frozenset):
        return [_exact(v) for v in sorted(value)]
    return value


def _check_json_text(text: str, value: Any, what: str) -> None:
    """The plain-JSON rendering parses back to the exact value (numbers as decimals)."""
    parsed = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    _check(parsed == _exact(value), f"{what}: JSON text {text[:200]!r} is not the value")


def _check_failure(exc: ddb_json.DdbJsonError) -> None:
    _check(isinstance(exc.reason, str) and exc.reason, "a codec error without a reason")
    _check(exc.path.startswith("$"), f"a codec error without a JSON path: {exc.path!r}")


def codec(data: bytes) -> str:
    """The DynamoDB-JSON codec on any JSON document: a value, or DdbJsonError with a reason.

    A decoded value re-encodes to DynamoDB JSON that decodes to the same value, spelled the
    same (numbers keep their exact text), and renders as plain JSON that parses back exactly.
    """
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return _count("codec", "not-json")
    outcomes = []
    try:
        value = ddb_json.deserialize_value(doc)
    except ddb_json.DdbJsonError as exc:
        _check_failure(exc)
        outcomes.append("rejected")
    else:
        again = ddb_json.deserialize_value(ddb_json.serialize_value(value))
        text = ddb_json.value_to_json(value)
        _check(ddb_json.value_to_json(again) == text, f"value does not round-trip: {text[:200]}")
        _check_json_text(text, value, "value")
        outcomes.append("ok")
    try:
        image = ddb_json.deserialize_image(doc)
    except ddb_json.DdbJsonError as exc:
        _check_failure(exc)
    else:
        image_again = ddb_json.deserialize_image(ddb_json.serialize_image(image))
        text = ddb_json.image_to_json(image) or ""
        _check(ddb_json.image_to_json(image_again) == text, f"image does not round-trip: {text}")
        _check_json_text(text, image, "image")
        outcomes.append("ok")
    return _count("codec", "ok" if "ok" in outcomes else "rejected")


def _check_decode_failure(result: DecodeFailure, raw: bytes, position: Position) -> None:
    _check(isinstance(result.reason, str) and result.reason.strip(), "a failure without reason")
    _check(result.raw == raw, "the failure does not carry the original bytes")
    _check(result.position == position, "the failure lost the record's position")


def _event_fields(event: ChangeEvent) -> tuple[Any, ...]:
    return (
        event.event_id,
        event.event_name,
        event.table,
        event.region,
        event.event_time_us,
        event.item_key,
        ddb_json.image_to_json(event.keys),
        ddb_json.image_to_json(event.new_image),
        ddb_json.image_to_json(event.old_image),
        event.changed_attributes,
        event.is_ttl_delete,
    )


def _check_event_round_trip(event: ChangeEvent) -> None:
    """A decoded event, written again as the streaming destination would, decodes the same."""
    rebuilt = encode(
        kinesis_dynamodb_record(
            event_name=event.event_name.value,
            keys=event.keys,
            new_image=event.new_image,
            old_image=event.old_image,
            event_time_us=event.event_time_us,
            precision="MICROSECOND",
            event_id=event.event_id,
            table=event.table,
            region=event.region,
            ttl_delete=event.is_ttl_delete,
        )
    )
    again = decode_record(rebuilt, event.position)
    _check(isinstance(again, ChangeEvent), f"re-encoded event rejected: {again}")
    assert isinstance(again, ChangeEvent)
    _check(_event_fields(again) == _event_fields(event), "the event does not round-trip")
    partition = layout.partition_for_us(event.event_time_us)
    _check(partition.start() <= event.event_time < partition.end(), "event outside partition")


def _row_fields(row: PreparedRow) -> tuple[Any, ...]:
    return (row.table, row.event_time_us, row.system, row.cells, row.number_text_values)


def _check_rows(raw: bytes, reference: ChangeEvent | DecodeFailure, fast: object) -> None:
    """The consumer's fast row path says exactly what the shared codec's path says."""
    if isinstance(reference, DecodeFailure):
        _check(isinstance(fast, DecodeFailure), "consumer accepted a record the codec rejects")
        assert isinstance(fast, DecodeFailure)
        _check(fast == reference, f"consumer and codec disagree: {fast.reason!r}")
        return
    _check(isinstance(fast, PreparedRow), f"consumer rejected a valid record: {fast}")
    assert isinstance(fast, PreparedRow)
    _check(_row_fields(fast) == _row_fields(prepare_event(reference)), "rows differ")


def record(data: bytes) -> str:
    """decode_record (and the consumer's row decode, with and without a privacy policy).

    Never raises: a failure value with a reason, the original bytes and the position; a valid
    record round-trips; the consumer's fast path yields the codec path's row or failure.
    """
    result = decode_record(data, POSITION)
    if isinstance(result, DecodeFailure):
        _check_decode_failure(result, data, POSITION)
    else:
        _check_event_round_trip(result)
    _check_rows(data, result, prepare(data, POSITION))
    assert PRIVACY is not None
    private = PRIVACY.decode(data, POSITION)
    if isinstance(private, DecodeFailure):
        _check(private.reason.strip(), "a redacted failure without reason")
        _check(private.position == POSITION, "the redacted failure lost its position")
    _check_rows(data, private, prepare(data, POSITION, privacy=PRIVACY))
    return _count("record", "rejected" if isinstance(result, DecodeFailure) else "ok")


def firehose_event(data: bytes) -> dict[str, Any]:
    """The transformation event for ``data``: a JSON object with ``records`` is the event
    itself (its shape is fuzzed), anything else is split into the data of its records."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and "records" in doc:
        return doc
    return {
        "invocationId": "fuzz",
        "records": [
            {
                "recordId": f"r{i}",
                "approximateArrivalTimestamp": 1_795_774_530_500,
                "kinesisRecordMetadata": {"shardId": "shardId-000000000000", "sequenceNumber": "1"},
                "data": base64.b64encode(part).decode("ascii"),
            }
            for i, part in enumerate(data.split(RECORD_SEPARATOR))
        ],
    }


def _input_bytes(record: Mapping[str, Any]) -> bytes | None:
    encoded = record.get("data")
    if not isinstance(encoded, str):
        return None
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None


def _check_transform(
    records: list[Any], response: dict[str, Any], failures: Mapping[str, str], private: bool
) -> None:
    out = response["records"]
    _check(len(out) == len(records), f"{len(records)} records in, {len(out)} out")
    for record, entry in zip(records, out, strict=True):
        record_id = record["recordId"]
        _check(entry["recordId"] == record_id, "recordIds out of order")
        result = entry["result"]
        _check(result in (OK, PROCESSING_FAILED, DROPPED), f"unknown result {result!r}")
        _check(result != DROPPED or private, "Dropped without a privacy policy")
        if result != OK:
            _check(failures.get(record_id, "").strip(), f"{result} without a reason")
            continue
        line = base64.b64decode(entry["data"], validate=True)
        _check(line.endswith(b"\n") and line.count(b"\n") == 1, "Ok data is not one line")
        decoded = decode_record(line, POSITION)
        _check(isinstance(decoded, ChangeEvent), "Ok data the codec rejects")
        assert isinstance(decoded, ChangeEvent)
        partition = layout.partition_for_us(decoded.event_time_us)
        keys = entry["metadata"]["partitionKeys"]
        _check(
            keys == {"table": decoded.table, "dt": partition.dt, "hour": partition.hour},
            f"partition keys {keys} are not the record's",
        )
        raw = _input_bytes(record)
        original = decode_record(raw, POSITION) if raw is not None else None
        _check(isinstance(original, ChangeEvent), "Ok for a record the codec rejects")
        if not private:
            assert isinstance(original, ChangeEvent)
            _check(_event_fields(decoded) == _event_fields(original), "Ok data altered")


def transform(data: bytes) -> str:
    """The transform Lambda: one result per input record, Ok/ProcessingFailed with a reason.

    The handler itself on the event (a malformed *event* is its documented ValueError, which
    makes Firehose retry the batch), and the pure transform with the sample privacy policy.
    """
    event = firehose_event(data)
    try:
        response = handler(event)
    except ValueError as exc:
        _check(str(exc).strip(), "the handler's ValueError has no message")
        return _count("transform", "event-rejected")
    records = event["records"]
    # The handler logs the reasons; the pure function returns them: both on the same input.
    plain = transform_records(records)
    _check(plain.response() == response, "handler and transform_records disagree")
    _check_transform(records, response, plain.failures, private=False)
    private = transform_records(records, privacy=PRIVACY)
    _check_transform(records, private.response(), private.failures, private=True)
    return _count("transform", "ok" if plain.ok else "rejected")


def notification(data: bytes) -> str:
    """The catalog's S3 event parsing: the change objects announced, or a typed error.

    Every object returned lies in a change-table partition of a valid table, parses again to
    the same table and partition, and is ``stray`` exactly when it is not a change object.
    """
    body = data.decode("utf-8", "replace")
    outcome = "ignored"
    for bucket in (None, BUCKET):
        try:
            refs = parse_notification(body, bucket)
        except InvalidNotificationError as exc:
            _check(str(exc).strip(), "InvalidNotificationError without a reason")
            outcome = "rejected"
            continue
        for ref in refs:
            check_table_name(ref.table)
            parsed = layout.parse_table_object_key(ref.key)
            _check(parsed is not None, f"{ref.key!r} is not in a table partition")
            assert parsed is not None
            _check((parsed.table, parsed.partition) == (ref.table, ref.partition), "wrong ref")
            is_change = layout.parse_change_object_key(ref.key) is not None
            _check(ref.stray is not is_change, f"{ref.key!r}: stray={ref.stray}")
            _check(ref.size is None or isinstance(ref.size, int), "size is not an int")
            outcome = "ok"
    return _count("notification", outcome)


def _count(target: str, outcome: str) -> str:
    CALLS[f"{target}:{outcome}"] += 1
    return outcome


TARGETS: dict[str, Callable[[bytes], str]] = {
    "codec": codec,
    "record": record,
    "transform": transform,
    "notification": notification,
}
