"""The domain change event and the one decoder from raw Kinesis bytes to it.

:func:`decode_record` never raises for bad data: it returns a :class:`DecodeFailure` carrying
the reason and the original bytes, which callers route to the error prefix (errors as values).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import orjson
from pydantic import ValidationError

from changelake import ddb_json
from changelake.table_name import check_table_name
from changelake.timeutil import normalize_epoch_us, us_to_datetime
from changelake.wire import KinesisDynamoRecord


class EventName(StrEnum):
    """The three kinds of DynamoDB change."""

    INSERT = "INSERT"
    MODIFY = "MODIFY"
    REMOVE = "REMOVE"


@dataclass(frozen=True, slots=True)
class Position:
    """Where a record sits in Kinesis: shard, sequence number and approximate arrival (µs)."""

    shard_id: str
    sequence_number: str
    arrival_time_us: int | None = None


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One decoded DynamoDB change; images are plain Python values (see ``ddb_json``)."""

    event_id: str
    event_name: EventName
    table: str
    region: str
    event_time_us: int
    keys: dict[str, Any]
    item_key: str
    new_image: dict[str, Any] | None
    old_image: dict[str, Any] | None
    changed_attributes: tuple[str, ...]
    is_ttl_delete: bool
    size_bytes: int
    position: Position

    @property
    def event_time(self) -> datetime:
        """Event time as an aware UTC datetime (µs precision)."""
        return us_to_datetime(self.event_time_us)

    @property
    def image(self) -> dict[str, Any]:
        """The image that describes the item: new, or old for REMOVE."""
        return self.new_image if self.new_image is not None else (self.old_image or {})


@dataclass(frozen=True, slots=True)
class DecodeFailure:
    """A record that could not be decoded: why, and the untouched bytes."""

    reason: str
    raw: bytes
    position: Position
    table: str | None = field(default=None)


def item_key(keys: dict[str, Any]) -> str:
    """Canonical, unambiguous string of the key attributes: plain JSON sorted by name."""
    return ddb_json.value_to_json({k: keys[k] for k in sorted(keys)})


def changed_attributes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> tuple[str, ...]:
    """Top-level attribute names whose value differs between the images, sorted.

    INSERT: every attribute of the new image; REMOVE: every attribute of the old image.
    """
    old = old or {}
    new = new or {}
    names = old.keys() | new.keys()
    return tuple(sorted(n for n in names if n not in old or n not in new or old[n] != new[n]))


_SPACED_COLON_RE = re.compile(rb'"\s+:')


class _DuplicateKeyError(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(key)
        out[key] = value
    return out


def _key_count(doc: Any) -> int:
    count, stack = 0, [doc]
    while stack:
        node = stack.pop()
        if type(node) is dict:
            count += len(node)
            stack.extend(node.values())
        elif type(node) is list:
            stack.extend(node)
    return count


def duplicate_key_error(raw: bytes, doc: Any) -> str | None:
    """The reason if the JSON text repeats a key in one object (parsers keep the last one).

    A REMOVE whose ``eventName`` is repeated as INSERT must not be stored as an INSERT. Cheap
    check first: in compact JSON every key ends with ``":``, so as many ``":`` as parsed keys
    means no key was repeated; otherwise the text is parsed again, keeping every pair.
    """
    if raw.count(b'":') == _key_count(doc) and not _SPACED_COLON_RE.search(raw):
        return None
    try:
        json.loads(raw, object_pairs_hook=_no_duplicates)
    except _DuplicateKeyError as exc:
        return f"duplicate JSON key {exc.args[0]!r} (the record is ambiguous)"
    except ValueError:
        return None  # not our question: orjson already accepted the text
    return None


def decode_record(
    raw: bytes, position: Position, *, expected_table: str | None = None
) -> ChangeEvent | DecodeFailure:
    """Decode one Kinesis record's data into a :class:`ChangeEvent`, or a failure value.

    Strict: the envelope must match :class:`~changelake.wire.KinesisDynamoRecord`, every image
    value must be valid DynamoDB JSON, INSERT must have a NewImage and no OldImage, REMOVE an
    OldImage and no NewImage, MODIFY both; ``Keys`` must hold one or two non-empty S, N or B
    values, and a key attribute that also appears in the image must have the same value there.
    Never raises for bad data (any ``ValueError`` from the data becomes a failure value).
    """
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return DecodeFailure(f"invalid JSON: {exc}", raw, position)
    duplicate = duplicate_key_error(raw, payload)
    if duplicate is not None:
        return DecodeFailure(duplicate, raw, position)
    try:
        record = KinesisDynamoRecord.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "$"
        return DecodeFailure(
            f"not a Kinesis-for-DynamoDB record: {where}: {first['msg']}", raw, position
        )
    try:  # one rule for every path that names a prefix after the table (consumer, transform)
        check_table_name(record.tableName)
    except ValueError as exc:
        return DecodeFailure(f"$.tableName: {exc}", raw, position)
    if expected_table is not None and record.tableName != expected_table:
        return DecodeFailure(
            f"record of table {record.tableName!r} on the stream of {expected_table!r}",
            raw,
            position,
            record.tableName,
        )
    return _event_from_record(record, raw, position)


def _event_from_record(
    record: KinesisDynamoRecord, raw: bytes, position: Position
) -> ChangeEvent | DecodeFailure:
    ddb = record.dynamodb
    name = EventName(record.eventName)
    shape_error = _shape_error(name, ddb.NewImage is not None, ddb.OldImage is not None)
    if shape_error:
        return DecodeFailure(shape_error, raw, position, record.tableName)
    try:
        keys = ddb_json.deserialize_image(ddb.Keys, "$.dynamodb.Keys")
        new = (
            ddb_json.deserialize_image(ddb.NewImage, "$.dynamodb.NewImage")
            if ddb.NewImage is not None
            else None
        )
        old = (
            ddb_json.deserialize_image(ddb.OldImage, "$.dynamodb.OldImage")
            if ddb.OldImage is not None
            else None
        )
        event_time_us = normalize_epoch_us(
            ddb.ApproximateCreationDateTime, ddb.ApproximateCreationDateTimePrecision
        )
    except ValueError as exc:  # DdbJsonError is a ValueError
        return DecodeFailure(str(exc), raw, position, record.tableName)
    key_error = _keys_error(keys)
    if key_error:
        return DecodeFailure(key_error, raw, position, record.tableName)
    image = new if new is not None else old
    assert image is not None
    for k, v in keys.items():
        if k in image and image[k] != v:
            return DecodeFailure(
                f"$.dynamodb.Keys.{k}: key differs from the image", raw, position, record.tableName
            )
    return ChangeEvent(
        event_id=record.eventID,
        event_name=name,
        table=record.tableName,
        region=record.awsRegion,
        event_time_us=event_time_us,
        keys=keys,
        item_key=item_key(keys),
        new_image=new,
        old_image=old,
        changed_attributes=changed_attributes(old, new),
        is_ttl_delete=record.is_ttl_delete,
        size_bytes=ddb.SizeBytes,
        position=position,
    )


def _keys_error(keys: dict[str, Any]) -> str | None:
    # A DynamoDB primary key is a partition key and an optional sort key, each a non-empty
    # scalar S, N or B (DynamoDB rejects empty key values): anything else is not a real record.
    if not keys:
        return "$.dynamodb.Keys: no key attributes"
    if len(keys) > 2:
        return f"$.dynamodb.Keys: {len(keys)} key attributes (a DynamoDB key has 1 or 2)"
    for name, value in keys.items():
        if isinstance(value, Decimal):
            continue
        if not isinstance(value, str | bytes):
            return f"$.dynamodb.Keys.{name}: key attribute must be S, N or B"
        if not value:
            return f"$.dynamodb.Keys.{name}: key attribute must not be empty"
    return None


def _shape_error(name: EventName, has_new: bool, has_old: bool) -> str | None:
    if name is EventName.INSERT and (not has_new or has_old):
        return "INSERT must have NewImage and no OldImage"
    if name is EventName.REMOVE and (has_new or not has_old):
        return "REMOVE must have OldImage and no NewImage"
    if name is EventName.MODIFY and not (has_new and has_old):
        return "MODIFY must have NewImage and OldImage"
    return None
