"""Glue adapter of :class:`~changelake_catalog.ports.CatalogRegistry` (injected boto3 client).

* Every call goes through :meth:`GlueRegistry._call`: throttling is retried with jittered
  exponential backoff on top of the client's own retries (botocore gives up after its budget;
  a burst of catalog work must not drop a batch); other boto errors become
  :class:`CatalogError` (``raise … from e``) carrying the AWS error code.
* ``BatchCreatePartition`` takes at most 100 partitions per call (docs/aws-behaviour.md);
  ``AlreadyExistsException`` per partition counts as success; other per-partition errors are
  retried for those partitions only; non-retryable ones raise.
* Table changes are optimistic: read the table and its ``VersionId``, compute the new input,
  re-read to check the version is unchanged (the local emulator ignores ``VersionId``), then
  ``UpdateTable(VersionId=…)`` which Glue rejects with ``ConcurrentModificationException``
  if another writer got in between; on any conflict start again from the read (ADR 0008).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from changelake import privacy
from changelake.adapters import aws
from changelake_lake.adapters.glue_partitions import GluePartitions
from changelake_lake.athena_view import decode_presto_view
from changelake_lake.catalog import PartitionResult, TableState
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
from changelake_lake.layout import (
    Partition,
    changes_table_name,
    current_view_name,
)
from changelake_lake.snapshot_view import SnapshotState, snapshot_table_name, state_of

from changelake_catalog.exceptions import CatalogError, ConcurrentUpdateError, ThrottledError

if TYPE_CHECKING:
    from mypy_boto3_glue import GlueClient

log = logging.getLogger(__name__)

MAX_PARTITIONS_PER_CALL = 100  # BatchCreatePartition limit (docs/aws-behaviour.md)
THROTTLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "OperationTimeoutException",
        "InternalServiceException",
        "ServiceUnavailableException",
    }
)
# Per-partition errors that retrying cannot fix; anything else is retried.
FATAL_PARTITION_CODES = frozenset(
    {
        "InvalidInputException",
        "EntityNotFoundException",
        "AccessDeniedException",
        "ResourceNumberLimitExceededException",
        "GlueEncryptionException",
    }
)
ALREADY_EXISTS = "AlreadyExistsException"
NOT_FOUND = "EntityNotFoundException"
CONCURRENT = "ConcurrentModificationException"
_MAX_DELAY_S = 5.0


class GlueRegistry:
    """The lake's Glue database: tables, partitions and views of each DynamoDB table.

    It is the Glue :class:`changelake_lake.catalog.Catalog`: partition locations, the
    one-write switch and drops are :class:`GluePartitions`' on the same client.
    """

    def __init__(
        self,
        bucket: str,
        database: str,
        client: GlueClient | None = None,
        *,
        attempts: int = 6,
        backoff_seconds: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.bucket = bucket
        self.database = database
        self._glue = client or aws.glue()
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._sleep = sleep
        self._partitions = GluePartitions(database, self._glue)

    # -- plumbing ---------------------------------------------------------------------------

    def _delay(self, attempt: int) -> float:
        base = min(_MAX_DELAY_S, self._backoff * (2**attempt))
        return float(base * (0.5 + random.random() / 2))

    def _call(self, operation: str, **kwargs: Any) -> Any:
        """Call a Glue operation; retry throttling; translate boto errors to CatalogError."""
        for attempt in range(self._attempts):
            try:
                return getattr(self._glue, operation)(**kwargs)
            except ClientError as exc:
                code = aws.error_code(exc)
                if code in THROTTLE_CODES:
                    if attempt + 1 < self._attempts:
                        log.warning(
                            "glue throttled, backing off",
                            extra={"operation": operation, "code": code, "attempt": attempt + 1},
                        )
                        self._sleep(self._delay(attempt))
                        continue
                    raise ThrottledError(f"Glue {operation}: {code} persisted", code) from exc
                raise CatalogError(f"Glue {operation} failed: {code}: {exc}", code) from exc
            except BotoCoreError as exc:
                raise CatalogError(f"Glue {operation} failed: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _get_table(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._call("get_table", DatabaseName=self.database, Name=name)["Table"])
        except CatalogError as exc:
            if exc.code == NOT_FOUND:
                return None
            raise

    def _write_table(
        self,
        name: str,
        compute: Callable[[dict[str, Any] | None], dict[str, Any] | None],
    ) -> bool:
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
                try:
                    self._call("create_table", DatabaseName=self.database, TableInput=wanted)
                except CatalogError as exc:
                    if exc.code == ALREADY_EXISTS:  # another worker created it: merge into it
                        continue
                    raise
                return True
            version = current.get("VersionId")
            latest = self._get_table(name)
            if latest is None or latest.get("VersionId") != version:
                self._conflict(name, attempt)
                continue
            kwargs: dict[str, Any] = {"DatabaseName": self.database, "TableInput": wanted}
            if version is not None:
                kwargs["VersionId"] = version
            try:
                self._call("update_table", **kwargs)
            except CatalogError as exc:
                if exc.code == CONCURRENT:
                    self._conflict(name, attempt)
                    continue
                raise
            return True
        raise ConcurrentUpdateError(
            f"{name}: gave up after repeated concurrent updates", CONCURRENT
        )

    def _conflict(self, name: str, attempt: int) -> None:
        log.info("table changed concurrently, retrying", extra={"table": name, "attempt": attempt})
        self._sleep(self._delay(min(attempt, 3)) / 4)

    # -- CatalogRegistry ---------------------------------------------------------------------

    def ensure_database(self) -> None:
        """Create the database if missing (GetDatabase first: the deployed role cannot create)."""
        try:
            self._call("get_database", Name=self.database)
            return
        except CatalogError as exc:
            if exc.code != NOT_FOUND:
                raise
        try:
            self._call("create_database", DatabaseInput={"Name": self.database})
        except CatalogError as exc:
            if exc.code != ALREADY_EXISTS:
                raise

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
                    columns=tuple(incoming), added=tuple(incoming), conflicts=(), created=True
                )
                return changes_table_input(table, self.bucket, incoming)
            existing = columns_from_glue(current["StorageDescriptor"].get("Columns", []))
            merged = merge_columns(existing, incoming)
            outcome.update(
                columns=merged.columns,
                added=merged.added,
                conflicts=merged.conflicts,
                created=False,
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

    def record_privacy(self, table: str, version: str, rules: str | None) -> bool:
        """Record which privacy policy wrote the newest objects (docs/adr/0027).

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

    def ensure_raw_table(self, table: str) -> bool:
        """Create ``<table>_raw`` (partition projection) if missing; whether it was created.

        The tables over the JSON-lines error prefixes, ``<table>_errors`` and
        ``firehose_error_records``, are created with it (ADR 0031).
        """
        self._create_if_missing(errors_table_input(table, self.bucket))
        self._create_if_missing(firehose_errors_table_input(self.bucket))
        return self._create_if_missing(raw_table_input(table, self.bucket))

    def _create_if_missing(self, table_input: dict[str, Any]) -> bool:
        try:
            self._call("create_table", DatabaseName=self.database, TableInput=table_input)
        except CatalogError as exc:
            if exc.code == ALREADY_EXISTS:
                return False
            raise
        log.info("table written", extra={"table": table_input["Name"], "table_created": True})
        return True

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
        """Register a written snapshot, then switch ``<table>_current`` to it in one UpdateTable.

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
        try:
            self._call(
                "create_partition", DatabaseName=self.database, TableName=name, PartitionInput=part
            )
        except CatalogError as exc:
            if exc.code != ALREADY_EXISTS:
                raise
            self._call(
                "update_partition",
                DatabaseName=self.database,
                TableName=name,
                PartitionValueList=part["Values"],
                PartitionInput=part,
            )

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
        found: list[str] = []
        try:
            for page in self._glue.get_paginator("get_partitions").paginate(
                DatabaseName=self.database, TableName=snapshot_table_name(table)
            ):
                found.extend(p["Values"][0] for p in page.get("Partitions", []))
        except self._glue.exceptions.EntityNotFoundException:
            return []
        return sorted(found)

    def drop_snapshot(self, table: str, at: str) -> None:
        """Unregister one snapshot (its objects are the caller's)."""
        try:
            self._call(
                "delete_partition",
                DatabaseName=self.database,
                TableName=snapshot_table_name(table),
                PartitionValues=[at],
            )
        except CatalogError as exc:
            if exc.code != NOT_FOUND:
                raise

    def existing_partitions(self, table: str) -> set[Partition]:
        """Every partition registered on ``<table>_changes`` (paginated GetPartitions)."""
        found: set[Partition] = set()
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "DatabaseName": self.database,
                "TableName": changes_table_name(table),
                "ExcludeColumnSchema": True,
            }
            if token:
                kwargs["NextToken"] = token
            try:
                page = self._call("get_partitions", **kwargs)
            except CatalogError as exc:
                if exc.code == NOT_FOUND:
                    return found
                raise
            for part in page.get("Partitions", []):
                values = part["Values"]
                found.add(Partition(values[0], values[1]))
            token = page.get("NextToken")
            if not token:
                return found

    def locations(
        self, table: str, partitions: Sequence[Partition] | None = None
    ) -> dict[Partition, str]:
        """Registered partitions (all, or those of ``partitions`` that exist) → location."""
        return self._partitions.locations(table, partitions)

    def set_location(self, table: str, partition: Partition, location: str) -> None:
        """One UpdatePartition: the partition reads ``location`` with the table's columns."""
        self._partitions.set_location(table, partition, location)

    def drop(self, table: str, partitions: Sequence[Partition]) -> None:
        """Deregister partitions (missing ones are no error)."""
        self._partitions.drop(table, partitions)

    def add_partitions(self, table: str, partitions: Sequence[Partition]) -> PartitionResult:
        """Register partitions in chunks of ≤100 with the table's exact current columns."""
        if not partitions:
            return PartitionResult(0, 0, 0)
        columns = self.table_columns(table)
        if columns is None:
            raise CatalogError(f"{changes_table_name(table)} does not exist", NOT_FOUND)
        added = existing = calls = 0
        for chunk in _chunks(sorted(set(partitions)), MAX_PARTITIONS_PER_CALL):
            todo = {tuple(p.values): partition_input(table, self.bucket, p, columns) for p in chunk}
            for attempt in range(self._attempts):
                calls += 1
                response = self._call(
                    "batch_create_partition",
                    DatabaseName=self.database,
                    TableName=changes_table_name(table),
                    PartitionInputList=list(todo.values()),
                )
                retry: dict[tuple[str, ...], dict[str, Any]] = {}
                last_code = ""
                for error in response.get("Errors", []):
                    values = tuple(error.get("PartitionValues", []))
                    code = error.get("ErrorDetail", {}).get("ErrorCode", "")
                    if code == ALREADY_EXISTS:
                        existing += 1
                    elif code in FATAL_PARTITION_CODES or values not in todo:
                        raise CatalogError(
                            f"BatchCreatePartition {values}: {code}: "
                            f"{error.get('ErrorDetail', {}).get('ErrorMessage', '')}",
                            code,
                        )
                    else:
                        retry[values] = todo[values]
                        last_code = code
                added += len(todo) - len(response.get("Errors", []))
                if not retry:
                    break
                if attempt + 1 == self._attempts:
                    raise ThrottledError(
                        f"BatchCreatePartition: {len(retry)} partitions kept failing ({last_code})",
                        last_code,
                    )
                log.warning(
                    "partitions failed, retrying them",
                    extra={"count": len(retry), "attempt": attempt + 1},
                )
                self._sleep(self._delay(attempt))
                todo = retry
        log.info(
            "partitions registered",
            extra={"table": changes_table_name(table), "added": added, "existing": existing},
        )
        return PartitionResult(added, existing, calls)


def _view_columns(view: Mapping[str, Any]) -> set[str]:
    try:
        return {n for n, _ in decode_presto_view(str(view.get("ViewOriginalText", ""))).columns}
    except ValueError:
        return set()


def _chunks(items: Sequence[Partition], size: int) -> Iterator[Sequence[Partition]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
