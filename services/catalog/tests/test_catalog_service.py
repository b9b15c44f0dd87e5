"""The catalog service and repair end to end on moto: S3 → SQS → service → Glue."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pyarrow as pa
import pytest
from changelake_catalog.bootstrap import build_service, local_service
from changelake_catalog.repair import repair
from changelake_catalog.service import CatalogService
from changelake_catalog.settings import CatalogSettings
from changelake_lake.adapters.glue_catalog import GlueCatalog
from changelake_lake.athena_view import decode_presto_view
from changelake_lake.layout import change_object_key, partition_for
from changelake_testsupport.queues import queue_drained
from typer.testing import CliRunner

pytestmark = pytest.mark.aws

T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)


def _key(at: datetime, first: int, table: str = "persons") -> str:
    return change_object_key(
        table, partition_for(at), "shardId-000000000000", str(first), str(first)
    )


def _drain(service: CatalogService, lake: Any, rounds: int = 10) -> None:
    """Poll until the queue has been empty once (bounded)."""
    for _ in range(rounds):
        if service.poll_once().deleted == 0 and _queue_empty(lake):
            return
    raise AssertionError("queue did not drain")


def _queue_empty(lake: Any) -> bool:
    return queue_drained(lake.sqs, lake.queue_url)


def _snapshot(lake: Any) -> dict[str, Any]:
    """Everything the catalog writes, for before/after comparisons."""
    tables = lake.glue.get_tables(DatabaseName=lake.database)["TableList"]
    snap: dict[str, Any] = {}
    for table in tables:
        snap[table["Name"]] = (
            table.get("VersionId"),
            json.dumps(table.get("StorageDescriptor", {}).get("Columns")),
            table.get("ViewOriginalText"),
        )
        if table.get("TableType") != "VIRTUAL_VIEW" and not table["Name"].endswith("_raw"):
            snap[table["Name"] + "/partitions"] = sorted(lake.partitions(table["Name"]))
    return snap


def test_service_catalogs_table_partitions_and_view_when_objects_land(
    lake: Any, make_row: Callable[..., Any], make_parquet: Callable[..., bytes]
) -> None:
    # GIVEN three objects in two hourly partitions
    lake.drain_test_event()
    at2 = T0 + timedelta(hours=1)
    lake.put(_key(T0, 1), make_parquet([make_row("a", at=T0, name="Ada")]))
    lake.put(_key(T0, 2), make_parquet([make_row("b", at=T0, name="Bob")]))
    lake.put(_key(at2, 3), make_parquet([make_row("a", "MODIFY", at=at2, name="Ada L")]))
    service = build_service(CatalogSettings())

    # WHEN the service drains the queue
    _drain(service, lake)

    # THEN the changes table, its partitions (exact columns), the raw table and the view exist
    table = lake.table("persons_changes")
    columns = table["StorageDescriptor"]["Columns"]
    assert [c["Name"] for c in columns][:4] == ["event_id", "event_name", "event_time", "item_key"]
    assert {c["Name"]: c["Type"] for c in columns}["age"] == "decimal(38,0)"
    assert {c["Name"]: c["Type"] for c in columns}["tags"] == "array<string>"
    assert [k["Name"] for k in table["PartitionKeys"]] == ["dt", "hour"]
    assert table["StorageDescriptor"]["Location"] == "s3://changelake-lake/changes/persons/"
    parts = lake.partitions("persons_changes")
    assert sorted(parts) == [("2024-05-01", "10"), ("2024-05-01", "11")]
    assert all(p["StorageDescriptor"]["Columns"] == columns for p in parts.values())
    assert lake.table("persons_raw")["Parameters"]["projection.enabled"] == "true"
    view = decode_presto_view(lake.table("persons_current")["ViewOriginalText"])
    assert [n for n, _ in view.columns] == [c["Name"] for c in columns]
    assert lake.dlq_bodies() == []


def test_service_changes_nothing_when_same_event_is_delivered_twice(
    lake: Any, make_row: Callable[..., Any], make_parquet: Callable[..., bytes]
) -> None:
    lake.drain_test_event()
    lake.put(_key(T0, 1), make_parquet([make_row("a", at=T0)]))
    body = lake.sqs.receive_message(QueueUrl=lake.queue_url, VisibilityTimeout=0)["Messages"][0][
        "Body"
    ]
    _drain(build_service(CatalogSettings()), lake)
    before = _snapshot(lake)

    # WHEN the very same notification arrives again, to a fresh worker (no cache) and to the
    # same worker
    lake.sqs.send_message(QueueUrl=lake.queue_url, MessageBody=body)
    _drain(build_service(CatalogSettings()), lake)
    lake.sqs.send_message(QueueUrl=lake.queue_url, MessageBody=body)
    _drain(build_service(CatalogSettings()), lake)

    assert _snapshot(lake) == before
    assert before["persons_changes/partitions"] == [("2024-05-01", "10")]


def test_service_adds_column_and_rewrites_view_when_new_attribute_appears(
    lake: Any, make_row: Callable[..., Any], make_parquet: Callable[..., bytes]
) -> None:
    lake.drain_test_event()
    service = build_service(CatalogSettings())
    lake.put(_key(T0, 1), make_parquet([make_row("a", at=T0)]))
    _drain(service, lake)
    extra = [pa.field("email", pa.string())]

    lake.put(_key(T0, 2), make_parquet([make_row("b", at=T0, email="b@x.org")], extra))
    _drain(service, lake)

    names = [c["Name"] for c in lake.table("persons_changes")["StorageDescriptor"]["Columns"]]
    assert names[-1] == "email"
    assert names.count("email") == 1
    view = decode_presto_view(lake.table("persons_current")["ViewOriginalText"])
    assert ("email", "varchar") in view.columns
    assert '"email"' in view.sql


def test_service_dead_letters_poison_messages_and_keeps_running(
    lake: Any, make_row: Callable[..., Any], make_parquet: Callable[..., bytes]
) -> None:
    # GIVEN a garbage message and an object that is not Parquet, under changes/
    lake.drain_test_event()
    lake.sqs.send_message(QueueUrl=lake.queue_url, MessageBody="this is not an S3 event")
    bad = _key(T0, 1)
    lake.put(bad, b"definitely not parquet")
    runner = local_service()
    runner.start()
    try:
        # WHEN the service runs: the garbage message fails until SQS redrives it (5 receives);
        # the non-Parquet object is moved out of the table at once (ADR 0019)
        deadline = time.monotonic() + 60
        while len(lake.dlq_bodies()) < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        dead = lake.dlq_bodies()
        # THEN it still catalogs good objects
        lake.put(_key(T0, 2), make_parquet([make_row("a", at=T0)]))
        while time.monotonic() < deadline:
            tables = lake.glue.get_tables(DatabaseName=lake.database)["TableList"]
            if tables and lake.partitions("persons_changes"):
                break
            time.sleep(0.1)
    finally:
        runner.stop()
    assert dead == ["this is not an S3 event"]
    moved = lake.s3.get_object(Bucket=lake.bucket, Key=f"quarantine/{bad}")["Body"].read()
    assert moved == b"definitely not parquet"
    assert bad not in {
        o["Key"] for o in lake.s3.list_objects_v2(Bucket=lake.bucket).get("Contents", [])
    }
    assert sorted(lake.partitions("persons_changes")) == [("2024-05-01", "10")]


def test_local_service_catalogs_new_object_within_seconds_when_running(
    lake: Any, make_row: Callable[..., Any], make_parquet: Callable[..., bytes]
) -> None:
    lake.drain_test_event()
    runner = local_service()
    runner.start()
    try:
        time.sleep(0.3)  # let the first long poll begin, as in a steady state
        started = time.monotonic()
        lake.put(_key(T0, 1), make_parquet([make_row("a", at=T0, name="Ada")]))
        seen = None
        while time.monotonic() - started < 30:
            names = {
                t["Name"] for t in lake.glue.get_tables(DatabaseName=lake.database)["TableList"]
            }
            if {"persons_changes", "persons_raw", "persons_current"} <= names and lake.partitions(
                "persons_changes"
            ):
                seen = time.monotonic() - started
                break
            time.sleep(0.02)
    finally:
        runner.stop()
    # Reported, not asserted (timing goals live in benchmarks): object PUT → visible in Glue.
    print(
        f"\ncatalog latency: object PUT -> table+partition+view in Glue: {seen:.3f} s",
        file=sys.stderr,
    )
    assert seen is not None


def test_repair_registers_everything_once_when_run_twice(
    lake: Any, make_row: Callable[..., Any], make_parquet: Callable[..., bytes]
) -> None:
    # GIVEN 250 hourly partitions of one table and 2 of another, never seen by the service
    data = make_parquet([make_row("a", at=T0)])
    for i in range(250):
        lake.put(_key(T0 + timedelta(hours=i), i), data)
    lake.put(_key(T0, 1, "orders"), data)
    lake.put(
        _key(T0 + timedelta(days=3), 2, "orders"),
        make_parquet([make_row("o", at=T0)], [pa.field("total", pa.decimal128(12, 2))]),
    )
    lake.put("changes/orders/dt=2024-05-01/hour=10/broken.parquet", b"nope")
    lake.put("changes/orders/dt=2024-05-01/hour=10/notes.txt", b"stray")
    settings = CatalogSettings()
    glue = boto3.client("glue")
    calls: list[str] = []
    glue.meta.events.register(
        "provide-client-params.glue.BatchCreatePartition",
        lambda **kw: calls.append(kw["params"]["TableName"]),
    )
    catalog = GlueCatalog(settings.lake_bucket, settings.database, glue)

    first = repair(settings, catalog=catalog)
    snapshot = _snapshot(lake)
    second = repair(settings, catalog=catalog)

    assert first.tables == ("orders", "persons")
    assert (first.objects, first.invalid_objects) == (253, 0)
    # objects that would break every query of orders are moved out and reported (finding 6)
    assert first.quarantined == (
        "changes/orders/dt=2024-05-01/hour=10/notes.txt",
        "changes/orders/dt=2024-05-01/hour=10/broken.parquet",
    )
    moved = lake.s3.get_object(
        Bucket=lake.bucket, Key="quarantine/changes/orders/dt=2024-05-01/hour=10/broken.parquet"
    )
    assert moved["Body"].read() == b"nope"
    assert (first.partitions_found, first.partitions_added) == (252, 252)
    assert first.tables_created == 2
    assert calls.count("persons_changes") == 3  # 250 partitions → 100 + 100 + 50
    assert len(lake.partitions("persons_changes")) == 250
    assert "total" in {
        c["Name"] for c in lake.table("orders_changes")["StorageDescriptor"]["Columns"]
    }
    assert (second.partitions_found, second.partitions_added) == (252, 0)
    assert (second.columns_added, second.tables_created) == (0, 0)
    assert second.quarantined == ()
    assert _snapshot(lake) == snapshot
    assert len(calls) == 4  # the second run called nothing


def test_catalog_repair_command_prints_summary_for_one_table(
    lake: Any, make_row: Callable[..., Any], make_parquet: Callable[..., bytes]
) -> None:
    from changelake_cli.main import app

    lake.put(_key(T0, 1), make_parquet([make_row("a", at=T0)]))
    lake.put(_key(T0, 1, "orders"), make_parquet([make_row("a", at=T0)]))

    result = CliRunner().invoke(app, ["catalog", "repair", "--table", "persons", "--json"])

    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["tables"] == ["persons"]
    assert (summary["partitions_found"], summary["partitions_added"]) == (1, 1)
    names = {t["Name"] for t in lake.glue.get_tables(DatabaseName=lake.database)["TableList"]}
    assert names == {
        "persons_changes",
        "persons_raw",
        "persons_current",
        "persons_history",  # every version once, with valid_from / valid_to (ADR 0032)
        "persons_errors",  # the tables over errors/ (ADR 0031)
        "firehose_error_records",
    }
