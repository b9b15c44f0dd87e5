"""Hive type text (as Glue stores it) → Arrow types, and JSON values → those types.

Glue column types are Hive DDL strings: ``string``, ``bigint``, ``decimal(38,9)``,
``array<string>``, ``struct<a:int,b:map<string,string>>``. The local engine conforms every file
to these types, so a query sees the table's schema whatever each file holds (as Athena does).
"""

from __future__ import annotations

import base64
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from changelake_lake.query.model import QueryError

_SIMPLE: dict[str, pa.DataType] = {
    "string": pa.string(),
    "varchar": pa.string(),
    "char": pa.string(),
    "boolean": pa.bool_(),
    "tinyint": pa.int8(),
    "smallint": pa.int16(),
    "int": pa.int32(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "float": pa.float32(),
    "real": pa.float32(),
    "double": pa.float64(),
    # Athena's Hive ``timestamp`` has no zone; values are UTC wall-clock times.
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
    "binary": pa.binary(),
}


def to_arrow(hive_type: str) -> pa.DataType:
    """Arrow type of a Hive type string (``QueryError`` for anything unknown)."""
    text = hive_type.strip().lower()
    parsed, rest = _parse(text, 0)
    if text[rest:].strip():
        raise QueryError(f"unsupported Hive type {hive_type!r}")
    return parsed


def _parse(text: str, pos: int) -> tuple[pa.DataType, int]:
    match = re.compile(r"\s*([a-z_]+)").match(text, pos)
    if not match:
        raise QueryError(f"unsupported Hive type {text!r}")
    name, pos = match[1], match.end()
    if name in ("array", "map", "struct"):
        pos = _expect(text, pos, "<")
        if name == "array":
            item, pos = _parse(text, pos)
            return pa.list_(item), _expect(text, pos, ">")
        if name == "map":
            key, pos = _parse(text, pos)
            pos = _expect(text, pos, ",")
            value, pos = _parse(text, pos)
            return pa.map_(key, value), _expect(text, pos, ">")
        fields: list[pa.Field] = []
        while True:
            fmatch = re.compile(r"\s*`?([^:`<>,]+?)`?\s*:").match(text, pos)
            if not fmatch:
                raise QueryError(f"unsupported Hive type {text!r}")
            ftype, pos = _parse(text, fmatch.end())
            fields.append(pa.field(fmatch[1].strip(), ftype))
            if text[pos:].lstrip().startswith(","):
                pos = _expect(text, pos, ",")
                continue
            return pa.struct(fields), _expect(text, pos, ">")
    if name == "decimal":
        dmatch = re.compile(r"\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)").match(text, pos)
        if dmatch:
            return pa.decimal128(int(dmatch[1]), int(dmatch[2])), dmatch.end()
        return pa.decimal128(10, 0), pos  # Hive's default precision and scale
    if name in ("varchar", "char"):
        vmatch = re.compile(r"\s*\(\s*\d+\s*\)").match(text, pos)
        if vmatch:
            pos = vmatch.end()
    if name not in _SIMPLE:
        raise QueryError(f"unsupported Hive type {name!r}")
    return _SIMPLE[name], pos


def _expect(text: str, pos: int, token: str) -> int:
    stripped = len(text) - len(text[pos:].lstrip())
    if not text.startswith(token, stripped):
        raise QueryError(f"unsupported Hive type {text!r}: expected {token!r} at {stripped}")
    return stripped + len(token)


def json_value(value: Any, arrow_type: pa.DataType) -> Any:
    """Convert a decoded JSON value to what ``pa.array(..., type=arrow_type)`` accepts.

    Follows the OpenX JSON SerDe: object keys match case-insensitively, a nested object or
    array read as ``string`` keeps its JSON text, and a value of the wrong shape becomes NULL.
    """
    if value is None:
        return None
    try:
        return _json_value(value, arrow_type)
    except (ValueError, TypeError, KeyError, ArithmeticError):
        return None


def _json_value(value: Any, t: pa.DataType) -> Any:
    if pa.types.is_string(t):
        if isinstance(value, dict | list):
            return orjson.dumps(value).decode()
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    if pa.types.is_boolean(t):
        if isinstance(value, bool):
            return value
        return {"true": True, "false": False}[str(value).lower()]
    if pa.types.is_integer(t):
        if isinstance(value, bool | float):
            raise ValueError("not an integer")
        return int(value)
    if pa.types.is_floating(t):
        return float(value)
    if pa.types.is_decimal(t):
        return Decimal(str(value))
    if pa.types.is_timestamp(t):
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError("numeric timestamps are not Hive timestamps")
        text = str(value).replace("T", " ").removesuffix("Z")
        return datetime.fromisoformat(text).replace(tzinfo=None)
    if pa.types.is_date(t):
        return date.fromisoformat(str(value))
    if pa.types.is_binary(t):
        return base64.b64decode(str(value))
    if pa.types.is_list(t):
        if not isinstance(value, list):
            raise ValueError("not an array")
        return [json_value(v, t.value_type) for v in value]
    if pa.types.is_map(t):
        if not isinstance(value, dict):
            raise ValueError("not an object")
        return [(json_value(k, t.key_type), json_value(v, t.item_type)) for k, v in value.items()]
    if pa.types.is_struct(t):
        if not isinstance(value, dict):
            raise ValueError("not an object")
        lowered = {str(k).lower(): v for k, v in value.items()}
        return {f.name: json_value(lowered.get(f.name.lower()), f.type) for f in t}
    raise ValueError(f"unsupported type {t}")


HIVE_TIMESTAMP_UNIT_US = 1000  # Athena (Trino) reads a Hive ``timestamp`` in milliseconds


def hive_millis(values: pa.Array) -> pa.Array:
    """A timestamp array as Athena reads a Hive ``timestamp`` column: rounded to the
    millisecond, half up (the Parquet file may hold microseconds; Trino's Hive connector, with
    Athena's ``timestamp(3)``, rounds them the same way). The Arrow type is kept."""
    # float64 holds epoch microseconds exactly until the year 2255.
    micros = values.cast(pa.timestamp("us")).cast(pa.int64())
    unit = HIVE_TIMESTAMP_UNIT_US
    rounded = pc.multiply(pc.floor(pc.divide(pc.add(micros, unit // 2), float(unit))), unit)
    return rounded.cast(pa.int64()).cast(pa.timestamp("us")).cast(values.type)
