"""Table columns and the additive merge rule (schema evolution). Pure.

Rules (ADR 0008): a column, once cataloged, keeps its name and type for ever; a new column is
appended; a column is never dropped; names compare case-insensitively (Glue and Athena fold
case) and the first spelling wins; the partition keys ``dt``/``hour`` are never data columns.
When an object brings a column whose type differs from the table's, the table keeps its type
(never narrowed, never flipped) and the conflict is reported, not raised: drift must not stop
the pipeline, and the consumer's type policy already routes drifted values to companion
columns (``<name>__s``).

:class:`Column` is the one column type of the lake: the catalog's Glue definitions, the merge
rule and the query engines' table definitions (:mod:`changelake_lake.query.model`) all use it.
Pure (no pyarrow): the Arrow → Glue mapping is :func:`changelake_lake.glue_schema.columns_of`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Column:
    """A Glue column: name, Glue/Hive type text and, for attributes, the DynamoDB path.

    Names are as written (the catalog keeps the first spelling); the query engines' Glue
    reader lower-cases them as Athena does.

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
