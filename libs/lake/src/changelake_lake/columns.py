"""Table columns and the additive merge rule (schema evolution). Pure.

Rules (ADR 0008): a column, once cataloged, keeps its name and type for ever; a new column is
appended; a column is never dropped; names compare case-insensitively (Glue and Athena fold
case) and the first spelling wins; the partition keys ``dt``/``hour`` are never data columns.
When an object brings a column whose type differs from the table's, the table keeps its type
(never narrowed, never flipped) and the conflict is reported, not raised: drift must not stop
the pipeline, and the consumer's type policy already routes drifted values to companion
columns (``<name>__s``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from changelake_lake.glue_schema import glue_type
from changelake_lake.layout import PARTITION_KEYS
from changelake_lake.schema import PATH_METADATA

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Column:
    """A Glue column: name, Glue/Hive type name and, for attributes, the DynamoDB path.

    ``attribute_path`` (JSON list of the top-level name and map keys) is what the consumer
    recorded in the Parquet field metadata; Glue keeps it as the column's comment and
    parameter ``changelake.attribute_path`` so users can find the column of an attribute
    (docs/adr/0018). It takes no part in equality: a column is its name and type.
    """

    name: str
    type: str
    attribute_path: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class MergeResult:
    """The merged column list, the columns it added, and type conflicts left as they were."""

    columns: tuple[Column, ...]
    added: tuple[Column, ...]
    conflicts: tuple[tuple[Column, Column], ...]


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


def merge_columns(existing: Sequence[Column], incoming: Iterable[Column]) -> MergeResult:
    """Existing columns in their order, then new incoming ones in arrival order (additive)."""
    merged = list(existing)
    by_name = {c.name.lower(): c for c in merged}
    added: list[Column] = []
    conflicts: list[tuple[Column, Column]] = []
    for column in incoming:
        known = by_name.get(column.name.lower())
        if known is None:
            merged.append(column)
            added.append(column)
            by_name[column.name.lower()] = column
        elif known.type.replace(" ", "").lower() != column.type.replace(" ", "").lower():
            conflicts.append((known, column))
    return MergeResult(tuple(merged), tuple(added), tuple(conflicts))
