"""The lake's ``Catalog`` port, its rules, its errors, and the in-memory implementation (ADR 0039).

:class:`Catalog` is every call the catalog service, maintenance (compaction, snapshot, expiry,
late data), the ops commands, erasure and the query engine make on the lake's catalog: the
``<table>_changes`` table and its partitions (ensure, list, switch a location, drop), the raw
and errors tables, the ``_current`` and ``_history`` views, the privacy policy parameters, the
current-state snapshot, and the read side the query engine needs (``describe`` any table or
view, its partitions). Methods take the *DynamoDB* table name; Glue names come from
:mod:`changelake_lake.layout`.

:class:`Catalog` is an abstract class that implements the whole port once, over a few storage
primitives (get, create, update a table with its version; create, get, update, delete
partitions), as pyiceberg's ``MetastoreCatalog`` does for its Glue and SQL catalogs. Two
implementations fill in the primitives: ``changelake_lake.adapters.glue_catalog.GlueCatalog``
(boto3) and :class:`InMemoryCatalog` (dicts, pure). So both follow the same rules (additive columns,
partitions registered with the table's exact columns at their layout location, views never
narrowed, optimistic table writes, idempotent calls) and raise the same errors:

* :class:`NotFoundError` (also a :class:`LookupError`): the database, table, view or partition
  a call needs does not exist;
* :class:`ConflictError`: concurrent writers kept changing a table past the retry budget;
* :class:`UnavailableError`: the catalog kept throttling or could not be reached;
* :class:`CatalogError`: their base, and any other refusal (``code`` = the catalog's code).

Only the Glue adapter knows botocore; it maps botocore errors to these.
"""

from __future__ import annotations

import copy
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from changelake import privacy

from changelake_lake.athena_view import decode_presto_view
from changelake_lake.columns import Column, merge_columns
from changelake_lake.glue_tables import (
    changes_table_input,
    columns_from_glue,
    errors_table_input,
    firehose_errors_table_input,
    partition_input,
    raw_table_input,
    snapshot_partition_input,
    snapshot_table_input,
    table_input_from,
    view_table_input,
    with_columns,
)
from changelake_lake.history_view import RESERVED, history_view_name, history_view_table_input
from changelake_lake.layout import DATABASE, Partition, changes_table_name, current_view_name
from changelake_lake.query.model import PartitionDef, TableDef
from changelake_lake.snapshot_view import SnapshotState, snapshot_table_name, state_of

log = logging.getLogger(__name__)

# -- errors ------------------------------------------------------------------------------------


class CatalogError(Exception):
    """A catalog call failed; ``code`` is the catalog's own error code when there is one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class NotFoundError(CatalogError, LookupError):
    """The database, table, view or partition a call needs does not exist."""


class ConflictError(CatalogError):
    """Another writer changed the same entry (more often than the retry budget allows)."""


class UnavailableError(CatalogError):
    """The catalog kept throttling, or could not be reached, past the retry budget."""


# -- values ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TableState:
    """The ``<table>_changes`` columns after a merge: created? which columns were added?"""

    columns: tuple[Column, ...]
    created: bool
    added: tuple[Column, ...] = ()
    conflicts: tuple[tuple[Column, Column], ...] = ()
    privacy_version: str = privacy.NO_POLICY
    """The privacy policy version the table records (read by the merge: no extra call)."""


@dataclass(frozen=True, slots=True)
class PartitionResult:
    """Partitions registered by a call, and those that already existed (both success)."""

    added: int
    existing: int
    calls: int
    created: frozenset[tuple[str, ...]] = frozenset()
    """Values of the partitions this call created (it knows them from the same answer): they
    did not exist before it, so no rewrite can have moved them yet (ADR 0045)."""


# -- the port, its rules once ------------------------------------------------------------------

Compute = Callable[[dict[str, Any] | None], dict[str, Any] | None]
Entries = list[dict[str, Any]]  # stored tables or partitions, as Glue returns them
Wanted = Sequence[Sequence[str]]  # partition values
_PARTITION_READ_ONLY = frozenset(
    {
        "DatabaseName",
        "TableName",
        "CreationTime",
        "LastAccessTime",
        "LastAnalyzedTime",
        "CatalogId",
    }
)


class Catalog(ABC):
    """The lake's catalog: its public methods are the port (see module doc), implemented once
    here over storage primitives (the abstract ``_`` methods) that an implementation supplies.
    Every call is idempotent and safe against concurrent workers; ``locations``,
    ``set_location`` and ``drop`` are what the rewrites ask
    (:class:`changelake_lake.rewrite.PartitionCatalog`).

    Table writes are optimistic: read the table and its version, compute the new input,
    re-read to check the version is unchanged, then update *at that version*; a conflict
    starts again from the read (ADR 0008).
    """

    def __init__(self, bucket: str, database: str, *, attempts: int = 6) -> None:
        self.bucket = bucket
        self.database = database
        self._attempts = attempts

    # -- primitives (the storage) ----------------------------------------------------------

    @abstractmethod
    def _create_database(self) -> bool:
        """Create the database; ``False`` if it exists."""

    @abstractmethod
    def _get_table(self, name: str, database: str | None = None) -> dict[str, Any] | None:
        """The stored table (with ``VersionId`` where the store keeps versions), or ``None``."""

    @abstractmethod
    def _create_table(self, table_input: dict[str, Any]) -> bool:
        """Create a table; ``False`` if one of that name exists."""

    @abstractmethod
    def _update_table(self, table_input: dict[str, Any], version: str | None) -> bool:
        """Replace a table if it is still at ``version``; ``False`` on a version conflict."""

    @abstractmethod
    def _create_partitions(self, name: str, inputs: Sequence[dict[str, Any]]) -> PartitionResult:
        """Create partitions of table ``name``; existing ones are counted, not errors."""

    @abstractmethod
    def _get_partitions(
        self, name: str, values: Wanted | None = None, db: str | None = None
    ) -> Entries:
        """Partitions of table ``name``: all, or those of ``values`` that exist (a missing
        table has none)."""

    @abstractmethod
    def _get_partition(self, name: str, values: Sequence[str]) -> dict[str, Any]:
        """One partition (:class:`NotFoundError` if missing)."""

    @abstractmethod
    def _create_partition(self, name: str, partition: dict[str, Any]) -> bool:
        """Create one partition; ``False`` if it exists."""

    @abstractmethod
    def _update_partition(
        self, name: str, values: Sequence[str], partition: dict[str, Any]
    ) -> None:
        """Replace one partition's input in one write."""

    @abstractmethod
    def _delete_partitions(self, name: str, values: Sequence[Sequence[str]]) -> None:
        """Delete partitions (missing ones are no error)."""

    def _conflict(self, name: str, attempt: int) -> None:
        """A version conflict on ``name``: the Glue adapter backs off a little."""
        log.info("table changed concurrently, retrying", extra={"table": name, "attempt": attempt})

    # -- table writes ----------------------------------------------------------------------

    def _write_table(self, name: str, compute: Compute) -> bool:
        """Create or update ``name`` with optimistic concurrency; whether anything was written.

        ``compute`` gets the current table (or ``None``) and returns the ``TableInput`` to
        write, or ``None`` when the table is already as wanted. It may be called many times.
        """
        for attempt in range(self._attempts * 2):
            current = self._get_table(name)
            wanted = compute(current)
            if wanted is None:
                return False
            if current is None:
                if self._create_table(wanted):
                    return True
                continue  # another worker created it: merge into it
            version = current.get("VersionId")
            latest = self._get_table(name)  # (a store may ignore VersionId on update)
            if latest is None or latest.get("VersionId") != version:
                self._conflict(name, attempt)
                continue
            if self._update_table(wanted, version):
                return True
            self._conflict(name, attempt)
        raise ConflictError(
            f"{name}: gave up after repeated concurrent updates", "ConcurrentModificationException"
        )

    def _create_if_missing(self, table_input: dict[str, Any]) -> bool:
        created = self._create_table(table_input)
        if created:
            log.info("table written", extra={"table": table_input["Name"], "table_created": True})
        return created

    # -- database, changes table, partitions -----------------------------------------------

    def ensure_database(self) -> None:
        """Create the database if it is missing."""
        self._create_database()

    def table_columns(self, table: str) -> tuple[Column, ...] | None:
        """Columns of ``<table>_changes`` (``None`` if the table does not exist)."""
        current = self._get_table(changes_table_name(table))
        if current is None:
            return None
        return columns_from_glue(current["StorageDescriptor"].get("Columns", []))

    def merge_changes_table(self, table: str, incoming: Sequence[Column]) -> TableState:
        """Create ``<table>_changes`` with ``incoming`` columns, or add the missing ones."""
        outcome: dict[str, Any] = {}

        def compute(current: dict[str, Any] | None) -> dict[str, Any] | None:
            if current is None:
                outcome.update(
                    columns=tuple(incoming),
                    added=tuple(incoming),
                    conflicts=(),
                    created=True,
                    privacy=privacy.NO_POLICY,
                )
                return changes_table_input(table, self.bucket, incoming)
            existing = columns_from_glue(current["StorageDescriptor"].get("Columns", []))
            merged = merge_columns(existing, incoming)
            params = current.get("Parameters") or {}
            outcome.update(
                columns=merged.columns,
                added=merged.added,
                conflicts=merged.conflicts,
                created=False,
                privacy=str(params.get(privacy.VERSION_PARAMETER, privacy.NO_POLICY)),
            )
            if not merged.added:
                return None
            return with_columns(table_input_from(current), merged.columns)

        wrote = self._write_table(changes_table_name(table), compute)
        state = TableState(
            columns=outcome["columns"],
            created=wrote and bool(outcome["created"]),
            added=outcome["added"] if wrote else (),
            conflicts=outcome["conflicts"],
            privacy_version=outcome["privacy"],
        )
        if wrote:
            log.info(
                "table written",
                extra={
                    "table": changes_table_name(table),
                    "table_created": state.created,
                    "columns_added": [c.name for c in state.added],
                },
            )
        return state

    def add_partitions(
        self,
        table: str,
        partitions: Sequence[Partition],
        columns: Sequence[Column] | None = None,
    ) -> PartitionResult:
        """Register partitions with the table's exact current columns (existing = success).

        ``columns``: the table's columns as the caller has just read or written them (the
        :class:`TableState` of a merge a moment ago), which saves reading the table again.
        """
        if not partitions:
            return PartitionResult(0, 0, 0)
        if columns is None:
            columns = self.table_columns(table)
        if columns is None:
            raise NotFoundError(
                f"{changes_table_name(table)} does not exist", "EntityNotFoundException"
            )
        inputs = [partition_input(table, self.bucket, p, columns) for p in sorted(set(partitions))]
        result = self._create_partitions(changes_table_name(table), inputs)
        log.info(
            "partitions registered",
            extra={
                "table": changes_table_name(table),
                "added": result.added,
                "existing": result.existing,
            },
        )
        return result

    def locations(
        self, table: str, partitions: Sequence[Partition] | None = None
    ) -> dict[Partition, str]:
        """Registered partitions (all, or those of ``partitions`` that exist) → location."""
        wanted = None if partitions is None else [p.values for p in sorted(set(partitions))]
        found: dict[Partition, str] = {}
        for part in self._get_partitions(changes_table_name(table), wanted):
            values = part["Values"]
            location = str(part.get("StorageDescriptor", {}).get("Location", ""))
            found[Partition(str(values[0]), str(values[1]))] = (
                location if location.endswith("/") else location + "/"
            )
        return found

    def set_location(self, table: str, partition: Partition, location: str) -> None:
        """One write: the partition reads ``location`` with the table's current columns."""
        name = changes_table_name(table)
        current = self._get_partition(name, partition.values)
        columns = self.table_columns(table)
        if columns is None:
            raise NotFoundError(f"{name} does not exist", "EntityNotFoundException")
        wanted: dict[str, Any] = {k: v for k, v in current.items() if k not in _PARTITION_READ_ONLY}
        wanted["StorageDescriptor"] = {
            **current.get("StorageDescriptor", {}),
            "Location": location,
            "Columns": partition_input(table, self.bucket, partition, columns)["StorageDescriptor"][
                "Columns"
            ],
        }
        self._update_partition(name, partition.values, wanted)

    def drop(self, table: str, partitions: Sequence[Partition]) -> None:
        """Deregister partitions (missing ones are no error)."""
        values = [p.values for p in sorted(set(partitions))]
        if values:
            self._delete_partitions(changes_table_name(table), values)

    # -- raw/errors tables, privacy --------------------------------------------------------

    def ensure_raw_table(self, table: str) -> bool:
        """Create ``<table>_raw`` (partition projection) if missing; whether it was created.

        The tables over the JSON-lines error prefixes, ``<table>_errors`` and
        ``firehose_error_records``, are created with it (ADR 0031).
        """
        self._create_if_missing(errors_table_input(table, self.bucket))
        self._create_if_missing(firehose_errors_table_input(self.bucket))
        return self._create_if_missing(raw_table_input(table, self.bucket))

    def record_privacy(self, table: str, version: str, rules: str | None) -> bool:
        """Record which privacy policy wrote the newest objects (ADR 0027).

        Parameters of ``<table>_changes``: ``changelake.privacy.version`` (the newest),
        ``changelake.privacy.rules`` (its paths and actions, never the key) and
        ``changelake.privacy.versions`` (every version seen, in order: a table whose history
        mixes policies says so). A table never written under a policy stays untouched.
        """

        def compute(current: dict[str, Any] | None) -> dict[str, Any] | None:
            if current is None:
                return None  # merge_changes_table creates it first
            params = dict(current.get("Parameters") or {})
            if params.get(privacy.VERSION_PARAMETER, privacy.NO_POLICY) == version:
                return None
            seen = [v for v in params.get(privacy.VERSIONS_PARAMETER, "").split(",") if v]
            params[privacy.VERSIONS_PARAMETER] = ",".join([*seen, version])
            params[privacy.VERSION_PARAMETER] = version
            if rules is None:
                params.pop(privacy.RULES_PARAMETER, None)
            else:
                params[privacy.RULES_PARAMETER] = rules
            return {**table_input_from(current), "Parameters": params}

        wrote = self._write_table(changes_table_name(table), compute)
        if wrote:
            log.info("privacy policy recorded", extra={"table": table, "version": version})
        return wrote

    # -- views -----------------------------------------------------------------------------

    def ensure_current_view(self, table: str) -> bool:
        """(Re)write ``<table>_current`` over the table's current columns; whether written.
        ``<table>_history`` is (re)written with it (:meth:`ensure_history_view`).

        The view is read before the table's columns, so its columns are never older than what
        another worker wrote before us; a view is never replaced by one with fewer columns.
        """
        name = current_view_name(table)

        def compute(current: dict[str, Any] | None) -> dict[str, Any] | None:
            columns = self.table_columns(table)
            if not columns:
                return None
            snapshot = state_of(current.get("Parameters")) if current else None
            wanted = view_table_input(table, columns, self.database, snapshot)
            if current is None:
                return wanted
            if current.get("ViewOriginalText") == wanted["ViewOriginalText"] and (
                "Description" not in current
            ):
                return None  # (a Description hid the view from Trino and Athena: rewrite)
            if _view_columns(current) > {c.name for c in columns}:
                return None  # a newer worker already wrote a wider view
            return wanted

        wrote = self._write_table(name, compute)
        if wrote:
            log.info("view written", extra={"view": name})
        self.ensure_history_view(table)
        return wrote

    def ensure_history_view(self, table: str) -> bool:
        """(Re)write ``<table>_history`` over the table's current columns (ADR 0032), by the
        same rules as ``_current``: never replaced by a view with fewer columns."""
        name = history_view_name(table)

        def compute(current: dict[str, Any] | None) -> dict[str, Any] | None:
            columns = self.table_columns(table)
            if not columns:
                return None
            wanted = history_view_table_input(table, columns, self.database)
            if current is not None and (
                current.get("ViewOriginalText") == wanted["ViewOriginalText"]
                or _view_columns(current) > {c.name for c in columns} | set(RESERVED)
            ):
                return None
            return wanted

        wrote = self._write_table(name, compute)
        if wrote:
            log.info("view written", extra={"view": name})
        return wrote

    # -- current-state snapshot (ADR 0035) ---------------------------------------------------

    def snapshot_state(self, table: str) -> SnapshotState | None:
        """The snapshot ``<table>_current`` reads now (``None``: it reads the full history)."""
        view = self._get_table(current_view_name(table))
        return state_of(view.get("Parameters")) if view else None

    def mark_late(self, table: str, partitions: Sequence[Partition]) -> bool:
        """Make the view read ``partitions`` whole if they are before its snapshot's cut.

        Called for partitions that gained objects the snapshot may not have read (late data);
        whether the view was rewritten.
        """

        def compute(current: dict[str, Any] | None) -> dict[str, Any] | None:
            state = state_of(current.get("Parameters")) if current else None
            if state is None or not any(state.needs(p) for p in partitions):
                return None
            columns = self.table_columns(table)
            if not columns:
                return None
            return view_table_input(table, columns, self.database, state.with_late(partitions))

        wrote = self._write_table(current_view_name(table), compute)
        if wrote:
            log.info(
                "late partitions added to the current view",
                extra={"table": table, "partitions": [p.path for p in partitions]},
            )
        return wrote

    def publish_snapshot(
        self,
        table: str,
        state: SnapshotState,
        columns: Sequence[Column],
        folded_late: set[Partition],
    ) -> None:
        """Register a written snapshot, then switch ``<table>_current`` to it in one write.

        ``columns`` are the snapshot files' columns; ``folded_late`` the late partitions the
        view listed when the snapshot started reading (the snapshot read them): any partition
        marked late since is kept in the new view.
        """
        name = snapshot_table_name(table)

        def table_compute(current: dict[str, Any] | None) -> dict[str, Any] | None:
            if current is None:
                return snapshot_table_input(table, self.bucket, columns)
            have = columns_from_glue(current.get("StorageDescriptor", {}).get("Columns", []))
            merged = merge_columns(have, columns)
            if not merged.added:
                return None
            return with_columns(table_input_from(current), merged.columns)

        self._write_table(name, table_compute)
        part = snapshot_partition_input(table, self.bucket, state, columns)
        if not self._create_partition(name, part):
            self._update_partition(name, part["Values"], part)

        def view_compute(current: dict[str, Any] | None) -> dict[str, Any] | None:
            view_columns = self.table_columns(table)
            if not view_columns:
                return None
            before = state_of(current.get("Parameters")) if current else None
            since = set(before.late) - folded_late if before else set()
            return view_table_input(table, view_columns, self.database, state.with_late(since))

        self._write_table(current_view_name(table), view_compute)
        log.info("current view reads snapshot", extra={"table": table, "snapshot_at": state.at})

    def snapshot_ids(self, table: str) -> list[str]:
        """Every registered snapshot of ``table`` (its ``snapshot_at`` values), sorted."""
        return sorted(str(p["Values"][0]) for p in self._get_partitions(snapshot_table_name(table)))

    def drop_snapshot(self, table: str, at: str) -> None:
        """Unregister one snapshot (its objects are the caller's; missing is no error)."""
        try:
            self._delete_partitions(snapshot_table_name(table), [[at]])
        except NotFoundError:
            return

    # -- the query engines' read side ------------------------------------------------------

    def describe(self, name: str, database: str | None = None) -> TableDef:
        """Any table or view of ``database`` (default: this catalog's) by its catalog name."""
        db = (database or self.database).lower()
        raw = self._get_table(name.lower(), db)
        if raw is None:
            raise NotFoundError(f"{db}.{name.lower()} does not exist", "EntityNotFoundException")
        return _table_def(db, raw)

    def partition_defs(self, table: TableDef) -> list[PartitionDef]:
        """Every registered partition of ``table``; an unset location is Hive's ``k=v`` path."""
        found: list[PartitionDef] = []
        for part in self._get_partitions(table.name, db=table.database):
            location = part.get("StorageDescriptor", {}).get("Location", "")
            values = tuple(str(v) for v in part.get("Values", []))
            if not location:
                location = (
                    table.location.rstrip("/")
                    + "/"
                    + "/".join(
                        f"{k.name}={v}" for k, v in zip(table.partition_keys, values, strict=True)
                    )
                )
            found.append(PartitionDef(values, str(location)))
        return found


def _view_columns(view: Mapping[str, Any]) -> set[str]:
    try:
        return {n for n, _ in decode_presto_view(str(view.get("ViewOriginalText", ""))).columns}
    except ValueError:
        return set()


def _table_def(database: str, raw: Mapping[str, Any]) -> TableDef:
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


# -- in memory ---------------------------------------------------------------------------------


class InMemoryCatalog(Catalog):
    """A :class:`Catalog` in memory (pure): one database of tables (with versions) and their
    partitions, stored as the inputs Glue would keep. Tests and local tools use it."""

    def __init__(self, bucket: str, database: str = DATABASE, *, attempts: int = 6) -> None:
        super().__init__(bucket, database, attempts=attempts)
        self._database_exists = False
        self._tables: dict[str, dict[str, Any]] = {}
        self._partitions: dict[str, dict[tuple[str, ...], dict[str, Any]]] = {}

    def _has(self, database: str | None) -> bool:
        return (
            self._database_exists and (database or self.database).lower() == self.database.lower()
        )

    def _require(self, name: str | None = None) -> None:
        if not self._has(None):
            raise NotFoundError(
                f"database {self.database} does not exist", "EntityNotFoundException"
            )
        if name is not None and name.lower() not in self._tables:
            raise NotFoundError(f"{name.lower()} does not exist", "EntityNotFoundException")

    def _create_database(self) -> bool:
        created = not self._database_exists
        self._database_exists = True
        return created

    def _get_table(self, name: str, database: str | None = None) -> dict[str, Any] | None:
        if not self._has(database):
            return None
        stored = self._tables.get(name.lower())
        return copy.deepcopy(stored) if stored is not None else None

    def _create_table(self, table_input: dict[str, Any]) -> bool:
        self._require()
        name = str(table_input["Name"]).lower()
        if name in self._tables:
            return False
        self._tables[name] = {**copy.deepcopy(table_input), "Name": name, "VersionId": "1"}
        self._partitions[name] = {}
        return True

    def _update_table(self, table_input: dict[str, Any], version: str | None) -> bool:
        name = str(table_input["Name"]).lower()
        self._require(name)
        current = self._tables[name]["VersionId"]
        if version is not None and version != current:
            return False
        self._tables[name] = {
            **copy.deepcopy(table_input),
            "Name": name,
            "VersionId": str(int(current) + 1),
        }
        return True

    def _create_partitions(self, name: str, inputs: Sequence[dict[str, Any]]) -> PartitionResult:
        self._require(name)
        stored = self._partitions[name.lower()]
        created: set[tuple[str, ...]] = set()
        for part in inputs:
            values = tuple(part["Values"])
            if values not in stored:
                stored[values] = copy.deepcopy(dict(part))
                created.add(values)
        return PartitionResult(len(created), len(inputs) - len(created), 1, frozenset(created))

    def _get_partitions(
        self, name: str, values: Wanted | None = None, db: str | None = None
    ) -> Entries:
        if not self._has(db):
            return []
        stored = self._partitions.get(name.lower(), {})
        chosen: Iterable[tuple[str, ...]] = (
            sorted(stored) if values is None else [tuple(v) for v in values if tuple(v) in stored]
        )
        return [copy.deepcopy(stored[v]) for v in chosen]

    def _get_partition(self, name: str, values: Sequence[str]) -> dict[str, Any]:
        self._require(name)
        stored = self._partitions[name.lower()].get(tuple(values))
        if stored is None:
            raise NotFoundError(
                f"{name} has no partition {'/'.join(values)}", "EntityNotFoundException"
            )
        return copy.deepcopy(stored)

    def _create_partition(self, name: str, partition: dict[str, Any]) -> bool:
        return self._create_partitions(name, [partition]).added == 1

    def _update_partition(
        self, name: str, values: Sequence[str], partition: dict[str, Any]
    ) -> None:
        self._get_partition(name, values)
        self._partitions[name.lower()][tuple(values)] = copy.deepcopy(partition)

    def _delete_partitions(self, name: str, values: Sequence[Sequence[str]]) -> None:
        self._require(name)
        for v in values:
            self._partitions[name.lower()].pop(tuple(v), None)
