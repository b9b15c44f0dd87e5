"""Reading the lake's own objects for the operations: partitions, event ids, quarantined records.

Everything here reads through the :class:`~changelake.ports.ObjectStore` port, so the same code
runs against S3, the emulator and the in-memory fake. Layout: :mod:`changelake_lake.layout`.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import pyarrow.parquet as pq
from changelake.ports import ObjectStore
from changelake.table_name import check_table_name
from changelake_catalog.settings import CatalogSettings
from changelake_lake import layout
from changelake_lake.layout import Partition

SNAPSHOT = "SNAPSHOT"
"""``event_name`` of the rows a backfill writes (docs/adr/0030)."""

CONSUMER_ERRORS = "consumer"
FIREHOSE_ERRORS = "firehose"
CATALOG_REASON_SUFFIX = ".reason.json"

_PARTITION_RE = re.compile(r"dt=(?P<dt>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})/(?P<name>[^/]+)\Z")
_FIREHOSE_ERROR_RE = re.compile(
    r"errors/firehose/(?P<type>[^/]+)/(?P<day>\d{4}-\d{2}-\d{2})/(?P<name>[^/]+)\Z"
)
_DURATION_RE = re.compile(r"(?P<n>\d+)(?P<unit>[smhd])\Z")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def configured_tables(settings: CatalogSettings, table: str | None = None) -> list[str]:
    """The DynamoDB tables an operation covers: ``table`` if given, else every configured one
    (:func:`changelake_catalog.maintenance.configured_tables`, the one reader of that list)."""
    from changelake_catalog.maintenance import configured_tables as deployment_tables

    if table is not None:
        return [check_table_name(table)]
    return deployment_tables(settings)


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """``--since``: an ISO date/time (UTC if naive) or a duration back from now (``90m``, ``2h``).

    ``None`` or an empty text means "from the beginning". Raises ``ValueError`` with the rule.
    """
    if text is None or not text.strip():
        return None
    text = text.strip()
    match = _DURATION_RE.match(text)
    if match:
        delta = timedelta(**{_UNITS[match["unit"]]: int(match["n"])})
        return (now or datetime.now(UTC)) - delta
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--since takes an ISO date/time (2026-11-29T10:00) or a duration (30m, 2h, 1d), "
            f"got {text!r}"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def partition_wanted(partition: Partition, since: datetime | None) -> bool:
    """Whether a partition may hold data at or after ``since`` (its hour ends after it)."""
    return since is None or partition.end() > since


def partition_of(key: str, prefix: str) -> tuple[Partition, str] | None:
    """``(partition, object name)`` of a key ``<prefix>dt=…/hour=…/<name>``; ``None`` otherwise.

    Names Athena and Hive skip (starting with ``_`` or ``.``) are ``None`` too.
    """
    if not key.startswith(prefix):
        return None
    match = _PARTITION_RE.match(key[len(prefix) :])
    if not match or match["name"].startswith(("_", ".")):
        return None
    return Partition(match["dt"], match["hour"]), match["name"]


def partitioned_keys(
    store: ObjectStore, prefix: str, since: datetime | None = None
) -> dict[Partition, list[str]]:
    """Object keys under ``prefix`` grouped by their Hive ``dt``/``hour`` partition."""
    found: dict[Partition, list[str]] = {}
    for key in store.list(prefix):
        parsed = partition_of(key, prefix)
        if parsed is None or not partition_wanted(parsed[0], since):
            continue
        found.setdefault(parsed[0], []).append(key)
    return found


def raw_event_ids(store: ObjectStore, key: str) -> Iterator[str]:
    """The ``eventID`` of every JSON line of a Firehose raw object (unreadable lines skipped)."""
    for line in store.get(key).splitlines():
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        event_id = doc.get("eventID") if isinstance(doc, dict) else None
        if isinstance(event_id, str):
            yield event_id


@dataclass(frozen=True, slots=True)
class CuratedIds:
    """Event ids of one change object: stream changes and backfill snapshots apart."""

    changes: list[str]
    snapshots: list[str]


def curated_event_ids(store: ObjectStore, key: str) -> CuratedIds:
    """``event_id`` of each row of a change object (only two columns are decoded)."""
    table = pq.read_table(io.BytesIO(store.get(key)), columns=["event_id", "event_name"])
    ids = table.column("event_id").to_pylist()
    names = table.column("event_name").to_pylist()
    changes = [str(i) for i, n in zip(ids, names, strict=True) if n != SNAPSHOT]
    snapshots = [str(i) for i, n in zip(ids, names, strict=True) if n == SNAPSHOT]
    return CuratedIds(changes, snapshots)


@dataclass(frozen=True, slots=True)
class QuarantinedRecord:
    """One quarantined record, whatever wrote it: where it is, why, what it was."""

    source: str
    key: str
    reason: str
    table: str | None
    data: bytes | None
    line: dict[str, object]


def consumer_error_records(store: ObjectStore, key: str) -> list[QuarantinedRecord]:
    """The lines of a consumer error object (``errors/consumer/…/*.jsonl``)."""
    out = []
    for line in store.get(key).splitlines():
        if not line.strip():
            continue
        doc = orjson.loads(line)
        data = doc.get("data_base64")
        out.append(
            QuarantinedRecord(
                CONSUMER_ERRORS,
                key,
                str(doc.get("reason")),
                doc.get("table"),
                base64.b64decode(data) if isinstance(data, str) else None,
                doc,
            )
        )
    return out


def firehose_error_records(store: ObjectStore, key: str) -> list[QuarantinedRecord]:
    """The lines of a Firehose error object; the table is read from the record when it can be."""
    out = []
    for line in store.get(key).splitlines():
        if not line.strip():
            continue
        doc = orjson.loads(line)
        raw = doc.get("rawData")
        data = base64.b64decode(raw) if isinstance(raw, str) else None
        reason = f"{doc.get('errorCode')}: {doc.get('errorMessage')}"
        out.append(
            QuarantinedRecord(FIREHOSE_ERRORS, key, reason, table_of_record(data), data, doc)
        )
    return out


def table_of_record(data: bytes | None) -> str | None:
    """``tableName`` of a Kinesis-for-DynamoDB record's bytes, if it has a valid one."""
    if data is None:
        return None
    try:
        doc = orjson.loads(data)
        table = doc.get("tableName") if isinstance(doc, dict) else None
        return check_table_name(table) if isinstance(table, str) else None
    except (orjson.JSONDecodeError, ValueError):
        return None


def firehose_error_keys(store: ObjectStore, since: datetime | None = None) -> list[str]:
    """Keys of Firehose error objects (``errors/firehose/<type>/<yyyy-MM-dd>/…``), by day."""
    keys = []
    since_day = since.strftime("%Y-%m-%d") if since is not None else None
    for key in store.list(f"{layout.ERRORS}/{FIREHOSE_ERRORS}/"):
        match = _FIREHOSE_ERROR_RE.match(key)
        if match and (since_day is None or match["day"] >= since_day):
            keys.append(key)
    return keys


def catalog_quarantine_reasons(
    store: ObjectStore, table: str, since: datetime | None = None
) -> list[QuarantinedRecord]:
    """Objects the catalog moved out of ``changes/<table>/`` (their ``.reason.json`` records)."""
    prefix = layout.quarantine_key(layout.changes_prefix(table))
    out = []
    for key in store.list(prefix):
        if not key.endswith(CATALOG_REASON_SUFFIX):
            continue
        parsed = partition_of(key, prefix)
        if parsed is not None and not partition_wanted(parsed[0], since):
            continue
        doc = orjson.loads(store.get(key))
        out.append(QuarantinedRecord("catalog", key, str(doc.get("reason")), table, None, doc))
    return out


def utc_now() -> datetime:
    """The wall clock, aware UTC (one place to read it)."""
    return datetime.now(UTC)
