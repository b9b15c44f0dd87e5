"""Compaction of ``<table>_changes``: one sorted, duplicate-free file per sealed partition-hour.

Policy over the rewrite primitive (:mod:`changelake_lake.rewrite`, ADR 0033):

* **which partitions**: registered ones whose hour ended at least ``older_than`` ago and that
  are not *settled* (never rewritten, or late data arrived since: ADR 0034);
* **what each becomes**: :func:`dedupe_and_sort` — one row per ``event_id`` (the copy
  ``<table>_current`` would pick: the greatest sequence number, so every view and named query
  answers as before), sorted by ``item_key``, ``event_time``, sequence number, so row-group
  statistics on ``item_key`` and ``event_time`` prune item and time lookups;
* **then** the due trash records are collected (the objects the swaps replaced, after the
  grace period).

``expire`` (retention of ``changes/``) drops whole partitions from Glue and S3, only below a
snapshot that covers them (README: Lake maintenance).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from changelake_lake.layout import Partition, changes_partition_prefix
from changelake_lake.rewrite import (
    Crash,
    Lake,
    RewriteResult,
    TrashOutcome,
    TrashRecord,
    collect_trash,
    ensure_trash,
    expire_trash_key,
    generations_prefix,
    read_partition,
    rewrite_partition,
)

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

REASON = "compact"
DEFAULT_OLDER_THAN = timedelta(hours=2)
DEFAULT_GRACE = timedelta(hours=1)


def _no_crash(step: str) -> None:
    del step


def dedupe_and_sort(table: pa.Table) -> pa.Table:
    """One row per ``event_id``, sorted by (``item_key``, ``event_time``, sequence number).

    Of the copies of one event (the stream's duplicates: the same change under several
    sequence numbers) the one kept is the one ``<table>_current`` ranks first: the longest,
    then greatest ``sequence_number`` (a decimal string), then ``shard_id``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return table
    seq_len = pc.utf8_length(table.column("sequence_number"))
    keyed = table.append_column("__seq_len", seq_len)
    order = pc.sort_indices(
        keyed,
        sort_keys=[
            ("event_id", "ascending"),
            ("__seq_len", "descending"),
            ("sequence_number", "descending"),
            ("shard_id", "descending"),
        ],
    )
    ranked = keyed.take(order)
    ids = ranked.column("event_id").combine_chunks()
    first = pa.concat_arrays(
        [pa.array([True]), pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1))]
    )
    unique = ranked.filter(first)
    order = pc.sort_indices(
        unique,
        sort_keys=[
            ("item_key", "ascending"),
            ("event_time", "ascending"),
            ("__seq_len", "ascending"),
            ("sequence_number", "ascending"),
            ("event_id", "ascending"),
        ],
    )
    return unique.take(order).drop_columns(["__seq_len"])


@dataclass(frozen=True, slots=True)
class PartitionPlan:
    """A partition a run would rewrite, and why."""

    partition: Partition
    location: str
    inputs: int
    late: int
    first: bool


@dataclass
class CompactionReport:
    """What a compaction run found and did (``dry_run``: found only)."""

    table: str
    cutoff: str
    dry_run: bool
    partitions_sealed: int = 0
    planned: list[PartitionPlan] = field(default_factory=list)
    rewritten: list[RewriteResult] = field(default_factory=list)
    trash: TrashOutcome | None = None

    def summary(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "table": self.table,
            "cutoff": self.cutoff,
            "dry_run": self.dry_run,
            "partitions_sealed": self.partitions_sealed,
            "partitions_to_compact": len(self.planned),
            "partitions_compacted": len(self.rewritten),
            "objects_read": sum(r.inputs for r in self.rewritten),
            "rows_read": sum(r.rows_in for r in self.rewritten),
            "rows_written": sum(r.rows_out for r in self.rewritten),
            "duplicates_removed": sum(r.rows_in - r.rows_out for r in self.rewritten),
            "files_written": sum(len(r.parts) for r in self.rewritten),
            "bytes_read": sum(r.input_bytes for r in self.rewritten),
            "bytes_written": sum(sum(r.part_bytes) for r in self.rewritten),
            "late_objects_carried_over": sum(len(r.carried_over) for r in self.rewritten),
            "plan": [
                {
                    "dt": p.partition.dt,
                    "hour": p.partition.hour,
                    "objects": p.inputs,
                    "late_objects": p.late,
                    "first_compaction": p.first,
                }
                for p in self.planned
            ],
            "trash_records_collected": self.trash.records if self.trash else 0,
            "objects_deleted": self.trash.deleted if self.trash else 0,
            "trash_records_pending": self.trash.pending if self.trash else 0,
        }


def compact_table(
    lake: Lake,
    table: str,
    *,
    older_than: timedelta = DEFAULT_OLDER_THAN,
    grace: timedelta = DEFAULT_GRACE,
    dry_run: bool = False,
    target_file_bytes: int = 128 * 1024 * 1024,
    row_group_rows: int = 65_536,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    crash: Crash = _no_crash,
) -> CompactionReport:
    """Compact every sealed, unsettled partition of ``table``; collect due trash."""
    cutoff = now() - older_than
    report = CompactionReport(table, cutoff.isoformat(), dry_run)
    for partition, location in sorted(lake.catalog.locations(table).items()):
        if partition.end() > cutoff:
            continue
        report.partitions_sealed += 1
        state = read_partition(lake, table, partition, location)
        if state.settled:
            if not dry_run:
                ensure_trash(lake, state, now() + grace)
            continue
        if not state.inputs:
            continue
        report.planned.append(
            PartitionPlan(
                partition,
                location,
                len(state.inputs),
                len(state.late_copies) + (len(state.pending_base) if state.generation else 0),
                state.generation is None,
            )
        )
        if dry_run:
            continue
        result = rewrite_partition(
            lake,
            table,
            partition,
            dedupe_and_sort,
            reason=REASON,
            grace=grace,
            target_file_bytes=target_file_bytes,
            row_group_rows=row_group_rows,
            now=now,
            crash=crash,
        )
        if result is not None:
            report.rewritten.append(result)
    if not dry_run:
        report.trash = collect_trash(lake, table, now=now, crash=crash)
    return report


# -- retention ---------------------------------------------------------------------------------


class ExpireRefusedError(Exception):
    """``--expire`` would drop history no snapshot holds."""


@dataclass(frozen=True, slots=True)
class ExpireReport:
    """Partitions dropped by an expire run (``dry_run``: found only)."""

    table: str
    before: str
    dropped: tuple[Partition, ...]
    kept_uncovered: tuple[Partition, ...]
    dry_run: bool

    def summary(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "table": self.table,
            "expire_before": self.before,
            "dry_run": self.dry_run,
            "partitions_expired": [p.path for p in self.dropped],
            "partitions_kept_not_in_snapshot": [p.path for p in self.kept_uncovered],
        }


def expire_table(
    lake: Lake,
    table: str,
    *,
    max_age: timedelta,
    covered: Callable[[Partition], bool] | None,
    grace: timedelta = DEFAULT_GRACE,
    dry_run: bool = False,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ExpireReport:
    """Drop partitions older than ``max_age`` from Glue; their objects go after the grace.

    ``covered(partition)`` says whether the current-state snapshot holds the partition's
    changes (folded, and nothing arrived since); only those are dropped. ``None`` (no snapshot)
    refuses with :class:`ExpireRefusedError`: without a snapshot the history *is* the current
    state. Per partition a trash record listing its objects (base prefix and generations) is
    written first, then the partitions are deregistered; the objects are deleted by
    :func:`~changelake_lake.rewrite.collect_trash` once the grace period has passed (queries planned
    before the drop may still read them) and only if the partition is no longer registered
    (a crash before the drop leaves it whole).
    """
    before = now() - max_age
    if covered is None:
        raise ExpireRefusedError(
            f"{table}: no current-state snapshot exists; expiring history before "
            f"{before.isoformat()} would change {table}'s current state "
            "(take a snapshot first)"
        )
    old = sorted(p for p in lake.catalog.locations(table) if p.end() <= before)
    doomed = [p for p in old if covered(p)]
    kept = tuple(p for p in old if not covered(p))
    if not dry_run and doomed:
        for partition in doomed:
            # The objects as they are now, by key: one that lands later (a very late record
            # re-registering the partition) is not garbage and is never deleted by this record.
            keys = [
                key
                for prefix in (
                    changes_partition_prefix(table, partition),
                    generations_prefix(table, partition),
                )
                for key in lake.store.list(prefix)
            ]
            record = TrashRecord(
                table=table,
                partition=partition,
                location="",
                not_before=now() + grace,
                keys=tuple(keys),
                prefixes=(),
            )
            lake.store.put(expire_trash_key(table, partition), record.to_json(), "application/json")
        lake.catalog.drop(table, doomed)
        log.info("partitions expired", extra={"table": table, "count": len(doomed)})
    return ExpireReport(table, before.isoformat(), tuple(doomed), kept, dry_run)
