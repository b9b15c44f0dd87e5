"""The catalog service: S3 ObjectCreated events (via SQS) → Glue tables, columns, partitions, views.

One poll handles a batch of messages:

1. parse each body into change objects (test events and other prefixes are ignored; an
   unparseable body fails its message);
2. read each new object's Parquet footer with ranged GETs, in parallel (a missing object is
   skipped — nothing to catalog; one that is not Parquet, or not named as a change object, is
   moved to ``quarantine/`` with a record of why, so the table stays queryable; a failed read
   fails its message);
3. per DynamoDB table: merge new columns into ``<table>_changes`` (creating it on first
   sight), then register the batch's new partitions, coalesced (many objects, one partition,
   one entry), and copy late objects into rewritten partitions (ADR 0034); beside that, in a
   second thread, create the sibling tables (``<table>_raw``, errors) on first sight and
   re-write ``<table>_current``/``_history`` when columns changed (ADR 0045); then mark late
   partitions in the view's snapshot and record the privacy policy;
4. delete exactly the messages whose work succeeded; failed ones are made visible again after
   ``catalog_retry_delay_seconds`` and, after the queue's maxReceiveCount receives, SQS moves
   them to the dead-letter queue. Everything is idempotent, so redelivery changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
from changelake import privacy
from changelake.ports import Metrics, ObjectStore
from changelake_lake.catalog import Catalog, TableState
from changelake_lake.columns import Column
from changelake_lake.glue_schema import columns_of
from changelake_lake.layout import Partition
from changelake_lake.rewrite import Lake, make_visible
from changelake_lake.snapshot_view import SnapshotState

from changelake_catalog.exceptions import InvalidNotificationError, InvalidParquetError
from changelake_catalog.footer import read_parquet_schema
from changelake_catalog.notifications import ObjectRef, parse_notification
from changelake_catalog.ports import MessageQueue, QueueMessage
from changelake_catalog.quarantine import quarantine_object

log = logging.getLogger(__name__)

_PARTITION_CACHE_LIMIT = 100_000
_METRICS_FLUSH_S = 60.0
_ERROR_PAUSE_S = 1.0


@dataclass
class BatchOutcome:
    """What one batch did: messages deleted / failed, objects cataloged, catalog changes."""

    deleted: int = 0
    failed: int = 0
    objects: int = 0
    partitions_added: int = 0
    columns_added: int = 0
    tables_created: list[str] = field(default_factory=list)


def read_schemas(
    store: ObjectStore, refs: Sequence[ObjectRef], workers: int, tail_bytes: int
) -> dict[str, pa.Schema | Exception | None]:
    """Footer schema of each object, by key: a schema, ``None`` if gone, or the error (a value)."""

    def one(ref: ObjectRef) -> pa.Schema | Exception | None:
        try:
            return read_parquet_schema(store, ref.key, ref.size, tail_bytes)
        except KeyError:
            return None
        except Exception as exc:  # returned as a value: its message fails
            return exc

    unique = list({ref.key: ref for ref in refs}.values())
    if len(unique) <= 1:
        return {ref.key: one(ref) for ref in unique}
    with ThreadPoolExecutor(max_workers=min(workers, len(unique))) as pool:
        return dict(zip((r.key for r in unique), pool.map(one, unique), strict=True))


def privacy_of(schema: pa.Schema) -> tuple[str, str | None]:
    """The privacy policy version and rules an object was written with (footer metadata)."""
    metadata = schema.metadata or {}
    version = metadata.get(privacy.VERSION_PARAMETER.encode())
    rules = metadata.get(privacy.RULES_PARAMETER.encode())
    return (
        version.decode() if version else privacy.NO_POLICY,
        rules.decode() if rules else None,
    )


def incoming_columns(schemas: Sequence[pa.Schema]) -> list[Column]:
    """Union of the objects' columns, first appearance first (case-insensitive names)."""
    seen: dict[str, Column] = {}
    for schema in schemas:
        for column in columns_of(schema):
            seen.setdefault(column.name.lower(), column)
    return list(seen.values())


class CatalogService:
    """An SQS loop over the lake's :class:`Catalog`: drains the catalog queue and keeps the
    catalog in step with the lake (see module doc)."""

    def __init__(
        self,
        queue: MessageQueue,
        store: ObjectStore,
        catalog: Catalog,
        metrics: Metrics,
        *,
        batch_size: int = 10,
        max_batch: int = 100,
        wait_seconds: int = 5,
        retry_delay_seconds: int = 5,
        workers: int = 8,
        footer_bytes: int = 65536,
        late_data: bool = True,
        snapshot_state_ttl_s: float = 10.0,
    ) -> None:
        self._queue = queue
        self._store = store
        self._catalog = catalog
        self._metrics = metrics
        self._bucket = catalog.bucket
        self._batch_size = batch_size
        self._max_batch = max(max_batch, batch_size)
        self._wait_seconds = wait_seconds
        self._retry_delay = retry_delay_seconds
        self._workers = workers
        self._footer_bytes = footer_bytes
        # Late data (ADR 0034): new objects of rewritten partitions are copied into them.
        self._late = Lake(store, catalog, catalog.bucket) if late_data else None
        self._known_columns: dict[str, frozenset[str]] = {}
        self._known_partitions: dict[str, set[Partition]] = defaultdict(set)
        self._known_privacy: dict[str, str] = {}
        self._snapshot_ttl = snapshot_state_ttl_s
        self._snapshot_states: dict[str, tuple[float, SnapshotState | None]] = {}

    def poll_once(self) -> BatchOutcome:
        """Receive one batch (long poll, then drain without waiting) and handle it."""
        messages = list(self._queue.receive(self._batch_size, self._wait_seconds))
        if not messages:
            return BatchOutcome()
        # A burst of objects (one flush of many partitions, a backfill) is far cheaper as one
        # batch: one parallel footer fan-out and one coalesced registration per table, instead
        # of a Glue round per 10 messages (SQS's receive limit).
        while len(messages) < self._max_batch:
            more = self._queue.receive(min(self._batch_size, self._max_batch - len(messages)), 0)
            if not more:
                break
            messages.extend(more)
        return self.handle(messages)

    def handle(self, messages: Sequence[QueueMessage]) -> BatchOutcome:
        """Handle received messages; delete those whose work succeeded, retry the others."""
        outcome = BatchOutcome()
        failed: set[str] = set()
        refs_by_message: dict[str, list[ObjectRef]] = {}
        for message in messages:
            try:
                refs_by_message[message.message_id] = parse_notification(message.body, self._bucket)
            except InvalidNotificationError as exc:
                log.warning(
                    "invalid notification",
                    extra={
                        "message_id": message.message_id,
                        "error": str(exc),
                        "receive_count": message.receive_count,
                    },
                )
                failed.add(message.message_id)
        all_refs = [ref for refs in refs_by_message.values() for ref in refs]
        schemas: dict[str, pa.Schema | Exception | None] = {
            ref.key: InvalidParquetError(f"{ref.key}: not a change object name (*.parquet)")
            for ref in all_refs
            if ref.stray
        }
        schemas.update(
            read_schemas(
                self._store, [r for r in all_refs if not r.stray], self._workers, self._footer_bytes
            )
        )
        gone = {key for key, value in schemas.items() if value is None}
        for key in gone:
            log.info("object gone before it was read; nothing to catalog", extra={"key": key})
        bad_keys = self._quarantine_unreadable(schemas)
        gone = {key for key, value in schemas.items() if value is None}  # + the quarantined
        by_table: dict[str, list[ObjectRef]] = defaultdict(list)
        for refs in refs_by_message.values():
            for ref in refs:
                if ref.key not in bad_keys and ref.key not in gone:
                    by_table[ref.table].append(ref)
        failed_tables: set[str] = set()
        for table, refs in by_table.items():
            table_schemas = [s for r in refs if isinstance(s := schemas[r.key], pa.Schema)]
            if not table_schemas:
                continue
            try:
                self._catalog_table(table, refs, table_schemas, outcome)
            except Exception:
                # Not swallowed: the table's messages are left undeleted and come back.
                log.exception("catalog update failed", extra={"table": table})
                failed_tables.add(table)
                # Forget what we believed about the table: the retry re-reads Glue (the table
                # may have been dropped or changed behind our back).
                self._known_columns.pop(table, None)
                self._known_partitions.pop(table, None)
                self._known_privacy.pop(table, None)
                self._snapshot_states.pop(table, None)
        for message_id, refs in refs_by_message.items():
            if any(r.key in bad_keys or r.table in failed_tables for r in refs):
                failed.add(message_id)
        done = [m for m in messages if m.message_id not in failed]
        retry = [m for m in messages if m.message_id in failed]
        if done:
            self._queue.delete(done)
        if retry:
            self._queue.retry_later(retry, self._retry_delay)
        outcome.deleted, outcome.failed = len(done), len(retry)
        outcome.objects = sum(len(refs_by_message[m.message_id]) for m in done)
        self._metrics.count("catalog_messages_deleted", outcome.deleted)
        self._metrics.count("catalog_messages_failed", outcome.failed)
        self._metrics.count("catalog_objects", outcome.objects)
        return outcome

    def _quarantine_unreadable(self, schemas: dict[str, pa.Schema | Exception | None]) -> set[str]:
        """Move objects that are definitely not Parquet out of the table (they would break every
        query of it); return the keys still failing (read errors: their messages retry)."""
        failing: set[str] = set()
        for key, value in schemas.items():
            if not isinstance(value, Exception):
                continue
            error: Exception = value
            if isinstance(value, InvalidParquetError):
                try:
                    quarantine_object(self._store, key, str(value), self._metrics)
                    schemas[key] = None  # moved: nothing to catalog
                    continue
                except Exception as exc:  # S3 trouble: the message comes back
                    error = exc
            log.warning("unreadable object", extra={"key": key, "error": str(error)})
            failing.add(key)
        return failing

    def _catalog_table(
        self,
        table: str,
        refs: Sequence[ObjectRef],
        schemas: Sequence[pa.Schema],
        outcome: BatchOutcome,
    ) -> None:
        incoming = incoming_columns(schemas)
        known = self._known_columns.get(table)
        merged: TableState | None = None
        if known is None or any(c.name.lower() not in known for c in incoming):
            merged = self._catalog.merge_changes_table(table, incoming)
            for ours, theirs in merged.conflicts:
                log.warning(
                    "column type conflict: table keeps its type",
                    extra={
                        "table": table,
                        "column": ours.name,
                        "table_type": ours.type,
                        "object_type": theirs.type,
                    },
                )
                self._metrics.count("catalog_type_conflicts", 1, {"table": table})
            # The merge read the table's privacy parameters: no separate read to compare.
            self._known_privacy[table] = merged.privacy_version
        # The sibling tables and views (first sight, new columns) are written while the
        # partitions are registered: the batch waits on the longer of the two, not their sum
        # (ADR 0045). The view's late-data marks come after both (one view writer at a time).
        upkeep: list[Callable[[], bool]] = []
        if merged is not None and (known is None or merged.created):
            # First sight in this process: make sure the siblings exist (idempotent).
            upkeep.append(lambda: self._catalog.ensure_raw_table(table))
        if merged is not None and (known is None or merged.created or merged.added):
            upkeep.append(lambda: self._catalog.ensure_current_view(table))
        with ThreadPoolExecutor(max_workers=max(1, len(upkeep))) as pool:
            running = [pool.submit(work) for work in upkeep]
            self._register(table, refs, merged, outcome)
        for done in running:
            done.result()  # an upkeep error fails the table's messages like any other
        self._mark_late(table, {r.partition for r in refs})
        if merged is not None:
            if merged.created:
                outcome.tables_created.append(table)
            outcome.columns_added += len(merged.added)
            self._metrics.count("catalog_columns_added", len(merged.added), {"table": table})
            self._known_columns[table] = frozenset(c.name.lower() for c in merged.columns)
        version, rules = privacy_of(schemas[-1])
        if self._known_privacy.get(table) != version:
            self._catalog.record_privacy(table, version, rules)
            self._known_privacy[table] = version

    def _register(
        self,
        table: str,
        refs: Sequence[ObjectRef],
        merged: TableState | None,
        outcome: BatchOutcome,
    ) -> None:
        """Register the batch's new partitions, then make late objects visible (ADR 0034)."""
        partitions = {r.partition for r in refs} - self._known_partitions[table]
        created: set[Partition] = set()
        if partitions:
            # Right after a merge its columns are the table's: no second read of the table.
            result = self._catalog.add_partitions(
                table, sorted(partitions), merged.columns if merged is not None else None
            )
            created = {p for p in partitions if tuple(p.values) in result.created}
            outcome.partitions_added += result.added
            self._metrics.count("catalog_partitions_added", result.added, {"table": table})
            known_parts = self._known_partitions[table]
            if len(known_parts) > _PARTITION_CACHE_LIMIT:
                known_parts.clear()  # a cache only: Glue's AlreadyExists keeps it correct
            known_parts.update(partitions)
        if self._late is None:
            return
        # A partition this batch created did not exist before it: a rewrite reads a partition's
        # location before listing its inputs, so any rewrite of it listed after this batch's
        # objects were written and folds them. No lookup (ADR 0045); every other partition of
        # the batch, known or not, is looked up (ADR 0034).
        by_partition: dict[Partition, list[str]] = defaultdict(list)
        for ref in refs:
            if ref.partition not in created:
                by_partition[ref.partition].append(ref.key)
        copies = make_visible(self._late, table, by_partition)
        if copies:
            log.info("late objects made visible", extra={"table": table, "copies": copies})
            self._metrics.count("catalog_late_objects", len(copies), {"table": table})

    def _mark_late(self, table: str, partitions: set[Partition]) -> None:
        """Late data (ADR 0035): objects in partitions the view's snapshot already folded.

        The view's snapshot state is cached for at most ``snapshot_state_ttl_s``; the snapshot
        job waits longer than that after switching the view before it re-lists what it read,
        so an object is either seen by that re-list or checked here against the new state.
        """
        now = time.monotonic()
        cached = self._snapshot_states.get(table)
        if cached is None or now - cached[0] > self._snapshot_ttl:
            cached = (now, self._catalog.snapshot_state(table))
            self._snapshot_states[table] = cached
        state = cached[1]
        if state is None:
            return
        late = sorted(p for p in partitions if state.needs(p))
        if not late:
            return
        self._catalog.mark_late(table, late)
        self._snapshot_states[table] = (now, state.with_late(late))
        self._metrics.count("catalog_late_partitions", len(late), {"table": table})
        log.info(
            "late data: partitions marked for the current view",
            extra={"table": table, "partitions": [p.path for p in late]},
        )

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set; an error pauses and retries, it never ends the loop."""
        last_flush = time.monotonic()
        log.info("catalog service running")
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("catalog poll failed; retrying")
                stop.wait(_ERROR_PAUSE_S)
            if time.monotonic() - last_flush > _METRICS_FLUSH_S:
                self._metrics.flush()
                last_flush = time.monotonic()
        self._metrics.flush()
        log.info("catalog service stopped")


class CatalogRunner:
    """:class:`~changelake_cli.services.BackgroundService` running the catalog in a thread."""

    name = "catalog"

    def __init__(self, build: Callable[[], CatalogService], join_timeout: float = 60.0) -> None:
        self._build = build
        self._join_timeout = join_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Build the service (resolves the queue) and start polling in a daemon thread."""
        if self._thread is not None:
            return
        service = self._build()
        self._stop.clear()
        self._thread = threading.Thread(
            target=service.run, args=(self._stop,), name="changelake-catalog", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop polling (at most one long-poll wait) and join the thread; idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._join_timeout)
            self._thread = None
