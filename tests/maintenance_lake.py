"""A lake written by the product's own writers, for the maintenance tests (compaction, late data).

The consumer's :class:`~changelake_consumer.service.ShardProcessor` writes the objects into S3
(moto over real HTTP) exactly as on ECS — many small flushes, stream duplicates under new
sequence numbers, two partition-hours — and the catalog's repair registers them in Glue.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
from changelake.adapters.s3_store import S3ObjectStore
from changelake.events import Position
from changelake.metrics import make_metrics
from changelake_catalog.repair import Repairer
from changelake_consumer.service import BatchPolicy, ShardProcessor
from changelake_lake.adapters.glue_catalog import GlueCatalog
from changelake_lake.rewrite import Lake
from changelake_testsupport.person_changes import SHARD, T0, change, person, seq

BUCKET = "maintenance-lake"
TABLE = "persons"
HOUR_US = 3_600_000_000


@dataclass
class LakeFixture:
    """The lake's adapters, for the tests."""

    store: S3ObjectStore
    catalog: GlueCatalog

    @property
    def lake(self) -> Lake:
        """What the rewrite primitive works on."""
        return Lake(self.store, self.catalog, BUCKET)

    def rows(self) -> pa.Table:
        """Every row readers see: the files under each partition's Glue location."""
        tables = []
        s3 = boto3.client("s3")
        for location in self.catalog.locations(TABLE).values():
            prefix = location.removeprefix(f"s3://{BUCKET}/")
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
                for obj in page.get("Contents", []):
                    name = obj["Key"].rsplit("/", 1)[-1]
                    if name.startswith(("_", ".")):
                        continue
                    body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
                    tables.append(pq.read_table(io.BytesIO(body)))
        return pa.concat_tables(tables, promote_options="default")

    def register(self) -> None:
        """Register what is under changes/ (the catalog's repair)."""
        Repairer(self.store, self.catalog, metrics=make_metrics("log")).run(TABLE)


def processor(store: S3ObjectStore, shard: str = SHARD, max_rows: int = 7) -> ShardProcessor:
    """The consumer's processor with small flushes: many objects per partition."""
    return ShardProcessor(
        shard,
        store,
        make_metrics("log"),
        BatchPolicy(max_rows=max_rows, max_age_s=3600.0, write_backoff_s=0.01),
        sleep=lambda _s: None,
    )


def workload(n: int = 60) -> list[tuple[bytes, Position]]:
    """n changes over two partition-hours: inserts, then updates and deletes of the same
    persons, plus 6 stream duplicates (the same event under a later sequence number)."""
    records = []
    for i in range(n):
        item = i % (n // 2)
        kind = "INSERT" if i < n // 2 else ("REMOVE" if item % 5 == 0 else "MODIFY")
        at = T0 + i * 60_000_000  # one a minute: two hours for n = 120, one for 60
        body = person(item, version=i) if kind != "REMOVE" else person(item)
        records.append(change(i, event_name=kind, event_time_us=at, item=body))
    for j, i in enumerate(range(3, n, n // 6)):
        raw, _ = records[i]
        records.append((raw, Position(SHARD, seq(n + j), T0 + (n + j) * 1000)))
    return records
