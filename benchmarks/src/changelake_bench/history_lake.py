"""A seeded change history written to S3 and Glue as the pipeline writes it (consumer rows,
deterministic object keys, the catalog's own registration), for the snapshot and erasure
tests and the "current with snapshot" bench.

The workload has what makes ``<table>_current`` hard: inserts, updates, user and TTL deletes,
items re-created after a delete, stream duplicates (the same change again under a later
sequence number), two changes of one item at the same instant (the sequence number decides),
a ms/µs precision mix, and an attribute that appears only in later hours (a new column).
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow.parquet as pq
from changelake.events import Position
from changelake.ports import ObjectStore
from changelake.privacy import PrivacyPolicy
from changelake.timeutil import datetime_to_us
from changelake_consumer.parquet import records_to_parquet
from changelake_lake.catalog import Catalog
from changelake_lake.columns import Column
from changelake_lake.glue_schema import columns_of
from changelake_lake.layout import (
    Partition,
    change_object_key,
    partition_for_us,
    raw_partition_prefix,
)
from changelake_testsupport.records import encode, kinesis_dynamodb_record

SEQ_BASE = 49654821367156789012345678901234567890123456789012340000
Record = tuple[bytes, Position]


@dataclass(frozen=True, slots=True)
class HistorySpec:
    """How much history: ``items`` persons changed ``changes_per_hour`` times an hour."""

    table: str = "persons"
    items: int = 40
    hours: int = 6
    changes_per_hour: int = 60
    start: datetime = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
    seed: int = 7
    shards: int = 2
    records_per_object: int = 25
    delete_share: float = 0.12
    ttl_share: float = 0.4
    duplicate_share: float = 0.05
    tie_share: float = 0.05
    new_column_hour: int = 2


@dataclass(slots=True)
class History:
    """What was written: objects by partition, and the counters of the workload."""

    spec: HistorySpec
    objects: dict[Partition, list[str]] = field(default_factory=dict)
    changes: int = 0
    bytes: int = 0


def _person(
    pk: str, version: int, hour: int, spec: HistorySpec, rng: random.Random
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": pk,
        "name": f"Person {pk} v{version}",
        "version": Decimal(version),
        "score": Decimal(rng.randrange(0, 100_000)) / Decimal(100),
        "address": {"city": rng.choice(["Lyon", "Oslo", "Lima", "Kyiv"]), "zip": f"{version:05d}"},
        "tags": {f"t{rng.randrange(5)}", "all"},
    }
    if hour >= spec.new_column_hour:
        item["nickname"] = f"nick-{version}"
    return item


def workload(spec: HistorySpec) -> Iterator[tuple[Partition, str, list[Record]]]:
    """The history as (partition, shard, records) batches in stream order (seeded)."""
    rng = random.Random(spec.seed)
    alive: dict[str, dict[str, Any]] = {}
    versions: dict[str, int] = {}
    seqs = [0] * spec.shards
    start_us = datetime_to_us(spec.start)
    step_us = 3_600_000_000 // spec.changes_per_hour
    counter = 0
    for hour in range(spec.hours):
        pending: dict[tuple[Partition, str], list[Record]] = {}
        when = start_us + hour * 3_600_000_000
        for _ in range(spec.changes_per_hour):
            pk = f"p{rng.randrange(spec.items):04d}"
            shard_no = int(pk[1:]) % spec.shards
            shard = f"shardId-{shard_no:012d}"
            if rng.random() >= spec.tie_share:  # else: same instant as the previous change
                when += step_us - rng.randrange(0, 1000)
            old = alive.get(pk)
            versions[pk] = versions.get(pk, 0) + 1
            ttl = False
            if old is None:
                kind, new = "INSERT", _person(pk, versions[pk], hour, spec, rng)
            elif rng.random() < spec.delete_share:
                kind, new, ttl = "REMOVE", None, rng.random() < spec.ttl_share
            else:
                kind, new = "MODIFY", _person(pk, versions[pk], hour, spec, rng)
            counter += 1
            record = kinesis_dynamodb_record(
                event_name=kind,
                keys={"pk": pk},
                new_image=new,
                old_image=old,
                event_time_us=when,
                precision="MICROSECOND" if counter % 3 else "MILLISECOND",
                event_id=f"{spec.seed:04d}-{counter:08d}",
                table=spec.table,
                ttl_delete=ttl,
            )
            copies = 2 if rng.random() < spec.duplicate_share else 1
            for _ in range(copies):
                seqs[shard_no] += 1
                position = Position(shard, str(SEQ_BASE + seqs[shard_no]), when)
                stamp = record["dynamodb"]["ApproximateCreationDateTime"]
                stamp_us = stamp if counter % 3 else stamp * 1000
                pending.setdefault((partition_for_us(stamp_us), shard), []).append(
                    (encode(record), position)
                )
            if new is None:
                alive.pop(pk, None)
            else:
                alive[pk] = new
        for (partition, shard), records in sorted(pending.items()):
            yield partition, shard, records


def write(
    spec: HistorySpec,
    store: ObjectStore,
    catalog: Catalog,
    privacy: PrivacyPolicy | None = None,
) -> History:
    """Write the history's objects, then register them as the catalog does (one batch)."""
    history = History(spec)
    columns: dict[str, Column] = {}
    for partition, shard, records in workload(spec):
        del shard
        for start in range(0, len(records), spec.records_per_object):
            chunk = records[start : start + spec.records_per_object]
            key, body = _object(spec.table, partition, chunk, privacy)
            store.put(key, body)
            for column in columns_of(pq.read_schema(io.BytesIO(body))):
                columns.setdefault(column.name, column)
            history.objects.setdefault(partition, []).append(key)
            history.bytes += len(body)
        history.changes += len(records)
    catalog.merge_changes_table(spec.table, list(columns.values()))
    catalog.ensure_current_view(spec.table)
    catalog.add_partitions(spec.table, sorted(history.objects))
    return history


def _object(
    table: str, partition: Partition, records: list[Record], privacy: PrivacyPolicy | None
) -> tuple[str, bytes]:
    key = change_object_key(
        table,
        partition,
        records[0][1].shard_id,
        records[0][1].sequence_number,
        records[-1][1].sequence_number,
    )
    return key, records_to_parquet(records, table, privacy)


def put_change_object(
    store: ObjectStore,
    catalog: Catalog,
    table: str,
    partition: Partition,
    records: list[Record],
    *,
    privacy: PrivacyPolicy | None = None,
    register: bool = True,
) -> str:
    """One consumer object of ``records`` (one shard, one partition), cataloged unless
    ``register`` is false (a catalog that missed it); its key."""
    key, body = _object(table, partition, records, privacy)
    store.put(key, body)
    if not register:
        return key
    catalog.merge_changes_table(table, columns_of(pq.read_schema(io.BytesIO(body))))
    catalog.ensure_current_view(table)
    catalog.add_partitions(table, [partition])
    return key


def hour_of(spec: HistorySpec, hour: int) -> Partition:
    """The partition of the spec's ``hour``-th hour."""
    return partition_for_us(datetime_to_us(spec.start + timedelta(hours=hour)))


def write_raw(spec: HistorySpec, store: ObjectStore) -> dict[Partition, str]:
    """The same history as Firehose writes it to ``raw/``: the records as JSON lines, one
    object per partition-hour (duplicates included, as Firehose delivers them)."""
    lines: dict[Partition, list[bytes]] = {}
    for partition, _shard, records in workload(spec):
        lines.setdefault(partition, []).extend(raw.rstrip(b"\n") + b"\n" for raw, _ in records)
    keys = {}
    for partition, body in sorted(lines.items()):
        key = raw_partition_prefix(spec.table, partition) + f"changelake-raw-1-{partition.hour}"
        store.put(key, b"".join(body))
        keys[partition] = key
    return keys
