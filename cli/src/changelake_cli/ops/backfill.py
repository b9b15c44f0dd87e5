"""``changelake backfill``: the items that existed before the stream, as ``SNAPSHOT`` rows.

A table that already held items when its Kinesis streaming destination was enabled has no
change for them on the stream, so ``<table>_current`` would miss them. The backfill copies the
table once and writes one row per item with ``event_name = 'SNAPSHOT'``, the copy's time as
``event_time``, sequence number ``0`` and shard ``snapshot``, through the consumer's own row
path (:func:`changelake_consumer.rows.prepare`, privacy policy included) and Parquet writer, to
``changes/<table>/dt=…/hour=…/snapshot-<id>-<part>.parquet`` (docs/adr/0030):

* **Order against the stream.** The view takes the last event by ``event_time``, then sequence
  number: a stream change after the copy wins, a tie goes to the stream (``0`` sorts below every
  Kinesis sequence number), and every stream change before the copy is either older or carries
  the same image. Correct as long as the destination was ACTIVE before the copy started:
  checked (``DescribeKinesisStreamingDestination``) and refused otherwise.
* **Sources.** ``export`` (default): ``ExportTableToPointInTime`` (full, DynamoDB JSON) into
  ``exports/<table>/`` of the lake bucket, then the export's manifest and data files; the
  export time is the snapshot time. ``scan``: a parallel Scan (``Segment``/``TotalSegments``)
  when point-in-time recovery is off; the scan's start is the snapshot time (an item changed
  while it is scanned has a later stream change, which wins).
* **Idempotent.** Event ids are ``snapshot-`` + a hash of the table, the snapshot id (export
  ARN, or scan start) and the item key; objects are cut every :data:`ROWS_PER_OBJECT` rows in a
  fixed order, so re-reading the same export writes the same objects. The run's state is kept
  in ``backfill/<table>/state.json``: a finished backfill is not repeated (``again=True`` takes
  a new snapshot), an unfinished export is resumed (same export, same objects), an unfinished
  scan's objects are removed and the scan taken again.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from changelake import ddb_json
from changelake.events import DecodeFailure, Position, item_key
from changelake.ports import ObjectStore
from changelake.privacy import PrivacyPolicy
from changelake.table_name import check_table_name
from changelake.timeutil import datetime_to_us, us_to_datetime
from changelake_lake import layout
from changelake_lake.query.current_check import boto_to_ddb_json

from changelake_cli.ops import lake

log = logging.getLogger(__name__)

ROWS_PER_OBJECT = 50_000
SNAPSHOT_SHARD = "snapshot"
SNAPSHOT_SEQUENCE = "0"
STATE_PREFIX = "backfill"
EXPORTS_PREFIX = "exports"
PARQUET_TYPE = "application/vnd.apache.parquet"

Progress = Callable[[int, int | None], None]
"""``progress(items done, items expected or None)``."""


class BackfillError(RuntimeError):
    """The backfill cannot run (the message says why and what to do)."""


@dataclass(slots=True)
class BackfillSummary:
    """What a backfill did."""

    table: str
    source: str
    snapshot_id: str
    snapshot_time: str
    items: int = 0
    objects: list[str] = field(default_factory=list)
    bytes_written: int = 0
    bytes_read: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    skipped: bool = False


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A consistent copy of the table: its id, time and items (DynamoDB JSON, wire form)."""

    snapshot_id: str
    time_us: int
    expected: int | None
    items: Callable[[], Iterator[dict[str, Any]]]
    bytes_read: Callable[[], int]


def check_stream_active(ddb: Any, table: str, stream_name: str | None = None) -> str:
    """The ARN of the table's ACTIVE Kinesis streaming destination, or :class:`BackfillError`.

    The copy must start after the destination is ACTIVE: a change made between the copy and
    the activation would be in neither (docs/adr/0030).
    """
    found = ddb.describe_kinesis_streaming_destination(TableName=table)
    destinations = found.get("KinesisDataStreamDestinations", [])
    wanted = [
        d
        for d in destinations
        if stream_name is None or str(d.get("StreamArn", "")).endswith(f":stream/{stream_name}")
    ]
    active = [d for d in wanted if d.get("DestinationStatus") == "ACTIVE"]
    if not active:
        statuses = ", ".join(f"{d['StreamArn']}: {d['DestinationStatus']}" for d in wanted)
        raise BackfillError(
            f"the Kinesis streaming destination of table {table!r} is not ACTIVE "
            f"({statuses or 'none enabled'}); enable it (aws dynamodb "
            "enable-kinesis-streaming-destination) and wait for ACTIVE before a backfill, "
            "or the changes made in between would be in neither the copy nor the stream"
        )
    return str(active[0]["StreamArn"])


def snapshot_event_id(table: str, snapshot_id: str, key: str) -> str:
    """Deterministic event id of an item's snapshot row (same export, same id)."""
    digest = hashlib.sha256(f"{table}\0{snapshot_id}\0{key}".encode()).hexdigest()
    return f"snapshot-{digest[:40]}"


def snapshot_object_key(table: str, snapshot_id: str, time_us: int, part: int) -> str:
    """``changes/<table>/dt=…/hour=…/snapshot-<id hash>-<part>.parquet``."""
    digest = hashlib.sha256(snapshot_id.encode()).hexdigest()[:16]
    partition = layout.partition_for_us(time_us)
    return layout.changes_partition_prefix(table, partition) + (
        f"{SNAPSHOT_SHARD}-{digest}-{part:06d}.parquet"
    )


# -- sources ---------------------------------------------------------------------------------


def export_snapshot(
    ddb: Any,
    store: ObjectStore,
    table: str,
    bucket: str,
    *,
    export_arn: str | None = None,
    poll_s: float = 2.0,
    timeout_s: float = 6 * 3600,
    on_wait: Callable[[str], None] | None = None,
) -> tuple[Snapshot, str]:
    """Start (or resume) a full DynamoDB-JSON export and wait for it; its items in order."""
    described = ddb.describe_table(TableName=table)["Table"]
    if export_arn is None:
        backups = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
        pitr = backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")
        if pitr != "ENABLED":
            raise BackfillError(
                f"point-in-time recovery is off for table {table!r} (status {pitr}): a DynamoDB "
                "export needs it (aws dynamodb update-continuous-backups), or use --source scan"
            )
        export_arn = str(
            ddb.export_table_to_point_in_time(
                TableArn=described["TableArn"],
                S3Bucket=bucket,
                S3Prefix=f"{EXPORTS_PREFIX}/{table}",
                ExportFormat="DYNAMODB_JSON",
                ExportType="FULL_EXPORT",
            )["ExportDescription"]["ExportArn"]
        )
    deadline = time.monotonic() + timeout_s
    while True:
        desc = ddb.describe_export(ExportArn=export_arn)["ExportDescription"]
        status = desc["ExportStatus"]
        if status == "COMPLETED":
            break
        if status == "FAILED" or time.monotonic() > deadline:
            raise BackfillError(
                f"export {export_arn} {status}: {desc.get('FailureCode')} "
                f"{desc.get('FailureMessage') or 'timed out'}"
            )
        if on_wait is not None:
            on_wait(status)
        time.sleep(poll_s)
    manifest = orjson.loads(store.get(desc["ExportManifest"]))
    files = [
        orjson.loads(line)
        for line in store.get(manifest["manifestFilesS3Key"]).splitlines()
        if line.strip()
    ]
    read = [0]

    def items() -> Iterator[dict[str, Any]]:
        for entry in files:
            data = store.get(entry["dataFileS3Key"])
            read[0] += len(data)
            for line in gzip.decompress(data).splitlines():
                if line.strip():
                    yield orjson.loads(line)["Item"]

    moment = desc["ExportTime"]
    when = moment if isinstance(moment, datetime) else datetime.fromtimestamp(moment, UTC)
    expected = int(manifest.get("itemCount", desc.get("ItemCount", 0)))
    snapshot = Snapshot(export_arn, datetime_to_us(when), expected, items, lambda: read[0])
    return snapshot, export_arn


def scan_snapshot(ddb: Any, table: str, segments: int = 4) -> Snapshot:
    """A parallel Scan; its start is the snapshot time; items in item-key order."""
    started_us = datetime_to_us(datetime.now(UTC))
    described = ddb.describe_table(TableName=table)["Table"]
    names = [k["AttributeName"] for k in described["KeySchema"]]

    def segment(index: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        paginator = ddb.get_paginator("scan")
        for page in paginator.paginate(
            TableName=table, Segment=index, TotalSegments=segments, ConsistentRead=True
        ):
            out.extend({k: boto_to_ddb_json(v) for k, v in i.items()} for i in page["Items"])
        return out

    with ThreadPoolExecutor(max_workers=segments) as pool:
        scanned = [item for part in pool.map(segment, range(segments)) for item in part]

    def order(item: dict[str, Any]) -> str:
        return item_key(ddb_json.deserialize_image({n: item[n] for n in names}))

    scanned.sort(key=order)
    size = sum(len(orjson.dumps(i)) for i in scanned)
    return Snapshot(
        f"scan:{table}:{started_us}",
        started_us,
        len(scanned),
        lambda: iter(scanned),
        lambda: size,
    )


# -- writing ---------------------------------------------------------------------------------


def _record(table: str, region: str, keys: Sequence[str], item: dict[str, Any], at: int) -> bytes:
    payload = {
        "ApproximateCreationDateTime": at,
        "ApproximateCreationDateTimePrecision": "MICROSECOND",
        "Keys": {k: item[k] for k in keys},
        "NewImage": item,
    }
    payload["SizeBytes"] = len(orjson.dumps(payload["Keys"])) + len(orjson.dumps(item))
    return orjson.dumps(
        {
            "awsRegion": region,
            "eventID": "snapshot",  # replaced by the deterministic id below
            "eventName": "INSERT",
            "userIdentity": None,
            "recordFormat": "application/json",
            "tableName": table,
            "eventSource": "aws:dynamodb",
            "dynamodb": payload,
        }
    )


def write_snapshot(
    store: ObjectStore,
    table: str,
    snapshot: Snapshot,
    keys: Sequence[str],
    *,
    region: str,
    privacy: PrivacyPolicy | None = None,
    progress: Progress | None = None,
    rows_per_object: int = ROWS_PER_OBJECT,
) -> BackfillSummary:
    """Every item of ``snapshot`` as a SNAPSHOT row, in objects of ``rows_per_object`` rows."""
    from changelake_consumer.parquet import table_to_parquet
    from changelake_consumer.rows import prepare
    from changelake_lake.column_policy import ChangeColumns, PreparedRow

    started = time.monotonic()
    summary = BackfillSummary(
        table, "", snapshot.snapshot_id, us_to_datetime(snapshot.time_us).isoformat()
    )
    position = Position(SNAPSHOT_SHARD, SNAPSHOT_SEQUENCE, snapshot.time_us)
    meta = privacy.metadata(table) if privacy is not None else None
    rows: list[PreparedRow] = []

    def flush() -> None:
        if not rows:
            return
        columns = ChangeColumns()
        for row in rows:
            columns.add(row)
        key = snapshot_object_key(
            table, snapshot.snapshot_id, snapshot.time_us, len(summary.objects)
        )
        data = table_to_parquet(columns.to_table(), meta)
        store.put(key, data, PARQUET_TYPE)
        summary.objects.append(key)
        summary.bytes_written += len(data)
        rows.clear()

    for item in snapshot.items():
        row = prepare(_record(table, region, keys, item, snapshot.time_us), position, None, privacy)
        if isinstance(row, DecodeFailure):
            # An item DynamoDB holds is valid DynamoDB JSON; only a policy can refuse it.
            summary.quarantined += 1
            log.warning("snapshot item refused", extra={"reason": row.reason})
            continue
        system = list(row.system)
        system[0] = snapshot_event_id(table, snapshot.snapshot_id, str(system[3]))
        system[1] = lake.SNAPSHOT
        system[6] = []  # not a change: no changed attributes
        row.system = tuple(system)
        rows.append(row)
        summary.items += 1
        if len(rows) >= rows_per_object:
            flush()
        if progress is not None and summary.items % 1000 == 0:
            progress(summary.items, snapshot.expected)
    flush()
    if progress is not None:
        progress(summary.items, snapshot.expected)
    summary.bytes_read = snapshot.bytes_read()
    summary.seconds = round(time.monotonic() - started, 3)
    return summary


# -- the command's flow ----------------------------------------------------------------------


def _state_key(table: str) -> str:
    return f"{STATE_PREFIX}/{check_table_name(table)}/state.json"


def _load_state(store: ObjectStore, table: str) -> dict[str, Any] | None:
    try:
        return dict(orjson.loads(store.get(_state_key(table))))
    except KeyError:
        return None


def _save_state(store: ObjectStore, table: str, state: dict[str, Any]) -> None:
    store.put(
        _state_key(table), orjson.dumps(state, option=orjson.OPT_INDENT_2), "application/json"
    )


def backfill(
    *,
    ddb: Any,
    store: ObjectStore,
    table: str,
    bucket: str,
    region: str,
    source: str = "export",
    stream_name: str | None = None,
    privacy: PrivacyPolicy | None = None,
    segments: int = 4,
    again: bool = False,
    progress: Progress | None = None,
    on_wait: Callable[[str], None] | None = None,
    rows_per_object: int = ROWS_PER_OBJECT,
) -> BackfillSummary:
    """Check the stream, take (or resume) the snapshot, write its rows, record the state."""
    if source not in ("export", "scan"):
        raise BackfillError(f"--source is export or scan, got {source!r}")
    stream_arn = check_stream_active(ddb, table, stream_name)
    state = _load_state(store, table)
    if state is not None and state.get("status") == "done" and not again:
        done = BackfillSummary(**state["summary"])
        done.skipped = True
        return done
    keys = [k["AttributeName"] for k in ddb.describe_table(TableName=table)["Table"]["KeySchema"]]
    resume_export = None
    if state is not None and state.get("status") == "running":
        if state.get("source") == "export" and source == "export" and not again:
            resume_export = state.get("export_arn")
        else:
            _remove_partial(store, table, state)
    run: dict[str, Any] = {"status": "running", "source": source, "stream_arn": stream_arn}
    if source == "export":
        snapshot, run["export_arn"] = export_snapshot(
            ddb, store, table, bucket, export_arn=resume_export, on_wait=on_wait
        )
    else:
        snapshot = scan_snapshot(ddb, table, segments)
    run |= _ids(snapshot)
    _save_state(store, table, run)
    summary = write_snapshot(
        store,
        table,
        snapshot,
        keys,
        region=region,
        privacy=privacy,
        progress=progress,
        rows_per_object=rows_per_object,
    )
    summary.source = source
    _save_state(store, table, run | {"status": "done", "summary": asdict(summary)})
    return summary


def _ids(snapshot: Snapshot) -> dict[str, Any]:
    return {"snapshot_id": snapshot.snapshot_id, "snapshot_time_us": snapshot.time_us}


def _remove_partial(store: ObjectStore, table: str, state: dict[str, Any]) -> None:
    """Delete the objects of an unfinished snapshot that will not be resumed."""
    snapshot_id, time_us = state.get("snapshot_id"), state.get("snapshot_time_us")
    if not isinstance(snapshot_id, str) or not isinstance(time_us, int):
        return
    first = snapshot_object_key(table, snapshot_id, time_us, 0)
    head = first[: -len("000000.parquet")]
    for key in list(store.list(head)):
        store.delete(key)


def backfill_from_settings(
    table: str | None = None,
    *,
    source: str = "export",
    segments: int = 4,
    again: bool = False,
    progress: Progress | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> list[BackfillSummary]:
    """The Python entry point: back-fill each configured table (or ``table``)."""
    from changelake.adapters import aws
    from changelake.adapters.s3_store import S3ObjectStore
    from changelake_catalog.settings import CatalogSettings

    settings = CatalogSettings()
    store = S3ObjectStore(settings.lake_bucket)
    return [
        backfill(
            ddb=aws.dynamodb(),
            store=store,
            table=name,
            bucket=settings.lake_bucket,
            region=settings.region,
            source=source,
            stream_name=settings.stream_name,
            privacy=aws.privacy_policy(settings),
            segments=segments,
            again=again,
            progress=progress,
            on_wait=on_wait,
        )
        for name in lake.configured_tables(settings, table)
    ]
