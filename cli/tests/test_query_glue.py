"""The Glue catalog's read side (query engine): every page of GetPartitions, Hive default
locations, missing tables."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from changelake_lake.adapters.glue_catalog import GlueCatalog
from changelake_lake.query.local_engine import LocalEngine
from changelake_lake.query.model import PartitionDef, QueryError

pytestmark = pytest.mark.unit


def _client() -> Any:
    return boto3.client(
        "glue",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


TABLE = {
    "Table": {
        "Name": "Persons_Changes",
        "TableType": "EXTERNAL_TABLE",
        "PartitionKeys": [{"Name": "dt", "Type": "string"}, {"Name": "hour", "Type": "string"}],
        "StorageDescriptor": {
            "Columns": [{"Name": "Event_ID", "Type": "string"}],
            "Location": "s3://lake/changes/persons",
            "SerdeInfo": {"SerializationLibrary": "ParquetHiveSerDe"},
        },
    }
}


def _partition(dt: str, hour: str, location: str | None) -> dict[str, Any]:
    sd: dict[str, Any] = {"Columns": []}
    if location is not None:
        sd["Location"] = location
    return {"Values": [dt, hour], "StorageDescriptor": sd}


def test_glue_catalog_reads_every_partition_page() -> None:
    client = _client()
    stub = Stubber(client)
    stub.add_response("get_table", TABLE, {"DatabaseName": "changelake", "Name": "persons_changes"})
    stub.add_response(
        "get_partitions",
        {"Partitions": [_partition("2024-05-01", "10", "s3://lake/x/")], "NextToken": "n2"},
        {"DatabaseName": "changelake", "TableName": "persons_changes", "ExcludeColumnSchema": True},
    )
    stub.add_response(
        "get_partitions",
        {"Partitions": [_partition("2024-05-01", "11", None)]},
        {
            "DatabaseName": "changelake",
            "TableName": "persons_changes",
            "ExcludeColumnSchema": True,
            "NextToken": "n2",
        },
    )
    with stub:
        catalog = GlueCatalog("", "changelake", client)
        table = catalog.describe("PERSONS_changes")
        parts = catalog.partition_defs(table)
    assert table.name == "persons_changes"
    assert [c.name for c in table.columns] == ["event_id"]
    assert parts == [
        PartitionDef(("2024-05-01", "10"), "s3://lake/x/"),
        # No location stored: Hive's rule, the table location plus key=value folders.
        PartitionDef(("2024-05-01", "11"), "s3://lake/changes/persons/dt=2024-05-01/hour=11"),
    ]


def test_glue_catalog_missing_table_is_athenas_error() -> None:
    client = _client()
    stub = Stubber(client)
    stub.add_client_error("get_table", "EntityNotFoundException", "Table nope not found.")
    engine = LocalEngine(catalog=GlueCatalog("", "changelake", client))
    with stub, pytest.raises(QueryError, match=r"TABLE_NOT_FOUND: .*changelake\.nope"):
        engine.run("SELECT * FROM nope")
