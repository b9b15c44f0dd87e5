"""Glue Data Catalog reader: tables, views and registered partitions (paginated, via boto3)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from changelake.adapters import aws

from changelake_lake.columns import Column
from changelake_lake.query.model import PartitionDef, QueryError, TableDef

if TYPE_CHECKING:
    from mypy_boto3_glue import GlueClient


class GlueCatalog:
    """Reads table definitions and partitions from Glue; caches tables for one engine's life."""

    def __init__(self, client: GlueClient | None = None, region: str | None = None) -> None:
        self._glue = client or aws.glue(region)
        self._tables: dict[tuple[str, str], TableDef] = {}

    def table(self, database: str, name: str) -> TableDef:
        """The table or view ``database.name`` (``QueryError`` if Glue does not know it)."""
        key = (database.lower(), name.lower())
        if key not in self._tables:
            try:
                resp = self._glue.get_table(DatabaseName=key[0], Name=key[1])
            except self._glue.exceptions.EntityNotFoundException as exc:
                # Athena's wording, so users recognise the error across engines.
                raise QueryError(
                    f"TABLE_NOT_FOUND: Table 'awsdatacatalog.{key[0]}.{key[1]}' does not exist"
                ) from exc
            self._tables[key] = _table_def(key[0], resp["Table"])
        return self._tables[key]

    def forget(self) -> None:
        """Drop cached definitions (the catalog may have evolved)."""
        self._tables.clear()

    def partitions(self, table: TableDef) -> list[PartitionDef]:
        """Every registered partition of ``table`` (all pages of GetPartitions)."""
        paginator = self._glue.get_paginator("get_partitions")
        found: list[PartitionDef] = []
        for page in paginator.paginate(DatabaseName=table.database, TableName=table.name):
            for part in page.get("Partitions", []):
                location = part.get("StorageDescriptor", {}).get("Location", "")
                values = tuple(part.get("Values", []))
                if not location:
                    # Hive convention: an unset location is the table location plus k=v paths.
                    location = (
                        table.location.rstrip("/")
                        + "/"
                        + "/".join(
                            f"{k.name}={v}"
                            for k, v in zip(table.partition_keys, values, strict=True)
                        )
                    )
                found.append(PartitionDef(values, location))
        return found


def _table_def(database: str, raw: Any) -> TableDef:
    sd = raw.get("StorageDescriptor", {}) or {}
    return TableDef(
        database=database,
        name=str(raw["Name"]).lower(),
        table_type=str(raw.get("TableType", "EXTERNAL_TABLE")),
        columns=tuple(
            Column(c["Name"].lower(), c.get("Type", "string")) for c in sd.get("Columns", [])
        ),
        partition_keys=tuple(
            Column(c["Name"].lower(), c.get("Type", "string")) for c in raw.get("PartitionKeys", [])
        ),
        location=str(sd.get("Location", "")),
        input_format=str(sd.get("InputFormat", "")),
        serde=str((sd.get("SerdeInfo") or {}).get("SerializationLibrary", "")),
        parameters={str(k): str(v) for k, v in (raw.get("Parameters") or {}).items()},
        view_original_text=str(raw.get("ViewOriginalText", "") or ""),
    )
