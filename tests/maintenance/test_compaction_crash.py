"""Compaction stopped at every step, then run again: readers never see a row twice nor miss one.

The crash hook raises at a named step (the state left behind is exactly a ``kill -9``'s: all
of it is in S3 and Glue, nothing is cleaned up on the way out). At the moment of the crash a
reader sees either the old files or the new ones; after the rerun the lake holds each event
once, the same rows as a run that never crashed, and no garbage.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import boto3
import pyarrow as pa
import pytest
from changelake_lake.compaction import compact_table
from changelake_lake.layout import Partition, changes_prefix
from changelake_lake.rewrite import MANIFEST, key_of, make_visible
from changelake_testsupport.person_changes import SHARD, T0, change, person
from maintenance_lake import BUCKET, TABLE, LakeFixture, processor, workload

pytestmark = pytest.mark.aws

LATER = datetime(2030, 1, 1, tzinfo=UTC)
STEPS = [
    "inputs-read",
    "part-written",
    "manifest-written",
    "swapped",
    "trash-recorded",
    "carried-over",
    "trash-deleted",
    "trash-record-removed",
]


class CrashError(Exception):
    """The simulated kill."""


def crash_at(step: str) -> object:
    def hook(name: str) -> None:
        if name == step:
            raise CrashError(step)

    return hook


def _content(rows: pa.Table) -> Counter[tuple[object, ...]]:
    """Rows as comparable tuples (every column but the delivery lineage of duplicates)."""
    names = [
        n for n in rows.column_names if n not in ("sequence_number", "shard_id", "arrival_time")
    ]
    return Counter(tuple(str(v) for v in r.values()) for r in rows.select(names).to_pylist())


def _all_keys() -> list[str]:
    s3 = boto3.client("s3")
    return [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=changes_prefix(TABLE)
        )
        for o in page.get("Contents", [])
    ]


def _late_object(lake: LakeFixture) -> None:
    """A late change of hour 10 from another shard, after the hour was compacted."""
    proc = processor(lake.store, shard="shardId-000000000007")
    late = change(
        900, event_time_us=T0 + 5 * 60_000_000, item=person(900), shard="shardId-000000000007"
    )
    proc.process([late])
    proc.flush_all()


def _write(lake: LakeFixture) -> None:
    proc = processor(lake.store)
    proc.process(workload(40))
    proc.flush_all()
    lake.register()


# Every step of the first rewrite (base prefix → generation), and the steps that differ in a
# later one (generation → generation, with a late copy to carry over and an old generation to
# delete).
CASES = [("first", step) for step in STEPS] + [
    ("late", step) for step in ("manifest-written", "swapped", "carried-over", "trash-deleted")
]


@pytest.mark.parametrize(("scenario", "step"), CASES)
def test_a_crash_at_any_step_then_a_rerun_gives_the_same_lake(
    lake: LakeFixture, step: str, scenario: str
) -> None:
    _write(lake)
    if scenario == "late":  # the crash hits the second rewrite (generation → generation)
        compact_table(lake.lake, TABLE, grace=timedelta(0), now=lambda: LATER)
        _late_object(lake)
        make_visible(lake.lake, TABLE, {Partition("2026-11-27", "10"): _base_keys()})
    original = lake.rows()
    expected_ids = set(original.column("event_id").to_pylist())
    compacted_rows = len(expected_ids)

    with pytest.raises(CrashError):
        compact_table(lake.lake, TABLE, grace=timedelta(0), now=lambda: LATER, crash=crash_at(step))
    seen = lake.rows()  # a reader at the moment of the crash: the old files or the new ones
    assert set(seen.column("event_id").to_pylist()) == expected_ids
    assert seen.num_rows in (original.num_rows, compacted_rows)

    compact_table(lake.lake, TABLE, grace=timedelta(0), now=lambda: LATER)
    after = lake.rows()
    assert after.num_rows == compacted_rows == len(set(after.column("event_id").to_pylist()))
    assert _content(after) == _content(_dedupe(original))
    assert _kept_copies(after) == _kept_copies(original)
    # nothing but the current generation and its manifest is left
    location = key_of(BUCKET, lake.catalog.locations(TABLE)[Partition("2026-11-27", "10")])
    assert sorted(_all_keys()) == sorted([location + MANIFEST, location + "part-00000.parquet"])


def _base_keys() -> list[str]:
    from changelake_lake.layout import changes_partition_prefix

    prefix = changes_partition_prefix(TABLE, Partition("2026-11-27", "10"))
    return [k for k in _all_keys() if k.startswith(prefix)]


def _dedupe(rows: pa.Table) -> pa.Table:
    seen: set[object] = set()
    keep = []
    for event_id in rows.column("event_id").to_pylist():
        keep.append(event_id not in seen)
        seen.add(event_id)
    return rows.filter(pa.array(keep))


def _kept_copies(rows: pa.Table) -> dict[str, str]:
    """event_id → the sequence number of its copy with the greatest one (the view's pick)."""
    best: dict[str, str] = {}
    for r in rows.select(["event_id", "sequence_number"]).to_pylist():
        if r["event_id"] not in best or int(r["sequence_number"]) > int(best[r["event_id"]]):
            best[r["event_id"]] = r["sequence_number"]
    return best


def test_readers_see_each_late_object_once_it_is_copied_in(lake: LakeFixture) -> None:
    _write(lake)
    compact_table(lake.lake, TABLE, grace=timedelta(0), now=lambda: LATER)
    before = lake.rows().num_rows
    _late_object(lake)
    assert lake.rows().num_rows == before  # the base prefix is no longer read...
    copies = make_visible(lake.lake, TABLE, {Partition("2026-11-27", "10"): _base_keys()})
    assert len(copies) == 1
    assert lake.rows().num_rows == before + 1  # ...until the catalog copies it in
    assert make_visible(lake.lake, TABLE, {Partition("2026-11-27", "10"): _base_keys()}) == [
        copies[0]
    ]  # idempotent: the same key again
    report = compact_table(lake.lake, TABLE, grace=timedelta(0), now=lambda: LATER)
    assert report.summary()["partitions_compacted"] == 1
    assert lake.rows().num_rows == before + 1
    assert SHARD not in "".join(_base_keys())
