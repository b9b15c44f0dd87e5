"""Compaction of a consumer-written lake: one sorted, duplicate-free file per partition-hour,
swapped in by one Glue UpdatePartition; the replaced objects deleted after the grace period."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import boto3
import pyarrow.parquet as pq
import pytest
from changelake_lake.compaction import compact_table
from changelake_lake.layout import Partition, changes_partition_prefix
from changelake_lake.rewrite import MANIFEST, Manifest, generation_of, key_of, trash_prefix
from maintenance_lake import BUCKET, TABLE, LakeFixture

pytestmark = pytest.mark.aws

LATER = datetime(2030, 1, 1, tzinfo=UTC)


def _keys(prefix: str) -> list[str]:
    s3 = boto3.client("s3")
    out: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        out += [o["Key"] for o in page.get("Contents", [])]
    return out


def test_compaction_leaves_one_sorted_file_per_hour_no_duplicates(written: LakeFixture) -> None:
    before = written.rows()
    distinct = len(set(before.column("event_id").to_pylist()))
    assert before.num_rows == distinct + 6  # the stream's duplicates are stored
    objects_before = {
        p: len(_keys(changes_partition_prefix(TABLE, p))) for p in written.catalog.locations(TABLE)
    }
    assert len(objects_before) == 2
    assert all(n > 5 for n in objects_before.values())

    report = compact_table(written.lake, TABLE, grace=timedelta(0), now=lambda: LATER)

    after = written.rows()
    assert after.num_rows == distinct == report.summary()["rows_written"]
    assert sorted(after.column("event_id").to_pylist()) == sorted(
        set(before.column("event_id").to_pylist())
    )
    for partition, location in written.catalog.locations(TABLE).items():
        prefix = key_of(BUCKET, location)
        assert generation_of(TABLE, partition, prefix) is not None
        files = [k for k in _keys(prefix) if not k.endswith(MANIFEST)]
        assert len(files) == 1
        table = pq.read_table(io.BytesIO(written.store.get(files[0])))
        keys = list(
            zip(
                table.column("item_key").to_pylist(),
                table.column("event_time").to_pylist(),
                strict=True,
            )
        )
        assert keys == sorted(keys)
        stats = pq.ParquetFile(io.BytesIO(written.store.get(files[0]))).metadata.row_group(0)
        assert stats.column(table.schema.get_field_index("item_key")).statistics.has_min_max
        # the consumer's objects are gone (grace 0), the manifest says what was folded
        assert _keys(changes_partition_prefix(TABLE, partition)) == []
        manifest = Manifest.from_json(written.store.get(prefix + MANIFEST))
        assert len(manifest.folded) == objects_before[partition]
    assert _keys(trash_prefix(TABLE)) == []

    again = compact_table(written.lake, TABLE, grace=timedelta(0), now=lambda: LATER)
    assert again.summary()["partitions_compacted"] == 0


def test_unsealed_hours_and_dry_run_change_nothing(written: LakeFixture) -> None:
    locations = written.catalog.locations(TABLE)
    report = compact_table(written.lake, TABLE, dry_run=True, now=lambda: LATER)
    assert [p["hour"] for p in report.summary()["plan"]] == ["10", "11"]  # type: ignore[index]
    assert written.catalog.locations(TABLE) == locations
    first_hour_end = Partition("2026-11-27", "10").end()
    report = compact_table(
        written.lake,
        TABLE,
        older_than=timedelta(hours=2),
        now=lambda: first_hour_end + timedelta(hours=2, minutes=30),
    )
    assert [r.partition.hour for r in report.rewritten] == ["10"]


def test_a_partition_bigger_than_the_target_is_cut_into_sorted_parts_of_at_least_it(
    written: LakeFixture,
) -> None:
    hour = Partition("2026-11-27", "10")
    before = written.rows()
    target = 2_500  # bytes: the hour holds several times this, compacted
    compact_table(
        written.lake, TABLE, grace=timedelta(0), now=lambda: LATER, target_file_bytes=target
    )
    prefix = key_of(BUCKET, written.catalog.locations(TABLE)[hour])
    parts = sorted(k for k in _keys(prefix) if not k.endswith(MANIFEST))
    assert len(parts) > 1
    sizes = [len(written.store.get(k)) for k in parts]
    assert min(sizes) >= target * 0.8, sizes  # the estimate is a sample's
    keys = []
    for key in parts:  # sorted across the parts, not just within each
        table = pq.read_table(io.BytesIO(written.store.get(key)))
        keys += list(
            zip(
                table.column("item_key").to_pylist(),
                table.column("event_time").to_pylist(),
                strict=True,
            )
        )
    assert keys == sorted(keys)
    assert written.rows().num_rows == len(set(before.column("event_id").to_pylist()))
