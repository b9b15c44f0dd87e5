"""`changelake erase`: remove every row of one item from the lake (ADR 0036).

The item is named by its DynamoDB key (``{"pk": "…"}``) and found by the ``item_key`` the
consumer writes: the key's attributes after the table's privacy policy (a hashed key attribute is
hashed here with the same key), rendered as in :func:`changelake.events.item_key`. Steps, each
idempotent, a crash after any of them healed by running again:

1. **changes**: every partition whose rows (as the rewrite primitive reads them: the current
   generation and the consumer objects not yet folded) hold the item is rewritten without its
   rows and switched in one UpdatePartition (:func:`changelake_lake.rewrite.rewrite_partition`, the
   compaction's primitive); unregistered partitions are registered first, so none is skipped;
2. **snapshot**: if the current snapshot holds the item, a copy without it becomes a new
   snapshot and ``<table>_current`` switches to it; every other snapshot holding the item, and
   leftovers of crashed runs, are deleted;
3. **raw** and **errors**: each JSON-lines object with a line of the item is rewritten without
   those lines (in place: one PUT replaces the object), or deleted when nothing is left;
4. **trash**: the objects the swaps made garbage (which still hold the item) are deleted once
   their grace (longer than the longest query) has passed: now with ``grace=0``, otherwise by
   the next ``changelake erase`` or ``changelake compact`` run after it.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from changelake import ddb_json
from changelake.events import item_key
from changelake.privacy import PrivacyPolicy
from changelake_catalog.snapshot import (
    SNAPSHOT_OBJECT,
    Lake,
    drop_snapshots,
    snapshot_id,
    to_parquet,
)
from changelake_lake import rewrite
from changelake_lake.layout import (
    ERRORS,
    changes_prefix,
    parse_change_object_key,
    raw_prefix,
)
from changelake_lake.snapshot_view import snapshot_prefix

log = logging.getLogger(__name__)

Crash = Callable[[str], None]


def _no_crash(step: str) -> None:
    del step


class EraseError(ValueError):
    """The erasure cannot run as asked (a key that does not fit the table, no such table)."""


@dataclass(slots=True)
class EraseReport:
    """What one erasure rewrote: partitions, snapshots, objects, and the rows/lines removed."""

    table: str
    item_key: str
    partitions: list[str] = field(default_factory=list)
    change_rows_removed: int = 0
    snapshot: str = ""
    snapshot_rows_removed: int = 0
    snapshots_dropped: list[str] = field(default_factory=list)
    raw_objects_rewritten: list[str] = field(default_factory=list)
    raw_objects_deleted: list[str] = field(default_factory=list)
    raw_lines_removed: int = 0
    error_objects_rewritten: list[str] = field(default_factory=list)
    error_objects_deleted: list[str] = field(default_factory=list)
    error_lines_removed: int = 0
    trash_deleted: int = 0
    trash_pending: int = 0
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        """Whether anything was rewritten (a second run of the same erasure changes nothing)."""
        return bool(
            self.partitions
            or self.snapshot
            or self.snapshots_dropped
            or self.raw_objects_rewritten
            or self.raw_objects_deleted
            or self.error_objects_rewritten
            or self.error_objects_deleted
        )


# -- the key -----------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return "number"
    return type(value).__name__


def key_schema(lake: Lake, table: str) -> dict[str, str]:
    """The table's key attributes and kinds (string/number), read from an ``item_key`` in it."""
    for key in lake.store.list(changes_prefix(table)):
        if not key.endswith(".parquet"):
            continue
        column = pq.read_table(io.BytesIO(lake.store.get(key)), columns=["item_key"])["item_key"]
        if len(column):
            sample = orjson.loads(str(column[0]))
            return {name: _kind(value) for name, value in sorted(sample.items())}
    raise EraseError(f"table {table!r} has no changes in the lake: nothing to erase from")


def lake_item_key(
    table: str, key_text: str, schema: dict[str, str], privacy: PrivacyPolicy | None
) -> str:
    """The ``item_key`` the consumer writes for the item whose DynamoDB key is ``key_text``.

    ``key_text`` is plain JSON (``{"pk": "a", "sk": 3}``); a clear error when it does not have
    exactly the table's key attributes with their kinds.
    """
    expected = ", ".join(f"{n}: {k}" for n, k in schema.items())
    try:  # numbers exact (Decimal), as DynamoDB keeps them
        keys = json.loads(key_text, parse_float=Decimal, parse_int=Decimal)
    except ValueError as exc:
        raise EraseError(f"--key is not JSON: {exc} (expected an object with {expected})") from exc
    if not isinstance(keys, dict):
        raise EraseError(f"--key must be a JSON object with the key attributes ({expected})")
    got = {name: _kind(value) for name, value in keys.items()}
    if got != schema:
        raise EraseError(
            f"--key {key_text} does not match the key schema of table {table} "
            f"({expected}); got ({', '.join(f'{n}: {k}' for n, k in sorted(got.items()))})"
        )
    if privacy is not None:
        wire = privacy.redact_image(table, ddb_json.serialize_image(keys))
        keys = ddb_json.deserialize_image(wire)
    return item_key(keys)


# -- JSON-lines objects (raw, errors) ----------------------------------------------------------


def _record_of(line: dict[str, Any]) -> dict[str, Any] | None:
    """The Kinesis record a raw or error line holds (raw: the line; errors: its bytes)."""
    if isinstance(line.get("dynamodb"), dict):
        return line
    for name in ("data_base64", "rawData"):
        encoded = line.get(name)
        if not isinstance(encoded, str):
            continue
        try:
            record = orjson.loads(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError, orjson.JSONDecodeError):
            return None
        return record if isinstance(record, dict) else None
    return None


def line_item(line: bytes) -> tuple[str, str] | None:
    """(DynamoDB table, item_key) of a raw or error line, ``None`` when it names no item."""
    try:
        doc = orjson.loads(line)
        record = _record_of(doc) if isinstance(doc, dict) else None
        if record is None:
            return None
        keys = ddb_json.deserialize_image(record["dynamodb"]["Keys"])
        return str(record.get("tableName") or doc.get("table") or ""), item_key(keys)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _without_item(data: bytes, table: str, key: str) -> tuple[bytes, int]:
    """The object's lines without the item's; how many were removed (gzip kept as gzip)."""
    zipped = data[:2] == b"\x1f\x8b"
    text = gzip.decompress(data) if zipped else data
    kept: list[bytes] = []
    removed = 0
    for line in text.splitlines(keepends=True):
        if line.strip() and line_item(line) == (table, key):
            removed += 1
        else:
            kept.append(line)
    body = b"".join(kept)
    return (gzip.compress(body, mtime=0) if zipped else body), removed


def _lines_step(
    lake: Lake, prefix: str, table: str, key: str, *, crash: Crash, name: str
) -> tuple[list[str], list[str], int]:
    rewritten: list[str] = []
    deleted: list[str] = []
    lines = 0
    for obj in list(lake.store.list(prefix)):
        body, removed = _without_item(lake.store.get(obj), table, key)
        if not removed:
            continue
        lines += removed
        if body.strip():
            lake.store.put(obj, body)
            rewritten.append(obj)
        else:
            lake.store.delete(obj)
            deleted.append(obj)
        crash(f"{name}-object")
    return rewritten, deleted, lines


# -- the erasure -------------------------------------------------------------------------------


def _holds(data: bytes, key: str) -> int:
    column = pq.read_table(io.BytesIO(data), columns=["item_key"])["item_key"]
    return int(pc.sum(pc.equal(column, key)).as_py() or 0)


def _drop_item(key: str) -> rewrite.Transform:
    def transform(rows: pa.Table) -> pa.Table:
        return rows.filter(pc.fill_null(pc.not_equal(rows["item_key"], key), True))

    return transform


def _changes_step(
    lake: Lake,
    rlake: rewrite.Lake,
    table: str,
    key: str,
    *,
    grace: timedelta,
    now: Callable[[], datetime],
    crash: Crash,
    report: EraseReport,
) -> None:
    locations = rlake.catalog.locations(table)
    on_s3 = {
        parsed.partition
        for k in lake.store.list(changes_prefix(table))
        if (parsed := parse_change_object_key(k)) is not None
    }
    missing = sorted(on_s3 - set(locations))
    if missing:  # objects the catalog has not registered yet: they hold rows too
        lake.catalog.add_partitions(table, missing)
        locations = rlake.catalog.locations(table)
    reason = "erase:" + hashlib.sha256(key.encode()).hexdigest()[:12]
    for partition, location in sorted(locations.items()):
        state = rewrite.read_partition(rlake, table, partition, location)
        if not any(_holds(lake.store.get(k), key) for k in state.inputs):
            # Already without the item (or never with it): finish what a crashed run may have
            # left after its swap — the garbage's trash record, the late objects' carry-over.
            rewrite.ensure_trash(rlake, state, now() + grace)
            if state.manifest is not None and state.pending_base:
                rewrite.carry_over(rlake, state.manifest, seen=set(state.manifest.inputs))
            continue
        result = rewrite.rewrite_partition(
            rlake,
            table,
            partition,
            _drop_item(key),
            reason=reason,
            grace=grace,
            now=now,
            crash=crash,
        )
        if result is None:
            continue
        report.partitions.append(partition.path)
        report.change_rows_removed += result.rows_in - result.rows_out
        crash("partition-rewritten")


def _snapshot_step(
    lake: Lake,
    table: str,
    key: str,
    *,
    now: Callable[[], datetime],
    crash: Crash,
    report: EraseReport,
) -> None:
    state = lake.catalog.snapshot_state(table)
    holding: set[str] = set()
    for at in lake.catalog.snapshot_ids(table):
        keys = [k for k in lake.store.list(snapshot_prefix(table, at)) if k.endswith(".parquet")]
        if any(_holds(lake.store.get(k), key) for k in keys):
            holding.add(at)
    current = state.at if state else None
    if state is not None and current in holding:
        keys = [
            k for k in lake.store.list(snapshot_prefix(table, state.at)) if k.endswith(".parquet")
        ]
        rows = pa.concat_tables(
            [pq.read_table(io.BytesIO(lake.store.get(k))) for k in keys], promote_options="default"
        )
        kept = _drop_item(key)(rows)
        new = snapshot_id(now())
        lake.store.put(snapshot_prefix(table, new) + SNAPSHOT_OBJECT, to_parquet(kept))
        crash("snapshot-written")
        columns = [
            c for c in lake.catalog.table_columns(table) or () if c.name.lower() in state.columns
        ]
        new_state = type(state)(
            at=new,
            cut=state.cut,
            columns=state.columns,
            late=state.late,
            max_event_time=state.max_event_time,
            max_sequence_number=state.max_sequence_number,
            rows=kept.num_rows,
        )
        lake.catalog.publish_snapshot(table, new_state, columns, set(state.late))
        crash("snapshot-switched")
        report.snapshot = new
        report.snapshot_rows_removed = rows.num_rows - kept.num_rows
        current = new
    registered = set(lake.catalog.snapshot_ids(table))
    keep = (registered - holding) | ({current} if current else set())
    report.snapshots_dropped = [at for at in drop_snapshots(lake, table, keep) if at in holding]
    crash("snapshots-dropped")


def erase(
    lake: Lake,
    table: str,
    key: str,
    *,
    grace: timedelta = timedelta(hours=1),
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    crash: Crash = _no_crash,
) -> EraseReport:
    """Remove every row of the item whose lake ``item_key`` is ``key`` (see module doc)."""
    started = time.monotonic()
    report = EraseReport(table, key)
    rlake = lake.rewrite_lake
    _changes_step(lake, rlake, table, key, grace=grace, now=now, crash=crash, report=report)
    _snapshot_step(lake, table, key, now=now, crash=crash, report=report)
    (
        report.raw_objects_rewritten,
        report.raw_objects_deleted,
        report.raw_lines_removed,
    ) = _lines_step(lake, raw_prefix(table), table, key, crash=crash, name="raw")
    (
        report.error_objects_rewritten,
        report.error_objects_deleted,
        report.error_lines_removed,
    ) = _lines_step(lake, f"{ERRORS}/", table, key, crash=crash, name="errors")
    trash = rewrite.collect_trash(rlake, table, now=now, crash=crash)
    report.trash_deleted, report.trash_pending = trash.deleted, trash.pending
    report.seconds = time.monotonic() - started
    log.info("erased", extra={"table": table, "partitions": report.partitions})
    return report
