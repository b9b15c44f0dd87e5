"""Fast record decoding: the shared strict codec without per-record pydantic validation.

:func:`decode_fast` returns exactly what :func:`changelake.events.decode_record` returns for every
input (tests compare both on every golden fixture and on random records). It checks the common,
well-formed envelope with plain type checks, then runs the shared codec's own image decoding and
record rules; anything unusual about the envelope (a missing field, a coercible-but-odd value,
bytes that are not JSON) is handed to ``decode_record`` itself, so the strictness is the shared
codec's by construction and only the hot path's cost differs.
"""

from __future__ import annotations

from typing import Any

import orjson
from changelake import events
from changelake.events import ChangeEvent, DecodeFailure, Position
from changelake.wire import KinesisDynamoRecord, StreamPayload, UserIdentity

_EVENT_NAMES = frozenset({"INSERT", "MODIFY", "REMOVE"})
_PRECISIONS = frozenset({None, "MILLISECOND", "MICROSECOND"})


def decode_fast(
    raw: bytes, position: Position, *, expected_table: str | None = None
) -> ChangeEvent | DecodeFailure:
    """Decode one record like :func:`changelake.events.decode_record`, faster on good input."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return events.decode_record(raw, position, expected_table=expected_table)
    record = _envelope(payload)
    if record is None:
        return events.decode_record(raw, position, expected_table=expected_table)
    if expected_table is not None and record.tableName != expected_table:
        return events.decode_record(raw, position, expected_table=expected_table)
    # The shared codec's own record rules (shape, images, keys): strictness by construction.
    return events._event_from_record(record, raw, position)


def _envelope(p: Any) -> KinesisDynamoRecord | None:
    """The record model when the envelope is plainly valid; ``None`` means "ask the codec"."""
    if type(p) is not dict:
        return None
    region = p.get("awsRegion")
    event_id = p.get("eventID")
    name = p.get("eventName")
    table = p.get("tableName")
    ddb = p.get("dynamodb")
    if (
        type(region) is not str
        or type(event_id) is not str
        or not event_id
        or type(name) is not str
        or name not in _EVENT_NAMES
        or type(table) is not str
        or not table
        or type(ddb) is not dict
        or p.get("recordFormat", "application/json") != "application/json"
        or p.get("eventSource", "aws:dynamodb") != "aws:dynamodb"
    ):
        return None
    ident = p.get("userIdentity")
    identity: UserIdentity | None = None
    if ident is not None:
        if (
            type(ident) is not dict
            or type(ident.get("type")) is not str
            or type(ident.get("principalId")) is not str
        ):
            return None
        identity = UserIdentity.model_construct(**ident)
    stamp = ddb.get("ApproximateCreationDateTime")
    size = ddb.get("SizeBytes")
    keys = ddb.get("Keys")
    new = ddb.get("NewImage")
    old = ddb.get("OldImage")
    precision = ddb.get("ApproximateCreationDateTimePrecision")
    if (
        type(stamp) is not int
        or stamp < 0
        or type(size) is not int
        or size < 0
        or type(keys) is not dict
        or (new is not None and type(new) is not dict)
        or (old is not None and type(old) is not dict)
        or (precision is not None and type(precision) is not str)
        or precision not in _PRECISIONS
    ):
        return None
    payload = StreamPayload.model_construct(**ddb)
    fields = dict(p)
    fields["dynamodb"] = payload
    fields["userIdentity"] = identity
    fields.setdefault("recordFormat", "application/json")
    fields.setdefault("eventSource", "aws:dynamodb")
    return KinesisDynamoRecord.model_construct(**fields)
