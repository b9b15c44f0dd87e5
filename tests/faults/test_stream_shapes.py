"""What AWS really delivers, on one running pipeline: every case ends in a clean reconcile.

The emulator's streaming destination injects duplicates, reordering and a ms/µs timestamp mix
for the whole module (docs/aws-behaviour.md); each test adds its own shape of data on top —
records crossing midnight UTC, items near DynamoDB's 400 KB limit, an attribute drifting
between N and S, new attributes mid-stream — and reconciles everything written so far
(tests/changelake_faults.py: 0 lost, 0 duplicated, every bad record quarantined, views right).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from changelake_emulator.faults import FaultConfig
from changelake_faults import SETTINGS, TABLE, Pipeline, objects, stream_records, wait_reconciled
from changelake_lake import layout
from changelake_producer.bootstrap import produce
from changelake_testsupport.records import encode, kinesis_dynamodb_record

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.timeout(180)]

FAULTS = FaultConfig(seed=17, duplicate_rate=0.15, reorder_window=6, precision_mix=True)


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    with pytest.MonkeyPatch.context() as mp, Pipeline(mp, faults=FAULTS) as running:
        yield running


def _table() -> Any:
    return boto3.resource("dynamodb").Table(TABLE)


def test_duplicates_and_reordering_are_stored_once_per_record(pipeline: Pipeline) -> None:
    produced = produce(count=200, seed=5, settings=SETTINGS).total
    verdict, took = wait_reconciled(60)
    stats = pipeline.emulator.stats()
    assert stats.duplicates_injected > 10, stats
    assert stats.out_of_order > 10, stats
    assert verdict.distinct_events == produced
    # each duplicate is its own stream record: stored once each, the view shows the item once
    assert verdict.valid_records == produced + stats.duplicates_injected
    print(f"duplicates/reordering: {verdict.summary()}; clean after {took:.1f} s")


def test_ms_and_us_timestamps_keep_their_exact_event_time(pipeline: Pipeline) -> None:
    produce(count=100, seed=6, settings=SETTINGS)
    verdict, took = wait_reconciled(60)
    records = {(r.shard_id, r.sequence_number): r for r in stream_records() if r.event}
    precisions = {b"MICROSECOND" in r.data for r in records.values()}
    assert precisions == {True, False}  # both encodings on the stream
    rows = _rows_with_times()
    assert len(rows) == len(records)
    for row in rows:
        event = records[(row["shard_id"], row["sequence_number"])].event
        assert event is not None
        assert row["event_time"] == datetime.fromtimestamp(0, UTC) + timedelta(
            microseconds=event.event_time_us
        )
    print(f"ms/us mix: {verdict.summary()}; clean after {took:.1f} s")


def test_records_crossing_midnight_utc_land_in_both_days(pipeline: Pipeline) -> None:
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    at = int(midnight.timestamp()) * 1_000_000
    key = {"pk": "midnight"}
    cases = [  # (event, time µs, precision): 1 ms and 1 µs either side of midnight
        ("INSERT", at - 1_000, "MILLISECOND", None, {"pk": "midnight", "v": Decimal(1)}),
        (
            "MODIFY",
            at - 1,
            "MICROSECOND",
            {"pk": "midnight", "v": Decimal(1)},
            {"pk": "midnight", "v": Decimal(2)},
        ),
        (
            "MODIFY",
            at,
            "MICROSECOND",
            {"pk": "midnight", "v": Decimal(2)},
            {"pk": "midnight", "v": Decimal(3)},
        ),
        (
            "MODIFY",
            at + 1_000,
            "MILLISECOND",
            {"pk": "midnight", "v": Decimal(3)},
            {"pk": "midnight", "v": Decimal(4)},
        ),
    ]
    records = [
        encode(
            kinesis_dynamodb_record(
                event_name=name,
                keys=key,
                old_image=old,
                new_image=new,
                event_time_us=t,
                precision=precision,
                event_id=f"00000000-0000-0000-0000-00000000000{i}",
                table=TABLE,
            )
        )
        for i, (name, t, precision, old, new) in enumerate(cases)
    ]
    pipeline.put_raw(list(reversed(records)), key_prefix="midnight")  # newest first
    # then the item is written for real (now, after midnight): the view and the table agree
    _table().put_item(Item={"pk": "midnight", "v": Decimal(5)})
    verdict, took = wait_reconciled(60)
    before = layout.partition_for_us(at - 1)
    after = layout.partition_for_us(at)
    assert before.values != after.values
    folders = {key.rsplit("/", 1)[0] + "/" for key, _ in objects(layout.changes_prefix(TABLE))}
    for partition in (before, after):
        assert layout.changes_partition_prefix(TABLE, partition) in folders
    print(f"midnight: {verdict.summary()}; clean after {took:.1f} s")


def test_items_near_400_kb_land_whole(pipeline: Pipeline) -> None:
    big = "x" * 395_000  # with its name and key: just under DynamoDB's 400 KB item limit
    table = _table()
    table.put_item(Item={"pk": "big-1", "blob": big})
    table.put_item(Item={"pk": "big-1", "blob": big[:-1] + "y"})  # MODIFY: both images, ~790 KB
    table.put_item(Item={"pk": "big-2", "blob": big, "n": Decimal(1)})
    verdict, took = wait_reconciled(60)
    sizes = [len(r.data) for r in stream_records() if r.event and "big-" in r.event.item_key]
    assert max(sizes) > 790_000, sizes
    print(f"400 KB: {verdict.summary()}; clean after {took:.1f} s")


def test_n_s_type_drift_and_new_attributes_mid_stream(pipeline: Pipeline) -> None:
    table = _table()
    table.put_item(Item={"pk": "drift", "age": Decimal(41)})
    table.put_item(Item={"pk": "drift", "age": "forty-two"})  # N → S
    table.put_item(Item={"pk": "drift", "age": Decimal("43.5")})  # S → N
    wait_reconciled(60)  # the table exists in Glue now: what follows adds columns to it
    table.put_item(
        Item={"pk": "drift", "age": Decimal(44), "nickname": "d", "address": {"zip": "75001"}}
    )
    table.put_item(Item={"pk": "newcomer", "fresh_attribute": True, "tags": {"a", "b"}})
    verdict, took = wait_reconciled(60)
    from changelake_lake.query.local_engine import LocalEngine

    engine = LocalEngine(SETTINGS.database, region=SETTINGS.region)
    changes = layout.changes_table_name(TABLE)
    result = engine.run(
        f"SELECT age__n, age, nickname, address__zip, fresh_attribute__bool FROM {changes} "
        "WHERE item_key LIKE '%drift%' OR item_key LIKE '%newcomer%'"
    )
    values = {tuple(str(v) for v in row) for row in result.rows}
    assert any(row[1] == "forty-two" for row in values), values  # S in the string column
    assert any(row[0].startswith("43.5") for row in values), values  # N in the typed column
    assert any(row[2] == "d" and row[3] == "75001" for row in values), values
    assert any(row[4] == "True" for row in values), values
    print(f"drift/new attributes: {verdict.summary()}; clean after {took:.1f} s")


def _rows_with_times() -> list[dict[str, Any]]:
    import io

    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for _key, data in objects(layout.changes_prefix(TABLE)):
        rows.extend(
            pq.read_table(
                io.BytesIO(data), columns=["shard_id", "sequence_number", "event_time"]
            ).to_pylist()
        )
    return rows
