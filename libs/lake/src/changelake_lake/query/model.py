"""The values the query engines exchange: catalog definitions, results and the one error type."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from changelake_lake.columns import Column


class QueryError(Exception):
    """A query that cannot run: bad SQL, a missing table, or the engine's own failure reason."""


@dataclass(frozen=True, slots=True)
class PartitionDef:
    """One registered partition: its values (in partition-key order) and S3 location."""

    values: tuple[str, ...]
    location: str


@dataclass(frozen=True, slots=True)
class TableDef:
    """A Glue table or view as the local engine needs it."""

    database: str
    name: str
    table_type: str
    columns: tuple[Column, ...]
    partition_keys: tuple[Column, ...] = ()
    location: str = ""
    input_format: str = ""
    serde: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    view_original_text: str = ""

    @property
    def is_view(self) -> bool:
        """True for an Athena view (Glue ``VIRTUAL_VIEW``)."""
        return self.table_type.upper() == "VIRTUAL_VIEW"

    @property
    def is_json(self) -> bool:
        """True when the data is JSON lines (the raw table); otherwise Parquet."""
        text = f"{self.serde} {self.input_format}".lower()
        return "json" in text or ("textinputformat" in text and "parquet" not in text)

    @property
    def projection_enabled(self) -> bool:
        """True when Athena would use partition projection instead of registered partitions."""
        return self.parameters.get("projection.enabled", "").lower() == "true"


@dataclass(slots=True)
class ScanStats:
    """What a local query read: partitions, objects and bytes fetched from S3."""

    partitions: int = 0
    files: int = 0
    bytes_read: int = 0
    partitions_pruned: int = 0


@dataclass(slots=True)
class QueryResult:
    """Rows of a query: column names, engine types and Python values (Decimal for decimals)."""

    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    engine: str
    stats: ScanStats = field(default_factory=ScanStats)
    query_id: str = ""

    def records(self) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def utc_value(value: Any) -> Any:
    """Engines return Hive ``timestamp`` values (zone-less, UTC in this lake) as aware UTC."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    if isinstance(value, list):
        return [utc_value(v) for v in value]
    return value
