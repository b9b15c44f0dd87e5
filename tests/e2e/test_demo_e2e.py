"""The embedded pipeline under the emulator's faults, checked through the local query engine.

GIVEN the local stack with the faults Kinesis Data Streams for DynamoDB really has (duplicates,
reordering, ms/µs timestamps mixed, TTL deletes), WHEN persons are written, updated and deleted,
THEN ``<table>_current`` equals a Scan of the DynamoDB table exactly and deleted items are absent
(docs/aws-behaviour.md: at-least-once, out of order; dedupe by event_id, order by event time).
"""

from __future__ import annotations

import base64
import json
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from changelake.settings import ChangelakeSettings
from changelake_cli.demo_cmd import run_demo
from changelake_cli.local_stack import free_port
from changelake_cli.main import app
from changelake_lake.layout import changes_table_name
from changelake_lake.query.current_check import compare
from changelake_lake.query.local_engine import LocalEngine
from changelake_lake.query.model import QueryError
from typer.testing import CliRunner

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def _stored_event_times(bucket: str, table: str) -> list[Any]:
    """``event_time`` exactly as the consumer stored it (µs) in the Parquet objects; a query
    reads it rounded to the millisecond, as Athena does."""
    import io

    import boto3
    import pyarrow.parquet as pq
    from changelake_lake.layout import changes_prefix

    s3 = boto3.client("s3")
    times: list[Any] = []
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=changes_prefix(table)
    )
    for page in pages:
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            times += pq.read_table(io.BytesIO(body), columns=["event_time"]).column(0).to_pylist()
    return times


def _distinct_events(engine: LocalEngine, table: str) -> int:
    try:
        result = engine.run(f"SELECT count(DISTINCT event_id) FROM {changes_table_name(table)}")
    except QueryError:
        return 0  # the catalog has not created the table yet
    return int(result.rows[0][0])


# Same-item changes are spaced by more than a millisecond (phases 1.2 s apart): with ms
# precision two changes of one item inside one millisecond tie, and once the stream reorders
# them no reader can order them again (AWS added MICROSECOND precision for that case).
PHASE_GAP_S = 1.2


def _person(i: int, version: int) -> dict[str, Any]:
    return {
        "pk": {"S": f"p{i:04d}"},
        "name": {"S": f"Person {i}"},
        "version": {"N": str(version)},
        # 38 significant digits: exact only if no float is ever involved.
        "balance": {"N": f"{i}1234567890123456789012345678901234.5"[:39]},
        "tags": {"SS": [f"t{i % 3}", "all"]},
        "scores": {"NS": ["-1", "2.5", str(i + 10)]},
        "blob": {"B": base64.b64encode(bytes([i % 256, 0, 255])).decode()},
        "address": {"M": {"city": {"S": f"City {i % 7}"}, "zip": {"N": str(10000 + i)}}},
        "active": {"BOOL": i % 2 == 0},
        "nothing": {"NULL": True},
        "history": {"L": [{"S": "a"}, {"N": "1"}]},
    }


def _workload(ddb: Any, table: str) -> tuple[int, set[str], set[str]]:
    """Inserts, updates, deletes, re-inserts and more updates, in phases; returns
    (changes written, pks that must be live, pks that must be absent)."""
    changes = 0
    live = set(range(150))
    for start in range(0, 150, 25):
        ddb.batch_write_item(
            RequestItems={
                table: [{"PutRequest": {"Item": _person(i, 1)}} for i in range(start, start + 25)]
            }
        )
    changes += 150
    time.sleep(PHASE_GAP_S)
    for i in range(0, 100):
        ddb.update_item(
            TableName=table,
            Key={"pk": {"S": f"p{i:04d}"}},
            UpdateExpression="SET version = :v, #n = :n REMOVE nothing",
            ExpressionAttributeNames={"#n": "name"},
            ExpressionAttributeValues={":v": {"N": "2"}, ":n": {"S": f"Renamed {i}"}},
        )
    changes += 100
    time.sleep(PHASE_GAP_S)
    for i in range(50, 100):  # updated ones and never-updated ones
        ddb.delete_item(TableName=table, Key={"pk": {"S": f"p{i + 50 if i >= 75 else i:04d}"}})
        live.discard(i + 50 if i >= 75 else i)
    changes += 50
    time.sleep(PHASE_GAP_S)
    for i in range(50, 60):  # deleted, then back
        ddb.put_item(TableName=table, Item=_person(i, 3))
        live.add(i)
    changes += 10
    time.sleep(PHASE_GAP_S)
    for i in range(0, 20):
        ddb.update_item(
            TableName=table,
            Key={"pk": {"S": f"p{i:04d}"}},
            UpdateExpression="ADD tags :t SET version = :v",
            ExpressionAttributeValues={":t": {"SS": ["late"]}, ":v": {"N": "4"}},
        )
    changes += 20
    pks = {f"p{i:04d}" for i in range(150)}
    must_live = {f"p{i:04d}" for i in live}
    return changes, must_live, pks - must_live


def test_current_view_equals_dynamodb_scan_under_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two tables through the one stream (ADR 0032), each view equal to its own table."""
    import threading

    import boto3
    from changelake_cli.local_stack import LocalStack
    from changelake_emulator.faults import FaultConfig

    monkeypatch.setenv("CHANGELAKE_LOG_LEVEL", "WARNING")
    # The catalog re-reads the view's snapshot state at least every second (late data, ADR 0035).
    monkeypatch.setenv("CHANGELAKE_CATALOG_SNAPSHOT_STATE_TTL_SECONDS", "1")
    settings = ChangelakeSettings(tables="persons,orders")
    faults = FaultConfig(
        seed=11, duplicate_rate=0.1, reorder_window=16, ttl_rate=0.5, precision_mix=True
    )
    results: dict[str, tuple[int, set[str], set[str]]] = {}
    with LocalStack(free_port(), settings=settings, faults=faults) as stack:
        ddb = boto3.client("dynamodb", region_name=settings.region)
        # Both tables are written at the same time (same keys in both: only the table differs).
        writers = [
            threading.Thread(
                target=lambda t=table: results.__setitem__(t, _workload(ddb, t)), name=table
            )
            for table in settings.tables
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        engine = LocalEngine(settings.database)
        deadline = time.monotonic() + 120
        for table in settings.tables:
            while _distinct_events(engine, table) < results[table][0]:
                assert time.monotonic() < deadline, f"the lake never caught up with {table}"
                time.sleep(1)
        checks = {t: compare(engine, t) for t in settings.tables}
        views = {
            t: {r[0] for r in engine.run(f"SELECT pk FROM {t}_current").rows}
            for t in settings.tables
        }
        stats = stack.emulator.stats()
        facts = {
            t: engine.run(
                "SELECT count(*) - count(DISTINCT event_id), "
                "count(DISTINCT CASE WHEN is_ttl_delete THEN event_id END), "
                "count(DISTINCT event_id) "
                f"FROM {t}_changes"
            ).rows[0]
            for t in settings.tables
        }
        times = [
            t for table in settings.tables for t in _stored_event_times(settings.lake_bucket, table)
        ]
        # With a snapshot present (ADR 0035): fold everything, hour in progress included, then
        # change the first table again. Those changes reach partitions the snapshot already
        # folded (late data by construction): the running catalog must mark them for the view.
        first = settings.tables[0]
        state, late_written = _snapshot_then_more_changes(
            ddb, settings, first, engine, results[first][0]
        )
        after = compare(engine, first)
    assert state is not None
    assert state.late  # the new changes' partitions, marked late by the catalog
    assert after.missing == after.extra == after.different == []
    assert after.table_items == len(results[first][1]) + 5 - 5
    assert late_written == 20
    # The faults really happened, so the equality below proves something.
    assert stats.duplicates_injected > 0
    assert stats.out_of_order > 0
    assert sum(f[0] for f in facts.values()) == stats.duplicates_injected
    sub_ms = [t.microsecond % 1000 for t in times]
    assert any(sub_ms)  # MICROSECOND records…
    assert not all(sub_ms)  # …mixed with MILLISECOND ones
    assert stats.stream_records_read == sum(r[0] for r in results.values())
    for table, (written, must_live, must_be_absent) in results.items():
        assert facts[table][1] > 0  # TTL-marked deletes
        # Each table's changes are in its own change table, none in the other's.
        assert facts[table][2] == written
        # Exact equality, item by item (image text: numbers, sets, maps, binary, nulls).
        check = checks[table]
        assert check.missing == []
        assert check.extra == []
        assert check.different == []
        assert check.table_items == len(must_live) == 110
        assert views[table] == must_live
        assert not views[table] & must_be_absent


def _snapshot_then_more_changes(
    ddb: Any, settings: ChangelakeSettings, table: str, engine: LocalEngine, written: int
) -> tuple[Any, int]:
    """Take a snapshot covering every partition so far, then 20 more changes: 10 updates, 5
    deletes and 5 new items; wait until the lake has them; the view's snapshot state."""
    from changelake_catalog.snapshot import take_snapshot
    from changelake_cli.snapshot_cmd import lake_from_settings
    from changelake_lake.layout import partition_for
    from changelake_testsupport.waiting import wait_until

    lake = lake_from_settings()
    cut = partition_for(datetime.now(UTC) + timedelta(hours=1))
    take_snapshot(lake, table, cut=cut, late_check_delay_s=2.0)
    for i in range(0, 10):
        ddb.update_item(
            TableName=table,
            Key={"pk": {"S": f"p{i:04d}"}},
            UpdateExpression="SET version = :v",
            ExpressionAttributeValues={":v": {"N": "9"}},
        )
    for i in range(10, 15):
        ddb.delete_item(TableName=table, Key={"pk": {"S": f"p{i:04d}"}})
    for i in range(150, 155):
        ddb.put_item(TableName=table, Item=_person(i, 1))
    wait_until(
        "the changes after the snapshot", lambda: _distinct_events(engine, table) >= written + 20
    )
    # Rows are visible as soon as their objects land; the catalog marks them late when it
    # handles their events: wait for that (the view reads them only then).
    wait_until(
        "the catalog marking the late partition",
        lambda: bool((s := lake.catalog.snapshot_state(table)) and s.late),
    )
    return lake.catalog.snapshot_state(table), 20


def test_demo_summary_counts_match_what_was_produced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANGELAKE_LOG_LEVEL", "WARNING")
    shown: list[str] = []
    summary = run_demo(count=300, seed=3, show=lambda name, _t, _r: shown.append(name))
    assert summary.caught_up
    assert summary.current_equals_dynamodb
    assert summary.changes_produced == summary.distinct_events == 300
    # Two tables by default (one stream), the changes shared out, each view = its own Scan.
    assert [
        (t.table, t.changes_produced, t.distinct_events, t.current_equals_dynamodb)
        for t in summary.tables
    ] == [("persons", 150, 150, True), ("customers", 150, 150, True)]
    assert summary.current_items == sum(t.current_items for t in summary.tables)
    assert all(t.current_items > 0 for t in summary.tables)
    assert summary.rows_stored == 300 + summary.duplicates_injected
    assert summary.duplicates_removed == summary.duplicates_injected
    assert summary.bad_records_quarantined == summary.bad_records_sent == 3
    assert summary.partitions >= 1
    assert summary.files >= 1
    assert summary.bytes_stored > 0
    assert summary.freshness_p50_s is not None
    assert summary.freshness_p95_s is not None
    assert summary.freshness_p50_s <= summary.freshness_p95_s
    assert shown == [
        "changes_per_hour",
        "current_state",
        "item_history",
        "attribute_changes",
        "deletes_ttl_vs_user",
        "duplicates_seen",
    ]
    assert "AWS_ENDPOINT_URL" not in os.environ


def test_demo_cmd_json_prints_only_the_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANGELAKE_LOG_LEVEL", "WARNING")
    result = CliRunner().invoke(app, ["demo", "--count", "120", "--json", "--no-faults"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["changes_produced"] == summary["distinct_events"] == 120
    assert summary["duplicates_removed"] == 0
    assert summary["current_equals_dynamodb"] is True
