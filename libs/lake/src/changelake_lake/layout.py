"""The one lake layout every service uses: prefixes, partition paths, object keys, Glue names.

::

    s3://<lake>/changes/<table>/dt=YYYY-MM-DD/hour=HH/<shard>-<firstseq>-<lastseq>.parquet
    s3://<lake>/raw/<table>/dt=YYYY-MM-DD/hour=HH/...            (Firehose, JSON lines)
    s3://<lake>/errors/<source>/<table>/dt=YYYY-MM-DD/hour=HH/...  (quarantined records)

Partitions are by *event* time (``ApproximateCreationDateTime``), UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from changelake.table_name import check_table_name
from changelake.timeutil import us_to_datetime

DATABASE = "changelake"
CHANGES = "changes"
RAW = "raw"
ERRORS = "errors"
QUARANTINE = "quarantine"
PARTITION_KEYS = ("dt", "hour")

_SAFE_PART_RE = re.compile(r"[A-Za-z0-9_.-]+\Z")
# The table segment follows the table-name rule: ``changes/<anything else>/`` is no table's
# (found by fuzzing the catalog's S3 events, docs/adr/0037: ``changes/a%2/…`` named a table).
_TABLE_OBJECT_RE = re.compile(
    r"changes/(?P<table>[A-Za-z0-9_.-]{3,255})/dt=(?P<dt>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})/(?P<name>[^/]+)\Z"
)
_CHANGE_KEY_RE = re.compile(
    r"changes/(?P<table>[A-Za-z0-9_.-]{3,255})/dt=(?P<dt>\d{4}-\d{2}-\d{2})/hour=(?P<hour>\d{2})/(?P<name>[^/]+\.parquet)\Z"
)


@dataclass(frozen=True, slots=True, order=True)
class Partition:
    """One (dt, hour) partition of a table."""

    dt: str
    hour: str

    @property
    def values(self) -> list[str]:
        """Partition values in Glue's order (dt, hour)."""
        return [self.dt, self.hour]

    @property
    def path(self) -> str:
        """The Hive-style relative path ``dt=…/hour=…/``."""
        return f"dt={self.dt}/hour={self.hour}/"

    def start(self) -> datetime:
        """The first instant (UTC) the partition covers."""
        return datetime.fromisoformat(f"{self.dt}T{self.hour}:00:00+00:00")

    def end(self) -> datetime:
        """The first instant after the partition."""
        return self.start() + timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class ChangeObject:
    """A parsed change-table object key."""

    table: str
    partition: Partition
    name: str


def partition_for_us(event_time_us: int) -> Partition:
    """Event time (epoch µs) → its UTC (dt, hour) partition."""
    moment = us_to_datetime(event_time_us)
    return Partition(moment.strftime("%Y-%m-%d"), moment.strftime("%H"))


def partition_for(moment: datetime) -> Partition:
    """Aware datetime → its UTC (dt, hour) partition."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    moment = moment.astimezone(us_to_datetime(0).tzinfo)
    return Partition(moment.strftime("%Y-%m-%d"), moment.strftime("%H"))


def changes_prefix(table: str) -> str:
    """``changes/<table>/``: the location of ``<table>_changes``."""
    return f"{CHANGES}/{check_table_name(table)}/"


def changes_partition_prefix(table: str, partition: Partition) -> str:
    """``changes/<table>/dt=…/hour=…/``."""
    return changes_prefix(table) + partition.path


def change_object_key(
    table: str, partition: Partition, shard_id: str, first_sequence: str, last_sequence: str
) -> str:
    """Deterministic key of a Parquet object: a replay of the same range overwrites it.

    The name is ``<shard>-<first sequence>-<last sequence>.parquet``: the same shard and
    sequence range always yields the same key, so re-processing never duplicates objects.
    """
    for part in (shard_id, first_sequence, last_sequence):
        if not _SAFE_PART_RE.match(part):
            raise ValueError(f"unsafe object-key component {part!r}")
    name = f"{shard_id}-{first_sequence}-{last_sequence}.parquet"
    return changes_partition_prefix(table, partition) + name


def parse_change_object_key(key: str) -> ChangeObject | None:
    """Parse a change-object key; ``None`` for anything outside ``changes/…/*.parquet``."""
    match = _CHANGE_KEY_RE.match(key)
    if not match:
        return None
    return ChangeObject(match["table"], Partition(match["dt"], match["hour"]), match["name"])


def parse_table_object_key(key: str) -> ChangeObject | None:
    """Any object a query engine reads as part of a change-table partition, Parquet or not.

    ``None`` outside ``changes/<table>/dt=…/hour=…/`` and for names Athena/Hive skip (starting
    with ``_`` or ``.``); the caller tells a change object (``*.parquet``) from a stray one.
    """
    match = _TABLE_OBJECT_RE.match(key)
    if not match or match["name"].startswith(("_", ".")) or match["name"].endswith("$folder$"):
        return None
    return ChangeObject(match["table"], Partition(match["dt"], match["hour"]), match["name"])


def quarantine_key(key: str) -> str:
    """Where the catalog moves an unreadable object out of a table: ``quarantine/<key>``."""
    return f"{QUARANTINE}/{key}"


def raw_prefix(table: str) -> str:
    """``raw/<table>/``: the location of ``<table>_raw`` (Firehose output)."""
    return f"{RAW}/{check_table_name(table)}/"


def raw_partition_prefix(table: str, partition: Partition) -> str:
    """``raw/<table>/dt=…/hour=…/``."""
    return raw_prefix(table) + partition.path


def firehose_raw_prefix_expression() -> str:
    """Firehose dynamic-partitioning prefix: table and event-time keys from the transform Lambda."""
    return (
        f"{RAW}/!{{partitionKeyFromLambda:table}}/dt=!{{partitionKeyFromLambda:dt}}/"
        "hour=!{partitionKeyFromLambda:hour}/"
    )


def firehose_error_prefix_expression() -> str:
    """Firehose error output prefix (arrival time; the error type is part of the path)."""
    return f"{ERRORS}/firehose/!{{firehose:error-output-type}}/!{{timestamp:yyyy-MM-dd}}/"


def errors_prefix(source: str, table: str | None = None) -> str:
    """``errors/<source>/[<table>/]``: quarantined records of one producer of errors."""
    if not _SAFE_PART_RE.match(source):
        raise ValueError(f"unsafe error source {source!r}")
    return f"{ERRORS}/{source}/" + (f"{check_table_name(table)}/" if table else "_unknown/")


def error_object_key(  # noqa: PLR0917 - public signature used positionally by services
    source: str,
    table: str | None,
    partition: Partition,
    shard_id: str,
    first_sequence: str,
    last_sequence: str,
) -> str:
    """Deterministic key for a batch of quarantined records (same replay-overwrites rule)."""
    for part in (shard_id, first_sequence, last_sequence):
        if not _SAFE_PART_RE.match(part):
            raise ValueError(f"unsafe object-key component {part!r}")
    return (
        errors_prefix(source, table)
        + partition.path
        + f"{shard_id}-{first_sequence}-{last_sequence}.jsonl"
    )


def changes_table_name(table: str) -> str:
    """Glue table of the curated changes: ``<table>_changes`` (Glue names are lower case)."""
    return f"{glue_name(table)}_changes"


def raw_table_name(table: str) -> str:
    """Glue table over the Firehose output: ``<table>_raw``."""
    return f"{glue_name(table)}_raw"


def errors_table_name(table: str) -> str:
    """Glue table over the consumer's quarantined records: ``<table>_errors``."""
    return f"{glue_name(table)}_errors"


FIREHOSE_ERRORS_TABLE = "firehose_error_records"
"""Glue table over Firehose's error output (every table; never ``<table>_<suffix>``)."""


def current_view_name(table: str) -> str:
    """Glue/Athena view of the latest live image per item: ``<table>_current``."""
    return f"{glue_name(table)}_current"


def glue_name(table: str) -> str:
    """The Glue/Athena base name of a DynamoDB table: the ONE rule every Glue name derives from.

    Glue lower-cases names and Athena dislikes '-' and '.': they map to '_'.
    """
    return re.sub(r"[^a-z0-9_]", "_", check_table_name(table).lower())
