"""Type names across the lake's engines: Arrow → Glue/Hive (tables) → Presto (Athena views).

The catalog writes Glue columns with :func:`glue_type`; Athena views need Presto type names
(:func:`presto_type`); the local query engine reads both back. Pure: no AWS SDK here.

Mapping (Arrow → Glue): string/large_string → ``string``, bool → ``boolean``, int8/16/32/64 →
``tinyint``/``smallint``/``int``/``bigint`` (unsigned widen one step, uint64 → decimal(20,0)),
float32/64 → ``float``/``double``, decimal(p,s) → ``decimal(p,s)``, binary → ``binary``,
timestamp (any unit/zone) → ``timestamp``, date32 → ``date``, list → ``array<…>``,
struct → ``struct<…>``, map → ``map<…>``, dictionary → its value type. Types with no faithful
Glue equivalent (null, duration, time, union …) map to ``None``: the column is not cataloged
(Athena ignores Parquet columns the table lacks, so skipping is safe; a null-typed column
carries no data and gets its real type from a later object).
"""

from __future__ import annotations

import logging
import re

import pyarrow as pa
import pyarrow.types as pat

from changelake_lake.columns import Column
from changelake_lake.layout import PARTITION_KEYS
from changelake_lake.schema import PATH_METADATA

log = logging.getLogger(__name__)

_SIMPLE_ARROW: tuple[tuple[object, str], ...] = (
    (pat.is_boolean, "boolean"),
    (pat.is_int8, "tinyint"),
    (pat.is_int16, "smallint"),
    (pat.is_int32, "int"),
    (pat.is_int64, "bigint"),
    (pat.is_uint8, "smallint"),
    (pat.is_uint16, "int"),
    (pat.is_uint32, "bigint"),
    (pat.is_uint64, "decimal(20,0)"),
    (pat.is_float16, "float"),
    (pat.is_float32, "float"),
    (pat.is_float64, "double"),
    (pat.is_string, "string"),
    (pat.is_large_string, "string"),
    (pat.is_binary, "binary"),
    (pat.is_large_binary, "binary"),
    (pat.is_fixed_size_binary, "binary"),
    (pat.is_timestamp, "timestamp"),
    (pat.is_date32, "date"),
    (pat.is_date64, "date"),
)

_PRESTO_SIMPLE = {
    "string": "varchar",
    "int": "integer",
    "float": "real",
    "binary": "varbinary",
}


def glue_type(arrow_type: pa.DataType) -> str | None:
    """The Glue/Hive type name of an Arrow type, or ``None`` when it must not be cataloged."""
    if pat.is_dictionary(arrow_type):
        return glue_type(arrow_type.value_type)
    for predicate, name in _SIMPLE_ARROW:
        if predicate(arrow_type):  # type: ignore[operator]
            return name
    if pat.is_decimal(arrow_type):
        return f"decimal({arrow_type.precision},{arrow_type.scale})"
    if (
        pat.is_list(arrow_type)
        or pat.is_large_list(arrow_type)
        or pat.is_fixed_size_list(arrow_type)
    ):
        inner = glue_type(arrow_type.value_type)
        return None if inner is None else f"array<{inner}>"
    if pat.is_map(arrow_type):
        key, item = glue_type(arrow_type.key_type), glue_type(arrow_type.item_type)
        return None if key is None or item is None else f"map<{key},{item}>"
    if pat.is_struct(arrow_type):
        fields = []
        for field in arrow_type:
            inner = glue_type(field.type)
            if inner is None:
                return None
            fields.append(f"{field.name}:{inner}")
        return f"struct<{','.join(fields)}>" if fields else None
    return None


def presto_type(hive: str) -> str:
    """Presto/Trino type name (what an Athena view stores) of a Glue/Hive type name."""
    hive = hive.strip()
    lower = hive.lower()
    if lower.startswith("array<") and lower.endswith(">"):
        return f"array({presto_type(hive[6:-1])})"
    if lower.startswith("map<") and lower.endswith(">"):
        key, value = _split_top(hive[4:-1])
        return f"map({presto_type(key)}, {presto_type(value)})"
    if lower.startswith("struct<") and lower.endswith(">"):
        fields = []
        for part in _split_top(hive[7:-1]):
            name, _, inner = part.partition(":")
            fields.append(f"{name.strip()} {presto_type(inner)}")
        return f"row({', '.join(fields)})"
    if re.fullmatch(r"(var)?char\(\d+\)", lower):
        return "varchar"
    return _PRESTO_SIMPLE.get(lower, lower)


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside <…> or (…)."""
    parts: list[str] = []
    depth = 0
    start = 0
    for index, char in enumerate(text):
        if char in "<(":
            depth += 1
        elif char in ">)":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def columns_of(schema: pa.Schema) -> tuple[Column, ...]:
    """Glue columns of a Parquet file's Arrow schema (uncatalogable types are left out)."""
    out: list[Column] = []
    for arrow_field in schema:
        if arrow_field.name.lower() in PARTITION_KEYS:
            continue
        hive = glue_type(arrow_field.type)
        if hive is None:
            log.debug(
                "column not cataloged",
                extra={"column": arrow_field.name, "arrow": str(arrow_field.type)},
            )
            continue
        meta = arrow_field.metadata or {}
        path = meta.get(PATH_METADATA)
        out.append(Column(arrow_field.name, hive, path.decode() if path else None))
    return tuple(out)
