"""``changelake reconcile``: is every change of a table in the lake, once, and queryable?

Four independent checks per table, each a kind of gap (docs/adr/0031):

* **items**: the DynamoDB table against ``<table>_current`` (missing, extra, different), with
  the one comparison of :mod:`changelake_lake.query.current_check`. Above a size threshold only
  one parallel-Scan segment (a hash range of the partition key) is compared, and the report
  says so; extra view items are then looked up by key (BatchGetItem) for a bounded sample.
* **events**: event ids of the raw path (Firehose JSON lines under ``raw/``) against those of
  the curated path (Parquet under ``changes/``; backfill snapshots left out), missing in either.
* **catalog**: partitions holding change objects that Glue does not list (invisible to every
  query), and objects in a partition that are not change objects.
* **quarantine**: records in ``errors/`` (consumer, Firehose) and objects the catalog moved to
  ``quarantine/``, counted per reason; plus messages in the catalog's dead-letter queue.

The report is a plain value (:class:`ReconcileReport`); ``to_dict`` is the stable JSON of
``--format json`` (``"version": 1``). Exit codes: 0 clean, 1 gaps, 2 usage or infrastructure.
"""

from __future__ import annotations

import base64
import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
from changelake import ddb_json
from changelake.events import item_key
from changelake.ports import ObjectStore
from changelake.privacy import PrivacyPolicy
from changelake_lake import layout
from changelake_lake.catalog import Catalog
from changelake_lake.layout import Partition
from changelake_lake.query.current_check import (
    SqlEngine,
    boto_to_ddb_json,
    scan_images,
    view_images,
)

from changelake_cli.ops import lake

log = logging.getLogger(__name__)

REPORT_VERSION = 1
EXAMPLES = 20
"""At most this many examples per gap kind in the report (the counts are always exact)."""

FULL_SCAN_MAX_ITEMS = 200_000
SAMPLE_ITEMS = 20_000


@dataclass(frozen=True, slots=True)
class Gap:
    """One kind of gap: how many, and a few examples (sorted, at most :data:`EXAMPLES`)."""

    count: int = 0
    examples: tuple[str, ...] = ()

    @classmethod
    def of(cls, values: Iterable[str]) -> Gap:
        """The gap made of ``values`` (deduplicated)."""
        unique = sorted(set(values))
        return cls(len(unique), tuple(unique[:EXAMPLES]))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"count": self.count, "examples": list(self.examples)}


@dataclass(frozen=True, slots=True)
class ItemsCheck:
    """DynamoDB items against ``<table>_current``."""

    mode: str  # "full" | "sample" | "skipped"
    detail: str
    source_items: int
    view_items: int
    missing: Gap = Gap()
    extra: Gap = Gap()
    different: Gap = Gap()

    def gaps(self) -> int:
        """Number of gaps found."""
        return self.missing.count + self.extra.count + self.different.count

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "mode": self.mode,
            "detail": self.detail,
            "source_items": self.source_items,
            "view_items": self.view_items,
            "missing": self.missing.to_dict(),
            "extra": self.extra.to_dict(),
            "different": self.different.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class EventsCheck:
    """Raw-path event ids against curated event ids."""

    partitions: int
    raw_events: int
    curated_events: int
    snapshot_rows: int
    missing_in_curated: Gap = Gap()
    missing_in_raw: Gap = Gap()
    quarantined_by_consumer: int = 0

    def gaps(self) -> int:
        """Number of gaps found."""
        return self.missing_in_curated.count + self.missing_in_raw.count

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "partitions": self.partitions,
            "raw_events": self.raw_events,
            "curated_events": self.curated_events,
            "snapshot_rows": self.snapshot_rows,
            "missing_in_curated": self.missing_in_curated.to_dict(),
            "missing_in_raw": self.missing_in_raw.to_dict(),
            "quarantined_by_consumer": self.quarantined_by_consumer,
        }


@dataclass(frozen=True, slots=True)
class CatalogCheck:
    """Objects under ``changes/<table>/`` against the partitions Glue lists."""

    objects: int
    partitions: int
    registered_partitions: int
    unregistered_partitions: Gap = Gap()
    stray_objects: Gap = Gap()

    def gaps(self) -> int:
        """Number of gaps found."""
        return self.unregistered_partitions.count + self.stray_objects.count

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "objects": self.objects,
            "partitions": self.partitions,
            "registered_partitions": self.registered_partitions,
            "unregistered_partitions": self.unregistered_partitions.to_dict(),
            "stray_objects": self.stray_objects.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class QuarantineCheck:
    """Quarantined records of one table (or of no known table), per source and reason."""

    records: int
    by_source: dict[str, int] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)
    objects: tuple[str, ...] = ()

    def gaps(self) -> int:
        """Number of gaps found (every quarantined record is one)."""
        return self.records

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "records": self.records,
            "by_source": dict(sorted(self.by_source.items())),
            "by_reason": dict(sorted(self.by_reason.items())),
            "objects": list(self.objects[:EXAMPLES]),
        }

    @classmethod
    def of(cls, records: Sequence[lake.QuarantinedRecord]) -> QuarantineCheck:
        """Counts of ``records`` per source and per reason."""
        return cls(
            len(records),
            dict(Counter(r.source for r in records)),
            dict(Counter(r.reason for r in records)),
            tuple(sorted({r.key for r in records})),
        )


@dataclass(frozen=True, slots=True)
class TableReport:
    """Every check of one table."""

    table: str
    items: ItemsCheck
    events: EventsCheck
    catalog: CatalogCheck
    quarantine: QuarantineCheck

    def gaps(self) -> int:
        """Number of gaps found in this table."""
        return self.items.gaps() + self.events.gaps() + self.catalog.gaps() + self.quarantine.gaps()

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "table": self.table,
            "gaps": self.gaps(),
            "items": self.items.to_dict(),
            "events": self.events.to_dict(),
            "catalog": self.catalog.to_dict(),
            "quarantine": self.quarantine.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """The whole report: per table, plus what belongs to no table."""

    tables: tuple[TableReport, ...]
    since: datetime | None
    unattributed_quarantine: QuarantineCheck
    catalog_dlq_messages: int

    def gaps(self) -> int:
        """Every gap found."""
        return (
            sum(t.gaps() for t in self.tables)
            + self.unattributed_quarantine.gaps()
            + self.catalog_dlq_messages
        )

    @property
    def clean(self) -> bool:
        """No gap of any kind."""
        return self.gaps() == 0

    @property
    def exit_code(self) -> int:
        """0 clean, 1 gaps found (2, usage or infrastructure, is raised, never reported)."""
        return 0 if self.clean else 1

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON of ``changelake reconcile --format json``."""
        return {
            "version": REPORT_VERSION,
            "clean": self.clean,
            "gaps": self.gaps(),
            "since": self.since.isoformat() if self.since else None,
            "tables": [t.to_dict() for t in self.tables],
            "unattributed_quarantine": self.unattributed_quarantine.to_dict(),
            "catalog_dlq_messages": self.catalog_dlq_messages,
        }


# -- the checks ------------------------------------------------------------------------------


def check_items(
    engine: SqlEngine,
    table: str,
    ddb: Any,
    privacy: PrivacyPolicy | None,
    *,
    view_exists: bool,
    full_scan_max_items: int = FULL_SCAN_MAX_ITEMS,
    sample_items: int = SAMPLE_ITEMS,
    rng: random.Random | None = None,
) -> ItemsCheck:
    """DynamoDB against ``<table>_current``: whole table below the threshold, else a sample."""
    lake_images = view_images(engine, table) if view_exists else {}
    described = ddb.describe_table(TableName=table)["Table"]
    approx = int(described.get("ItemCount", 0))
    if approx <= full_scan_max_items:
        source = scan_images(table, ddb, privacy)
        return ItemsCheck(
            "full",
            "consistent Scan of the whole table",
            len(source),
            len(lake_images),
            Gap.of(source.keys() - lake_images.keys()),
            Gap.of(lake_images.keys() - source.keys()),
            Gap.of(k for k in source.keys() & lake_images.keys() if source[k] != lake_images[k]),
        )
    total = min(1_000_000, max(2, math.ceil(approx / max(1, sample_items))))
    index = (rng or random.Random()).randrange(total)
    source = scan_images(table, ddb, privacy, segment=(index, total))
    missing = source.keys() - lake_images.keys()
    different = [k for k in source.keys() & lake_images.keys() if source[k] != lake_images[k]]
    # View items outside the scanned segment: look a bounded sample up by key.
    others = sorted(lake_images.keys() - source.keys())
    sample = (rng or random.Random()).sample(others, min(len(others), sample_items))
    detail = (
        f"sample: Scan segment {index} of {total} (~{approx:,} items by DescribeTable), "
        f"{len(sample):,} other view items looked up by key"
    )
    if privacy is not None and privacy.covers(table):
        detail += "; extra items not checked (the privacy policy may rewrite keys)"
        extra: set[str] = set()
    else:
        extra = set(sample) - _existing_keys(ddb, described, sample)
    return ItemsCheck(
        "sample",
        detail,
        len(source),
        len(lake_images),
        Gap.of(missing),
        Gap.of(extra),
        Gap.of(different),
    )


def _existing_keys(ddb: Any, described: dict[str, Any], item_keys: Sequence[str]) -> set[str]:
    """Which of the ``item_key`` texts exist in the table (BatchGetItem, 100 keys a call)."""
    types = {a["AttributeName"]: a["AttributeType"] for a in described["AttributeDefinitions"]}
    names = [k["AttributeName"] for k in described["KeySchema"]]
    table = described["TableName"]
    requests = []
    for text in item_keys:
        plain = orjson.loads(text)
        requests.append({n: _key_value(types[n], plain[n]) for n in names})
    found: set[str] = set()
    for start in range(0, len(requests), 100):
        pending: dict[str, Any] = {table: {"Keys": requests[start : start + 100]}}
        while pending:
            resp = ddb.batch_get_item(RequestItems=pending)
            for item in resp.get("Responses", {}).get(table, []):
                wire = {n: boto_to_ddb_json(item[n]) for n in names}
                found.add(item_key(ddb_json.deserialize_image(wire)))
            pending = resp.get("UnprocessedKeys") or {}
    return found


def _key_value(kind: str, value: Any) -> dict[str, Any]:
    if kind == "N":
        return {"N": str(value)}
    if kind == "B":
        return {"B": base64.b64decode(value)}
    return {"S": str(value)}


def _key_prefix(location: str) -> str:
    """``s3://bucket/prefix/`` → ``prefix/``."""
    return urlsplit(location).path.lstrip("/")


def _readable(key: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return name.endswith(".parquet") and not name.startswith(("_", "."))


def check_events(
    store: ObjectStore,
    table: str,
    since: datetime | None,
    consumer_quarantined_ids: set[str],
    locations: dict[Partition, str],
) -> EventsCheck:
    """Raw-path event ids against curated ones, partition by partition (event time).

    The curated side is what a query reads: a registered partition's objects under its Glue
    location (the base prefix, or a rewrite's generation), else the base prefix's objects.
    """
    raw_parts = lake.partitioned_keys(store, layout.raw_prefix(table), since)
    base_parts = lake.partitioned_keys(store, layout.changes_prefix(table), since)
    registered = {p: loc for p, loc in locations.items() if lake.partition_wanted(p, since)}
    raw_ids: set[str] = set()
    for keys in raw_parts.values():
        for key in keys:
            raw_ids.update(lake.raw_event_ids(store, key))
    curated: set[str] = set()
    snapshots: set[str] = set()
    for partition in base_parts.keys() | registered.keys():
        if partition in registered:
            keys = list(store.list(_key_prefix(registered[partition])))
        else:
            keys = base_parts[partition]
        for key in keys:
            if _readable(key):  # a stray object: the catalog check reports it
                ids = lake.curated_event_ids(store, key)
                curated.update(ids.changes)
                snapshots.update(ids.snapshots)
    only_raw = raw_ids - curated
    quarantined = only_raw & consumer_quarantined_ids
    return EventsCheck(
        partitions=len(raw_parts.keys() | base_parts.keys() | registered.keys()),
        raw_events=len(raw_ids),
        curated_events=len(curated),
        snapshot_rows=len(snapshots),
        # A record the consumer quarantined is counted once, under quarantine.
        missing_in_curated=Gap.of(only_raw - quarantined),
        missing_in_raw=Gap.of(curated - raw_ids),
        quarantined_by_consumer=len(quarantined),
    )


def check_catalog(
    store: ObjectStore, locations: dict[Partition, str], table: str, since: datetime | None
) -> CatalogCheck:
    """Partitions with change objects that Glue does not list, and stray objects."""
    parts = lake.partitioned_keys(store, layout.changes_prefix(table), since)
    registered = {p for p in locations if lake.partition_wanted(p, since)}
    stray = [k for keys in parts.values() for k in keys if not k.endswith(".parquet")]
    with_objects = {p for p, keys in parts.items() if any(k.endswith(".parquet") for k in keys)}
    unregistered = [p.path.rstrip("/") for p in with_objects - registered]
    return CatalogCheck(
        objects=sum(len(v) for v in parts.values()),
        partitions=len(with_objects | registered),
        registered_partitions=len(registered),
        unregistered_partitions=Gap.of(unregistered),
        stray_objects=Gap.of(stray),
    )


def quarantined_records(
    store: ObjectStore, tables: Sequence[str], since: datetime | None
) -> tuple[dict[str, list[lake.QuarantinedRecord]], list[lake.QuarantinedRecord]]:
    """Quarantined records per table, and those of no configured table."""
    per_table: dict[str, list[lake.QuarantinedRecord]] = {t: [] for t in tables}
    unattributed: list[lake.QuarantinedRecord] = []
    for table in tables:
        prefix = layout.errors_prefix(lake.CONSUMER_ERRORS, table)
        for keys in lake.partitioned_keys(store, prefix, since).values():
            for key in keys:
                per_table[table].extend(lake.consumer_error_records(store, key))
        per_table[table].extend(lake.catalog_quarantine_reasons(store, table, since))
    unknown = layout.errors_prefix(lake.CONSUMER_ERRORS, None)
    for keys in lake.partitioned_keys(store, unknown, since).values():
        for key in keys:
            unattributed.extend(lake.consumer_error_records(store, key))
    for key in lake.firehose_error_keys(store, since):
        for record in lake.firehose_error_records(store, key):
            target = per_table.get(record.table) if record.table is not None else None
            (target if target is not None else unattributed).append(record)
    return per_table, unattributed


def _event_id(record: lake.QuarantinedRecord) -> str | None:
    if record.data is None:
        return None
    try:
        doc = orjson.loads(record.data)
    except orjson.JSONDecodeError:
        return None
    value = doc.get("eventID") if isinstance(doc, dict) else None
    return value if isinstance(value, str) else None


def reconcile(
    *,
    store: ObjectStore,
    catalog: Catalog,
    engine: SqlEngine,
    ddb: Any,
    tables: Sequence[str],
    since: datetime | None = None,
    privacy: PrivacyPolicy | None = None,
    dlq_depth: Callable[[], int] | None = None,
    full_scan_max_items: int = FULL_SCAN_MAX_ITEMS,
    sample_items: int = SAMPLE_ITEMS,
    rng: random.Random | None = None,
) -> ReconcileReport:
    """Run every check for ``tables`` and return the report (adapters given by the caller)."""
    per_table, unattributed = quarantined_records(store, tables, since)
    reports = []
    for table in tables:
        consumer_ids = {
            event_id
            for r in per_table[table]
            if r.source == lake.CONSUMER_ERRORS and (event_id := _event_id(r)) is not None
        }
        locations = catalog.locations(table)
        catalog_check = check_catalog(store, locations, table, since)
        reports.append(
            TableReport(
                table=table,
                items=check_items(
                    engine,
                    table,
                    ddb,
                    privacy,
                    view_exists=bool(locations),
                    full_scan_max_items=full_scan_max_items,
                    sample_items=sample_items,
                    rng=rng,
                ),
                events=check_events(store, table, since, consumer_ids, locations),
                catalog=catalog_check,
                quarantine=QuarantineCheck.of(per_table[table]),
            )
        )
    report = ReconcileReport(
        tables=tuple(reports),
        since=since,
        unattributed_quarantine=QuarantineCheck.of(unattributed),
        catalog_dlq_messages=dlq_depth() if dlq_depth is not None else 0,
    )
    log.info("reconcile done", extra={"gaps": report.gaps(), "tables": list(tables)})
    return report


def reconcile_from_settings(
    table: str | None = None,
    since: str | datetime | None = None,
    *,
    engine: SqlEngine | None = None,
    full_scan_max_items: int = FULL_SCAN_MAX_ITEMS,
    sample_items: int = SAMPLE_ITEMS,
) -> ReconcileReport:
    """The Python entry point: reconcile against the lake the ``CHANGELAKE_*`` settings name.

    Endpoints come from ``AWS_ENDPOINT_URL`` as everywhere; ``engine`` defaults to the local
    engine (DuckDB over Glue and S3). ``since``: a datetime, or ``--since``'s text.
    """
    from changelake.adapters import aws
    from changelake.adapters.s3_store import S3ObjectStore
    from changelake_catalog.bootstrap import build_catalog
    from changelake_catalog.settings import CatalogSettings

    settings = CatalogSettings()
    when = lake.parse_since(since) if isinstance(since, str) or since is None else since
    catalog = build_catalog(settings)
    if engine is None:
        from changelake_lake.query.local_engine import LocalEngine

        engine = LocalEngine(settings.database, catalog=catalog, region=settings.region)
    return reconcile(
        store=S3ObjectStore(settings.lake_bucket),
        catalog=catalog,
        engine=engine,
        ddb=aws.dynamodb(),
        tables=lake.configured_tables(settings, table),
        since=when,
        privacy=aws.privacy_policy(settings),
        dlq_depth=lambda: dlq_depth(settings.catalog_queue),
        full_scan_max_items=full_scan_max_items,
        sample_items=sample_items,
    )


def dlq_depth(queue: str) -> int:
    """Messages in the catalog queue's dead-letter queue (0 if it has none)."""
    from changelake_cli.ops.sqs_dlq import DeadLetters

    dead = DeadLetters.of(queue)
    return dead.depth() if dead is not None else 0
