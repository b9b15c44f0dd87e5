"""Raw Kinesis record → one prepared change-table row, on a fast path or the codec's path.

:func:`prepare` is the hot path. For a well-formed record in the common shapes (S, N with a
plain decimal text that fits decimal(38,9), BOOL, NULL, maps) it validates and converts the
DynamoDB JSON in one walk straight into column cells and the plain-JSON images — no decoded
images, no pydantic. Any value it does not handle itself (B, sets, lists, unusual numbers) is
decoded by the shared codec (``changelake.ddb_json.deserialize_value``), and anything doubtful
about the record (a bad value, an odd envelope, a key that differs from the image) sends the
whole record down :func:`prepare_event` after :func:`changelake.events.decode_record`, the
shared codec itself (rare records, so its speed does not matter). Tests check both paths
yield identical rows on every golden fixture and on random records.
"""

from __future__ import annotations

import base64
import binascii
import re
from decimal import Decimal
from typing import Any

import orjson
from changelake import ddb_json
from changelake.events import (
    ChangeEvent,
    DecodeFailure,
    Position,
    decode_record,
    duplicate_key_error,
)
from changelake.privacy import PrivacyPolicy, Redaction, UnreadableRecordError, decode_redacted
from changelake.table_name import check_table_name
from changelake.timeutil import normalize_epoch_us
from changelake.wire import MAX_EVENT_ID_LENGTH, TTL_PRINCIPAL
from changelake_lake import schema
from changelake_lake.column_policy import (
    Cell,
    PreparedRow,
    image_json,
    number_fits,
    plain,
    value_json,
)

# Numbers whose text is already canonical (str(Decimal(t)) == t), within DynamoDB's limits and
# exactly representable as decimal(38, 9): at most 29 integer and 9 fraction digits, no
# exponent, no leading zeros, and not a fraction with 6+ leading zeros (Decimal would print
# those in E-notation).
_FAST_NUMBER = re.compile(r"-?(?:[1-9][0-9]{0,28}|0(?!\.0{6}))(?:\.[0-9]{1,9})?\Z")
_MAX_FAST_DEPTH = 16
_fast_number = _FAST_NUMBER.match
_fragment = orjson.Fragment
_EVENT_NAMES = frozenset({"INSERT", "MODIFY", "REMOVE"})
_PRECISIONS = frozenset({None, "MILLISECOND", "MICROSECOND"})


class _SlowPathError(Exception):
    """The fast path declines this record: use the shared codec's path."""


_valid_tables: set[str] = set()


def _table_ok(table: str) -> bool:
    if table in _valid_tables:
        return True
    try:
        check_table_name(table)
    except ValueError:
        return False
    if len(_valid_tables) < 1024:
        _valid_tables.add(table)
    return True


def prepare(
    raw: bytes,
    position: Position,
    expected_table: str | None = None,
    privacy: PrivacyPolicy | None = None,
) -> PreparedRow | DecodeFailure:
    """Decode one record into a row, or a failure value (exactly as strict as the codec).

    With a privacy policy, the policy is applied to the parsed record before anything else
    (``changelake.privacy``): the row, its images and a failure's bytes hold only redacted data.
    """
    if privacy is not None:
        return _prepare_private(raw, position, expected_table, privacy)
    try:
        payload = orjson.loads(raw)
        if duplicate_key_error(raw, payload) is not None:
            raise _SlowPathError  # the codec says which key
        return _prepare_fast(payload, position, expected_table, None)
    except _SlowPathError:
        pass
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        pass  # anything surprising: the codec's path decides, with its own reasons
    return _prepare_slow(decode_record(raw, position, expected_table=expected_table))


def _prepare_slow(decoded: ChangeEvent | DecodeFailure) -> PreparedRow | DecodeFailure:
    """The codec's path: ``decoded`` is the shared codec's answer."""
    if isinstance(decoded, DecodeFailure):
        return decoded  # the codec also applies the table-name rule (check_table_name)
    return prepare_event(decoded)


def _prepare_private(
    raw: bytes, position: Position, expected_table: str | None, privacy: PrivacyPolicy
) -> PreparedRow | DecodeFailure:
    try:
        payload = orjson.loads(raw)
        # Duplicate keys are decided on the original text and its parse (before redaction
        # changes the key count); the policy's own decode says the same, with redacted bytes.
        if duplicate_key_error(raw, payload) is not None:
            raise UnreadableRecordError
        redaction = privacy.redact_record(payload)  # in place; None: a table it does not cover
    except (orjson.JSONDecodeError, UnreadableRecordError):
        redacted, redaction = privacy.redact_bytes(raw, expected_table)
        return _prepare_slow(decode_redacted(redacted, redaction, position, expected_table))
    if redaction is None or redaction.error is None:
        try:
            return _prepare_fast(payload, position, expected_table, redaction)
        except _SlowPathError:
            pass
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            pass
    redacted = raw if redaction is None else orjson.dumps(payload)
    return _prepare_slow(decode_redacted(redacted, redaction, position, expected_table))


def prepare_event(event: ChangeEvent) -> PreparedRow:
    """The row of an already decoded event (the codec's path)."""
    cells: list[Cell] = []
    number_text = _event_cells(event.image, (), 0, cells)
    pos = event.position
    return PreparedRow(
        event.table,
        event.event_time_us,
        (
            event.event_id,
            event.event_name.value,
            event.event_time_us,
            event.item_key,
            image_json(event.new_image),
            image_json(event.old_image),
            list(event.changed_attributes),
            event.is_ttl_delete,
            event.size_bytes,
            pos.shard_id,
            pos.sequence_number,
            pos.arrival_time_us,
        ),
        cells,
        number_text,
    )


def _event_cells(
    image: dict[str, Any], prefix: tuple[str, ...], depth: int, cells: list[Cell]
) -> int:
    number_text = 0
    for name, value in image.items():
        number_text += _value_cells((*prefix, name), value, depth, cells)
    return number_text


def _value_cells(path: tuple[str, ...], value: Any, depth: int, cells: list[Cell]) -> int:
    """Cells of one decoded value (the column policy of ``changelake_lake.schema``)."""
    kind = type(value)
    if kind is str:
        cells.append((schema.column_name(path, "S"), value))
    elif kind is Decimal:
        if number_fits(value):
            cells.append((schema.column_name(path, "N"), str(value)))
        else:
            cells.append((schema.number_text_column(path), str(value)))
            return 1
    elif kind is bool:
        cells.append((schema.column_name(path, "BOOL"), value))
    elif value is None:
        pass
    elif kind is dict:
        if depth < schema.MAX_FLATTEN_DEPTH:
            return _event_cells(value, path, depth + 1, cells)
        cells.append((schema.column_name(path, "M"), value_json(value)))
    elif kind is list:
        cells.append((schema.column_name(path, "L"), value_json(value)))
    elif kind is bytes:
        cells.append((schema.column_name(path, "B"), value))
    else:  # a non-empty set: its members say which set type it is
        members = sorted(value)
        first = members[0]
        if isinstance(first, str):
            cells.append((schema.column_name(path, "SS"), members))
        elif isinstance(first, Decimal):
            cells.append((schema.column_name(path, "NS"), [str(m) for m in members]))
        else:
            cells.append((schema.column_name(path, "BS"), plain(value)))
    return 0


# -- the fast path ---------------------------------------------------------------------------


def _prepare_fast(
    p: Any, position: Position, expected_table: str | None, redaction: Redaction | None
) -> PreparedRow | DecodeFailure:
    if type(p) is not dict:
        raise _SlowPathError
    event_id = p.get("eventID")
    name = p.get("eventName")
    table = p.get("tableName")
    ddb = p.get("dynamodb")
    ident = p.get("userIdentity")
    if (
        type(p.get("awsRegion")) is not str
        or type(event_id) is not str
        or not event_id
        or len(event_id) > MAX_EVENT_ID_LENGTH
        or type(name) is not str
        or name not in _EVENT_NAMES
        or type(table) is not str
        or not table
        or type(ddb) is not dict
        or p.get("recordFormat", "application/json") != "application/json"
        or p.get("eventSource", "aws:dynamodb") != "aws:dynamodb"
        or (expected_table is not None and table != expected_table)
        or not _table_ok(table)
    ):
        raise _SlowPathError
    ttl = False
    if ident is not None:
        if (
            type(ident) is not dict
            or type(ident.get("type")) is not str
            or type(ident.get("principalId")) is not str
        ):
            raise _SlowPathError
        ttl = (
            name == "REMOVE"
            and ident["type"] == "Service"
            and ident["principalId"] == TTL_PRINCIPAL
        )
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
        or not 1 <= len(keys) <= 2
        or (precision is not None and type(precision) is not str)
        or precision not in _PRECISIONS
    ):
        raise _SlowPathError
    before: dict[str, Any] | None = None  # MODIFY's old image
    if name == "INSERT":
        if type(new) is not dict or old is not None:
            raise _SlowPathError
        image = new
    elif name == "REMOVE":
        if type(old) is not dict or new is not None:
            raise _SlowPathError
        image = old
    else:
        if type(new) is not dict or type(old) is not dict:
            raise _SlowPathError
        image = new
        before = old
    event_time_us = normalize_epoch_us(stamp, precision)
    key_values: dict[str, Any] = {}
    for key_name, av in keys.items():
        if type(av) is not dict or len(av) != 1:
            raise _SlowPathError
        ((tag, value),) = av.items()
        if tag == "S" and type(value) is str and value:
            key_values[key_name] = value
        elif tag == "N" and type(value) is str and _fast_number(value):
            key_values[key_name] = _fragment(value)
        else:
            raise _SlowPathError
        if key_name in image and image[key_name] != av:
            raise _SlowPathError
    cells: list[Cell] = []
    stats = [0]
    image_plain = _walk(image, (), 0, cells, stats)
    if before is not None:
        # The old image: attributes whose raw value equals the new image's were validated
        # there and reuse its plain value; the others are validated here, and only they can
        # be changed attributes (besides those the new image adds).
        get = image.get
        differing = {attr: av for attr, av in before.items() if get(attr) != av}
        if differing:
            differing_plain = _walk(differing, (), 0, None, stats)
            old_plain = {
                attr: differing_plain[attr] if attr in differing else image_plain[attr]
                for attr in before
            }
        else:
            old_plain = {attr: image_plain[attr] for attr in before}
        changed = [a for a in image if a not in before]
        for attr, av in differing.items():
            if attr not in image or not _equal(av, image[attr]):
                changed.append(attr)
        changed.sort()
        if redaction is not None:
            changed = list(redaction.changed_attributes(changed))
        new_json: str | None = orjson.dumps(image_plain).decode()
        old_json: str | None = orjson.dumps(old_plain).decode()
    else:
        changed = sorted(image)
        if redaction is not None:
            changed = list(redaction.changed_attributes(changed))
        if name == "INSERT":
            new_json, old_json = orjson.dumps(image_plain).decode(), None
        else:
            new_json, old_json = None, orjson.dumps(image_plain).decode()
    if len(key_values) == 1:
        item_key = orjson.dumps(key_values).decode()
    else:
        item_key = orjson.dumps({k: key_values[k] for k in sorted(key_values)}).decode()
    return PreparedRow(
        table,
        event_time_us,
        (
            event_id,
            name,
            event_time_us,
            item_key,
            new_json,
            old_json,
            changed,
            ttl,
            size,
            position.shard_id,
            position.sequence_number,
            position.arrival_time_us,
        ),
        cells,
        stats[0],
    )


def _equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Decoded equality of two validated values whose raw JSON differs (codec semantics)."""
    ((tag_a, va),) = a.items()
    ((tag_b, vb),) = b.items()
    if tag_a == tag_b and tag_a in ("S", "BOOL"):
        return bool(va == vb)
    if tag_a == tag_b == "N":
        return Decimal(va) == Decimal(vb)  # "1.0" equals "1"
    if tag_a == tag_b == "SS":
        return set(va) == set(vb)  # validated: unique strings; order does not matter
    if tag_a == tag_b == "NS":
        return {Decimal(t) for t in va} == {Decimal(t) for t in vb}
    # set order, map key order, BOOL vs N (True == 1 in Python): exactly the codec's answer
    return bool(ddb_json.deserialize_value(a) == ddb_json.deserialize_value(b))


# Column names by map path, then attribute name: (tag, column) of the last tag seen there.
# Bounded: attribute names come from the data, so the cache stops growing at a limit.
_columns_by_prefix: dict[tuple[str, ...], dict[str, tuple[str, str]]] = {}
_COLUMN_CACHE_LIMIT = 65536
_column_cache_size = [0]
_NUMBER_TEXT = "N#text"  # pseudo tag: the companion text column of numbers that do not fit


def _column_name(prefix: tuple[str, ...], attr: str, tag: str) -> str:
    if tag == _NUMBER_TEXT:
        return schema.number_text_column((*prefix, attr))
    return schema.column_name((*prefix, attr), tag)


def _walk(
    image: dict[str, Any],
    prefix: tuple[str, ...],
    depth: int,
    cells: list[Cell] | None,
    stats: list[int],
) -> dict[str, Any]:
    """Validate a DynamoDB-JSON map, return its plain-JSON form, collect its column cells."""
    out: dict[str, Any] = {}
    columns: dict[str, tuple[str, str]] | None = None
    if cells is not None:
        columns = _columns_by_prefix.get(prefix)
        if columns is None:
            columns = {}
            if _column_cache_size[0] < _COLUMN_CACHE_LIMIT:
                _columns_by_prefix[prefix] = columns
    if not depth and "" in image:
        raise _SlowPathError  # empty top-level names are the codec's to reject
    for attr, av in image.items():
        if type(av) is not dict:
            raise _SlowPathError
        # Not exactly one type key: ValueError, which sends the record down the codec's path.
        ((tag, value),) = av.items()
        # Each branch sets the plain value and, for a column cell, its tag and cell value.
        cell_tag: str = tag
        cell: Any
        if tag == "S":
            if type(value) is not str:
                raise _SlowPathError
            out[attr] = cell = value
        elif tag == "N":
            if type(value) is str and _fast_number(value):
                out[attr] = _fragment(value)
                cell = value
            else:
                # Unusual text or magnitude: the codec's exact parser (raises → codec's path).
                number = ddb_json.parse_number(value)
                cell = str(number)
                out[attr] = _fragment(cell)
                if not number_fits(number):
                    cell_tag = _NUMBER_TEXT
                    if cells is not None:
                        stats[0] += 1
        elif tag == "BOOL":
            if type(value) is not bool:
                raise _SlowPathError
            out[attr] = cell = value
        elif tag == "NULL":
            if value is not True:
                raise _SlowPathError
            out[attr] = None
            continue
        elif tag == "M" and type(value) is dict:
            if depth >= _MAX_FAST_DEPTH:
                raise _SlowPathError
            flatten = cells is not None and depth < schema.MAX_FLATTEN_DEPTH
            inner = _walk(value, (*prefix, attr), depth + 1, cells if flatten else None, stats)
            out[attr] = inner
            if cells is None or flatten:
                continue
            cell = orjson.dumps(inner).decode()
        elif tag == "SS" and type(value) is list and value:
            members = sorted(value)
            for i in range(len(members)):
                if type(members[i]) is not str or (i and members[i] == members[i - 1]):
                    raise _SlowPathError
            out[attr] = cell = members
        elif tag == "B" and type(value) is str:
            try:
                data = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise _SlowPathError from None
            out[attr] = base64.b64encode(data).decode("ascii")
            cell = data
        elif tag == "NS" and type(value) is list and value and _fast_numbers(value):
            numbers = [Decimal(t) for t in value]
            if len(set(numbers)) != len(numbers):
                raise _SlowPathError  # duplicate members ("1" and "1.0"): the codec rejects
            texts = [t for _, t in sorted(zip(numbers, value, strict=True))]
            out[attr] = [_fragment(t) for t in texts]
            cell = texts
        elif tag == "L" and type(value) is list:
            items = [_plain_av(v, depth + 1, stats) for v in value]
            out[attr] = items
            if cells is None:
                continue
            cell = orjson.dumps(items).decode()
        else:
            # Everything else through the shared codec (raises DdbJsonError → codec's path).
            # Only at the top level, where its depth count starts exactly where the codec's does.
            if depth:
                raise _SlowPathError
            decoded = ddb_json.deserialize_value(av)
            out[attr] = plain(decoded)
            if cells is not None:
                stats[0] += _value_cells((*prefix, attr), decoded, depth, cells)
            continue
        if columns is not None:
            hit = columns.get(attr)
            if hit is None or hit[0] != cell_tag:
                hit = (cell_tag, _column_name(prefix, attr, cell_tag))
                if _column_cache_size[0] < _COLUMN_CACHE_LIMIT:
                    columns[attr] = hit
                    _column_cache_size[0] += 1
            cells.append((hit[1], cell))  # type: ignore[union-attr]
    return out


def _fast_numbers(texts: list[Any]) -> bool:
    match = _FAST_NUMBER.match
    return all(type(t) is str and match(t) for t in texts)


def _plain_av(av: Any, depth: int, stats: list[int]) -> Any:
    """Plain-JSON form of one nested value (inside a list); no columns."""
    if type(av) is not dict or len(av) != 1 or depth >= _MAX_FAST_DEPTH:
        raise _SlowPathError
    ((tag, value),) = av.items()
    if tag == "S":
        if type(value) is not str:
            raise _SlowPathError
        return value
    if tag == "N":
        if type(value) is not str or not _fast_number(value):
            raise _SlowPathError
        return _fragment(value)
    if tag == "BOOL":
        if type(value) is not bool:
            raise _SlowPathError
        return value
    if tag == "NULL":
        if value is not True:
            raise _SlowPathError
        return None
    if tag == "M" and type(value) is dict:
        return _walk(value, (), depth + 1, None, stats)
    if tag == "L" and type(value) is list:
        return [_plain_av(v, depth + 1, stats) for v in value]
    raise _SlowPathError
