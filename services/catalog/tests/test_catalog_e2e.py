"""End to end on the emulator: DynamoDB write → consumer Parquet → catalog → Glue (latency)."""

from __future__ import annotations

import sys
import time
from typing import Any

import boto3
import pytest
from changelake.settings import ChangelakeSettings
from changelake_lake.athena_view import decode_presto_view

pytestmark = pytest.mark.e2e


def _glue_ready(glue: Any, database: str, column: str) -> bool:
    try:
        table = glue.get_table(DatabaseName=database, Name="persons_changes")["Table"]
        view = glue.get_table(DatabaseName=database, Name="persons_current")["Table"]
    except glue.exceptions.EntityNotFoundException:
        return False
    names = [c["Name"] for c in table["StorageDescriptor"]["Columns"]]
    view_columns = [n for n, _ in decode_presto_view(view["ViewOriginalText"]).columns]
    parts = glue.get_partitions(DatabaseName=database, TableName="persons_changes")["Partitions"]
    return column in names and column in view_columns and bool(parts)


def test_catalog_registers_consumer_objects_when_pipeline_runs_on_emulator(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from changelake_catalog.bootstrap import local_service as catalog_service
    from changelake_consumer.bootstrap import local_service as consumer_service

    monkeypatch.setenv("CHANGELAKE_FLUSH_AGE_S", "0.5")
    monkeypatch.setenv("CHANGELAKE_CATALOG_WAIT_SECONDS", "1")
    settings = ChangelakeSettings()
    services = [consumer_service(), catalog_service()]
    for service in services:
        service.start()
    ddb, s3, glue = boto3.client("dynamodb"), boto3.client("s3"), boto3.client("glue")
    figures: list[float] = []
    try:
        for n in range(2):
            # WHEN an item with a new attribute is written
            ddb.put_item(
                TableName=settings.tables[0],
                Item={"pk": {"S": f"p-{n}"}, "name": {"S": "Ada"}, f"attr{n}": {"N": "1"}},
            )
            column = f"attr{n}__n"
            object_seen = glue_seen = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                listing = s3.list_objects_v2(Bucket=settings.lake_bucket, Prefix="changes/")
                if object_seen is None and len(listing.get("Contents", [])) > n:
                    object_seen = time.monotonic()
                if object_seen is not None and _glue_ready(glue, settings.database, column):
                    glue_seen = time.monotonic()
                    break
                time.sleep(0.02)
            # THEN table, new column, partition and view are in Glue
            assert object_seen is not None
            assert glue_seen is not None
            figures.append(glue_seen - object_seen)
    finally:
        for service in reversed(services):
            service.stop()
    # Reported, not asserted: consumer object visible in S3 → everything visible in Glue.
    print(
        f"\ncatalog e2e latency (object → Glue): {[f'{f:.3f}s' for f in figures]}", file=sys.stderr
    )
    assert len(figures) == 2
