"""The ``Catalog`` port: the ``<table>_changes`` table and its partitions, and an in-memory one.

:class:`Catalog` is the union of what the catalog service and the rewrites (compaction, expiry,
erasure) already ask of Glue, no new method: :class:`TableCatalog` (ensure the table and its
columns, get its columns, ensure partitions; the catalog service's
``changelake_catalog.ports.CatalogRegistry`` extends it) and
:class:`changelake_lake.rewrite.PartitionCatalog` (list partitions with their locations, switch
a partition's location in one write, drop partitions).

Glue implements it with ``changelake_catalog.adapters.glue_registry.GlueRegistry`` (table,
columns, partitions) and :class:`changelake_lake.adapters.glue_partitions.GluePartitions`
(locations, switch, drop) side by side; :class:`InMemoryCatalog` implements it in memory with
the same rules (additive columns, partitions registered with the table's exact columns at
their layout location, idempotent calls). Methods take the *DynamoDB* table name.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from changelake_lake.columns import Column, merge_columns
from changelake_lake.glue_tables import partition_input
from changelake_lake.layout import Partition, changes_table_name
from changelake_lake.rewrite import PartitionCatalog


@dataclass(frozen=True, slots=True)
class TableState:
    """The ``<table>_changes`` columns after a merge: created? which columns were added?"""

    columns: tuple[Column, ...]
    created: bool
    added: tuple[Column, ...] = ()
    conflicts: tuple[tuple[Column, Column], ...] = ()


@dataclass(frozen=True, slots=True)
class PartitionResult:
    """Partitions registered by a call, and those that already existed (both success)."""

    added: int
    existing: int
    calls: int


class TableCatalog(Protocol):
    """``<table>_changes`` and the registration of its partitions (idempotent calls)."""

    def merge_changes_table(self, table: str, incoming: Sequence[Column]) -> TableState:
        """Create ``<table>_changes`` with ``incoming`` columns, or add the missing ones."""
        ...

    def add_partitions(self, table: str, partitions: Sequence[Partition]) -> PartitionResult:
        """Register partitions with exactly the table's current columns (existing = success)."""
        ...


class Catalog(TableCatalog, PartitionCatalog, Protocol):
    """The lake's catalog: ensure table/partitions, get table, list/switch/drop partitions."""

    def table_columns(self, table: str) -> tuple[Column, ...] | None:
        """Columns of ``<table>_changes`` (``None`` if the table does not exist)."""
        ...


class UnknownTableError(LookupError):
    """A partition call on a table the catalog does not have."""


class InMemoryCatalog:
    """A :class:`Catalog` in memory (pure): tables, columns and partition inputs by table."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self._columns: dict[str, tuple[Column, ...]] = {}
        self._partitions: dict[str, dict[Partition, dict[str, Any]]] = {}

    def merge_changes_table(self, table: str, incoming: Sequence[Column]) -> TableState:
        """Create the table with ``incoming`` or append the missing columns (ADR 0008)."""
        name = changes_table_name(table)
        existing = self._columns.get(name)
        if existing is None:
            self._columns[name] = tuple(incoming)
            self._partitions[name] = {}
            return TableState(tuple(incoming), True, tuple(incoming))
        merged = merge_columns(existing, incoming)
        self._columns[name] = merged.columns
        return TableState(merged.columns, False, merged.added, merged.conflicts)

    def table_columns(self, table: str) -> tuple[Column, ...] | None:
        """The table's columns, ``None`` if it does not exist."""
        return self._columns.get(changes_table_name(table))

    def add_partitions(self, table: str, partitions: Sequence[Partition]) -> PartitionResult:
        """Register the new ones at their layout location with the table's current columns."""
        if not partitions:
            return PartitionResult(0, 0, 0)
        columns = self.table_columns(table)
        if columns is None:
            raise UnknownTableError(f"{changes_table_name(table)} does not exist")
        registered = self._partitions[changes_table_name(table)]
        wanted = sorted(set(partitions))
        new = [p for p in wanted if p not in registered]
        for partition in new:
            registered[partition] = partition_input(table, self.bucket, partition, columns)
        return PartitionResult(len(new), len(wanted) - len(new), 1)

    def locations(
        self, table: str, partitions: Sequence[Partition] | None = None
    ) -> dict[Partition, str]:
        """Registered partitions (all, or those of ``partitions`` that exist) → location."""
        registered = self._partitions.get(changes_table_name(table), {})
        chosen = registered if partitions is None else [p for p in partitions if p in registered]
        return {p: str(registered[p]["StorageDescriptor"]["Location"]) for p in chosen}

    def set_location(self, table: str, partition: Partition, location: str) -> None:
        """Point the partition at ``location`` with the table's current columns (one write)."""
        name = changes_table_name(table)
        current = self._partitions.get(name, {}).get(partition)
        if current is None:
            raise UnknownTableError(f"{name} has no partition {partition.path}")
        updated = copy.deepcopy(current)
        updated["StorageDescriptor"]["Location"] = location
        updated["StorageDescriptor"]["Columns"] = copy.deepcopy(
            partition_input(table, self.bucket, partition, self._columns[name])[
                "StorageDescriptor"
            ]["Columns"]
        )
        self._partitions[name][partition] = updated

    def drop(self, table: str, partitions: Sequence[Partition]) -> None:
        """Deregister partitions (missing ones are no error)."""
        registered = self._partitions.get(changes_table_name(table), {})
        for partition in partitions:
            registered.pop(partition, None)

    def partition_columns(self, table: str, partition: Partition) -> list[dict[str, Any]]:
        """The Glue columns a partition was registered with (what a reader of it sees)."""
        columns: list[dict[str, Any]] = self._partitions[changes_table_name(table)][partition][
            "StorageDescriptor"
        ]["Columns"]
        return columns
