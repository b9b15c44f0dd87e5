"""The current-state snapshot behind ``<table>_current`` (ADR 0035): fold the history.

Run by the scheduled maintenance task (:mod:`changelake_catalog.maintenance`, after compaction)
and by ``changelake snapshot``. One run, for one table:

1. read the view's snapshot state (the late partitions it lists now are folded by this run);
2. read the previous snapshot's rows and every object of the partitions it does not hold —
   its late partitions and those from its cut up to the new cut — as the engines read them
   (Glue partition locations), remembering exactly which objects it read (incremental: the
   cost does not grow with history, and history the previous snapshot holds may be expired);
3. keep the last change of each item by the view's own order (event time as the engines read it,
   at ms, then sequence number as a number, then event id), tombstones included, and write it as
   one Parquet object under ``snapshots/<table>/snapshot_at=<id>/`` (a new prefix every run);
4. register it as a partition of ``<table>_snapshot``, then switch ``<table>_current`` to it in
   one UpdateTable (readers see the old view or the new one, both correct);
5. wait longer than the catalog's snapshot-state cache, re-list the partitions before the cut and
   mark every partition with an object it did not read as late (the view reads it whole);
6. delete the snapshots older than the previous one (the previous one stays for queries that
   started before the switch).

A crash anywhere leaves a correct view: before 4 nothing is visible, after 4 the view reads a
superset of what it needs; a rerun starts again under a new id and removes the leftovers.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from changelake.ports import ObjectStore
from changelake_lake import rewrite
from changelake_lake.catalog import Catalog
from changelake_lake.columns import Column
from changelake_lake.layout import Partition, partition_for
from changelake_lake.query.hive_types import hive_millis, to_arrow
from changelake_lake.query.s3_objects import S3Object, S3Objects
from changelake_lake.schema import TIMESTAMP
from changelake_lake.snapshot_view import SnapshotState, snapshot_prefix, snapshots_prefix

log = logging.getLogger(__name__)

SNAPSHOT_OBJECT = "part-00000.parquet"
ORDER_COLUMNS = ("item_key", "event_time", "sequence_number", "event_id", "event_name")


class SnapshotError(Exception):
    """The snapshot cannot be taken (no change table, unreadable object, …)."""


@dataclass(slots=True)
class SnapshotReport:
    """What one snapshot run read, wrote and marked."""

    table: str
    snapshot_at: str
    cut: str
    watermark: str
    max_event_time: str = ""
    max_sequence_number: str = ""
    partitions_read: int = 0
    objects_read: int = 0
    bytes_read: int = 0
    rows_read: int = 0
    items: int = 0
    live_items: int = 0
    bytes_written: int = 0
    late_partitions: list[str] = field(default_factory=list)
    dropped_snapshots: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Lake:
    """What a maintenance run talks to: the lake's catalog, S3 (objects and store)."""

    catalog: Catalog
    objects: S3Objects
    store: ObjectStore

    @property
    def rewrite_lake(self) -> rewrite.Lake:
        """The same lake as the partition rewrites (compaction, expiry, erasure) see it."""
        return rewrite.Lake(self.store, self.catalog, self.catalog.bucket)


def default_cut(now: datetime, settle: timedelta) -> Partition:
    """The first partition not folded: the one holding ``now - settle`` (the open hours stay
    in the changes, so late marking stays rare)."""
    return partition_for(now - settle)


def snapshot_id(now: datetime) -> str:
    """A new snapshot's id (its ``snapshot_at`` value): UTC, µs, sortable."""
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def conformed(data: bytes, uri: str, columns: Sequence[tuple[str, str]]) -> pa.Table:
    """One change object as a table of exactly ``columns`` (name, Hive type), values unchanged.

    A column the object lacks reads as NULL; timestamps keep their µs (the engines round them to
    ms when they read; the stored value stays exact).
    """
    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        present = {name.lower(): name for name in parquet.schema_arrow.names}
        read = parquet.read(columns=[present[n] for n, _ in columns if n in present])
    except (pa.ArrowException, OSError) as exc:
        raise SnapshotError(f"cannot read {uri}: {exc}") from exc
    arrays: list[pa.Array] = []
    for name, hive in columns:
        target = TIMESTAMP if hive.strip().lower() == "timestamp" else to_arrow(hive)
        if name not in present:
            arrays.append(pa.nulls(read.num_rows, target))
            continue
        source = read.column(present[name]).combine_chunks()
        try:
            arrays.append(source if source.type == target else source.cast(target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SnapshotError(f"column {name!r} of {uri} is {source.type}, not {hive}") from exc
    return pa.Table.from_arrays(arrays, names=[n for n, _ in columns])


def latest_rows(rows: pa.Table) -> tuple[pa.Table, tuple[str, str]]:
    """The last change of each item (tombstones kept), by the view's order; and the last position.

    The order is ``<table>_current``'s (ADR 0007) on the event time *as the engines read it*
    (ms, rounded half up), so the snapshot picks the row the view would pick.
    """
    if rows.num_rows == 0:
        return rows, ("", "")
    sequence = rows.column("sequence_number")
    keys = pa.table(
        {
            "item_key": rows.column("item_key"),
            "t": hive_millis(rows.column("event_time").combine_chunks()),
            "l": pc.utf8_length(sequence),  # longer first, then greater: the number's order
            "s": sequence,
            "e": rows.column("event_id"),
        }
    )
    newest_first = [(c, "descending") for c in ("t", "l", "s", "e")]
    ordered = pc.sort_indices(keys, sort_keys=[("item_key", "ascending"), *newest_first])
    items = keys.column("item_key").take(ordered)
    # The first row of each item in that order is its last change (items come out sorted).
    starts = pc.fill_null(pc.not_equal(items.slice(1), items.slice(0, len(items) - 1)), True)
    picked = ordered.filter(pa.concat_arrays([pa.array([True]), starts.combine_chunks()]))
    index = pc.sort_indices(keys, sort_keys=newest_first)[0].as_py()
    latest = rows.take(picked)
    when = rows.column("event_time")[index].as_py()
    return latest, (when.isoformat() if when else "", str(rows.column("sequence_number")[index]))


def to_parquet(table: pa.Table) -> bytes:
    """The snapshot object: zstd, row groups small enough for item-key statistics to prune."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", row_group_size=100_000)
    return sink.getvalue()


def _partition_objects(
    lake: Lake, table: str, wanted: Callable[[Partition], bool]
) -> dict[Partition, list[S3Object]]:
    found: dict[Partition, list[S3Object]] = {}
    for partition, location in sorted(lake.catalog.locations(table).items()):
        if wanted(partition):
            found[partition] = list(lake.objects.list_objects(location))
    return found


def _previous_rows(
    lake: Lake, table: str, before: SnapshotState | None, columns: list[tuple[str, str]]
) -> list[pa.Table]:
    if before is None:
        return []
    keys = [k for k in lake.store.list(snapshot_prefix(table, before.at)) if k.endswith(".parquet")]
    return [conformed(lake.store.get(k), k, columns) for k in keys]


def take_snapshot(
    lake: Lake,
    table: str,
    *,
    now: datetime | None = None,
    cut: Partition | None = None,
    settle: timedelta = timedelta(hours=1),
    late_check_delay_s: float = 15.0,
    sleep: Callable[[float], None] = time.sleep,
) -> SnapshotReport:
    """Take one snapshot of ``table`` and switch ``<table>_current`` to it (see module doc)."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    cut = cut or default_cut(now, settle)
    before = lake.catalog.snapshot_state(table)
    if before is not None and cut < before.cut:
        raise SnapshotError(
            f"cut {cut.path} is before the current snapshot's ({before.cut.path}): a snapshot "
            "never unfolds partitions (they may have been expired)"
        )
    glue_columns = lake.catalog.table_columns(table)
    if glue_columns is None:
        raise SnapshotError(f"no change table for {table}")
    columns = [(c.name.lower(), c.type) for c in glue_columns]
    at = snapshot_id(now)
    report = SnapshotReport(table, at, "/".join(cut.values), cut.start().isoformat())

    def unfolded(p: Partition) -> bool:
        # Incremental: what the previous snapshot does not hold (its late partitions and the
        # ones from its cut on) — partitions it holds may have been expired since.
        return p < cut and (before is None or p >= before.cut or p in before.late)

    read = _partition_objects(lake, table, unfolded)
    objects = [o for objs in read.values() for o in objs]
    payloads = lake.objects.fetch(objects)
    parts = _previous_rows(lake, table, before, columns)
    parts += [conformed(d, o.uri, columns) for o, d in zip(objects, payloads, strict=True)]
    schema = pa.schema(
        [
            pa.field(n, TIMESTAMP if t.strip().lower() == "timestamp" else to_arrow(t))
            for n, t in columns
        ]
    )
    rows = pa.concat_tables(parts) if parts else schema.empty_table()
    latest, (max_time, max_seq) = latest_rows(rows)
    body = to_parquet(latest)
    lake.store.put(snapshot_prefix(table, at) + SNAPSHOT_OBJECT, body)
    live = int(pc.sum(pc.not_equal(latest.column("event_name"), "REMOVE")).as_py() or 0)
    state = SnapshotState(
        at=at,
        cut=cut,
        columns=tuple(n for n, _ in columns),
        max_event_time=max_time,
        max_sequence_number=max_seq,
        rows=latest.num_rows,
    )
    snapshot_columns = [c for c in glue_columns if c.name.lower() in set(state.columns)] or [
        Column(n, t) for n, t in columns
    ]
    lake.catalog.publish_snapshot(
        table, state, snapshot_columns, set(before.late) if before else set()
    )
    report.partitions_read, report.objects_read = len(read), len(objects)
    report.bytes_read = sum(o.size for o in objects)
    report.rows_read, report.items, report.live_items = rows.num_rows, latest.num_rows, live
    report.bytes_written, report.max_event_time, report.max_sequence_number = (
        len(body),
        max_time,
        max_seq,
    )
    # Late data: objects that reached the partitions this run read while it read them, or
    # before the catalog saw the new state (it trusts its copy for less than the delay).
    # Partitions the previous snapshot holds are the catalog's to mark (ADR 0035).
    sleep(late_check_delay_s)
    seen = {p: {(o.key, o.etag) for o in objs} for p, objs in read.items()}
    relisted = _partition_objects(lake, table, lambda p: p in read or unfolded(p))
    late = [
        p for p, objs in relisted.items() if {(o.key, o.etag) for o in objs} - seen.get(p, set())
    ]
    if late:
        lake.catalog.mark_late(table, late)
    report.late_partitions = [p.path for p in late]
    keep = {at} | ({before.at} if before else set())
    report.dropped_snapshots = drop_snapshots(lake, table, keep)
    report.seconds = time.monotonic() - started
    log.info("snapshot taken", extra={"table": table, "snapshot_at": at, "items": report.items})
    return report


def drop_snapshots(lake: Lake, table: str, keep: set[str]) -> list[str]:
    """Delete every snapshot of ``table`` not in ``keep``: objects first, then the partition
    (a crash in between leaves a partition a rerun finds again), then unregistered leftovers."""
    dropped: list[str] = []
    registered = set(lake.catalog.snapshot_ids(table))
    prefix = snapshots_prefix(table)
    on_s3 = {
        key[len(prefix) :].split("/", 1)[0].removeprefix("snapshot_at=")
        for key in lake.store.list(prefix)
    }
    for at in sorted((registered | on_s3) - keep):
        for key in list(lake.store.list(snapshot_prefix(table, at))):
            lake.store.delete(key)
        if at in registered:
            lake.catalog.drop_snapshot(table, at)
        dropped.append(at)
    return dropped
