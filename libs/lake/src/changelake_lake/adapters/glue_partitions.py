"""Glue adapter of :class:`~changelake_lake.rewrite.PartitionCatalog` (injected boto3 client).

``set_location`` is one ``UpdatePartition``: Glue replaces the partition's input as a whole,
so readers resolving the partition get the old location or the new one, never a mix. The
partition's other settings are kept; its columns become the table's current ones (as the
catalog registers partitions, ADR 0008).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from changelake.adapters import aws

from changelake_lake.layout import Partition, changes_table_name

if TYPE_CHECKING:
    from mypy_boto3_glue import GlueClient

MAX_BATCH_GET = 1000  # BatchGetPartition's limit
MAX_BATCH_DELETE = 25  # BatchDeletePartition's limit
_PARTITION_READ_ONLY = {
    "DatabaseName",
    "TableName",
    "CreationTime",
    "LastAccessTime",
    "LastAnalyzedTime",
    "CatalogId",
}


class GluePartitions:
    """Partitions of ``<table>_changes`` in one Glue database."""

    def __init__(self, database: str, client: GlueClient | None = None) -> None:
        self.database = database
        self._glue = client or aws.glue()

    def locations(
        self, table: str, partitions: Sequence[Partition] | None = None
    ) -> dict[Partition, str]:
        """Registered partitions → location (all: GetPartitions; some: BatchGetPartition)."""
        name = changes_table_name(table)
        found: dict[Partition, str] = {}
        try:
            if partitions is None:
                pages = self._glue.get_paginator("get_partitions").paginate(
                    DatabaseName=self.database, TableName=name, ExcludeColumnSchema=True
                )
                for page in pages:
                    for part in page.get("Partitions", []):
                        found[_partition(part)] = _location(part)
                return found
            wanted = sorted(set(partitions))
            for start in range(0, len(wanted), MAX_BATCH_GET):
                chunk = wanted[start : start + MAX_BATCH_GET]
                resp = self._glue.batch_get_partition(
                    DatabaseName=self.database,
                    TableName=name,
                    PartitionsToGet=[{"Values": p.values} for p in chunk],
                )
                if resp.get("UnprocessedKeys"):
                    for key in resp["UnprocessedKeys"]:
                        values = key["Values"]
                        got = self._glue.get_partition(
                            DatabaseName=self.database, TableName=name, PartitionValues=values
                        )["Partition"]
                        found[_partition(got)] = _location(got)
                for part in resp.get("Partitions", []):
                    found[_partition(part)] = _location(part)
        except self._glue.exceptions.EntityNotFoundException:
            return found
        return found

    def set_location(self, table: str, partition: Partition, location: str) -> None:
        """One UpdatePartition: the partition now reads ``location`` (with the table's columns)."""
        name = changes_table_name(table)
        current = self._glue.get_partition(
            DatabaseName=self.database, TableName=name, PartitionValues=partition.values
        )["Partition"]
        columns = self._glue.get_table(DatabaseName=self.database, Name=name)["Table"][
            "StorageDescriptor"
        ].get("Columns", [])
        wanted: dict[str, Any] = {k: v for k, v in current.items() if k not in _PARTITION_READ_ONLY}
        wanted["StorageDescriptor"] = {
            **current.get("StorageDescriptor", {}),
            "Location": location,
            "Columns": columns,
        }
        self._glue.update_partition(
            DatabaseName=self.database,
            TableName=name,
            PartitionValueList=partition.values,
            PartitionInput=wanted,  # type: ignore[arg-type]
        )

    def drop(self, table: str, partitions: Sequence[Partition]) -> None:
        """BatchDeletePartition in chunks of 25 (missing partitions are no error)."""
        name = changes_table_name(table)
        wanted = sorted(set(partitions))
        for start in range(0, len(wanted), MAX_BATCH_DELETE):
            chunk = wanted[start : start + MAX_BATCH_DELETE]
            resp = self._glue.batch_delete_partition(
                DatabaseName=self.database,
                TableName=name,
                PartitionsToDelete=[{"Values": p.values} for p in chunk],
            )
            for error in resp.get("Errors", []):
                code = error.get("ErrorDetail", {}).get("ErrorCode", "")
                if code != "EntityNotFoundException":
                    raise RuntimeError(
                        f"BatchDeletePartition {error.get('PartitionValues')}: {code}"
                    )


def _partition(part: Any) -> Partition:
    values = part["Values"]
    return Partition(str(values[0]), str(values[1]))


def _location(part: Any) -> str:
    location = str(part.get("StorageDescriptor", {}).get("Location", ""))
    return location if location.endswith("/") else location + "/"
