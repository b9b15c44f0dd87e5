"""Catalog test fixtures: change-table Parquet bytes, and a moto lake wired like the emulator.

Until the consumer writes real objects, tests build Parquet files with pyarrow in the shape of
docs/architecture.md's change-table contract. The ``lake`` fixture creates what the emulator's
bootstrap creates: the bucket, the catalog queue with its DLQ (maxReceiveCount 5), the bucket
notification (ObjectCreated on ``changes/``) and the Glue database.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot

BASE_FIELDS: list[pa.Field] = [
    pa.field("event_id", pa.string()),
    pa.field("event_name", pa.string()),
    pa.field("event_time", pa.timestamp("us", tz="UTC")),
    pa.field("item_key", pa.string()),
    pa.field("pk", pa.string()),
    pa.field("new_image", pa.string()),
    pa.field("old_image", pa.string()),
    pa.field("changed_attributes", pa.list_(pa.string())),
    pa.field("is_ttl_delete", pa.bool_()),
    pa.field("size_bytes", pa.int64()),
    pa.field("shard_id", pa.string()),
    pa.field("sequence_number", pa.string()),
    pa.field("arrival_time", pa.timestamp("us", tz="UTC")),
    pa.field("name", pa.string()),
    pa.field("active", pa.bool_()),
    pa.field("age", pa.decimal128(38, 0)),
    pa.field("photo", pa.binary()),
    pa.field("tags", pa.list_(pa.string())),
    pa.field("age__s", pa.string()),
]

_SEQ = iter(range(10**6))


def change_row(
    pk: str,
    event_name: str = "INSERT",
    *,
    at: datetime | None = None,
    seq: str | None = None,
    event_id: str | None = None,
    **attributes: Any,
) -> dict[str, Any]:
    """One change-table row in the contract's shape."""
    n = next(_SEQ)
    at = at or datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
    image = {"pk": pk, **{k: str(v) for k, v in attributes.items()}}
    return {
        "event_id": event_id or f"ev-{n}",
        "event_name": event_name,
        "event_time": at,
        "item_key": json.dumps({"pk": pk}),
        "pk": pk,
        "new_image": None if event_name == "REMOVE" else json.dumps(image),
        "old_image": json.dumps(image) if event_name != "INSERT" else None,
        "changed_attributes": sorted(image),
        "is_ttl_delete": False,
        "size_bytes": 100,
        "shard_id": "shardId-000000000000",
        "sequence_number": seq or f"{49_600_000_000_000_000_000 + n}",
        "arrival_time": at,
        **attributes,
    }


def parquet_bytes(rows: Sequence[dict[str, Any]], extra: Sequence[pa.Field] = ()) -> bytes:
    """A Parquet file of ``rows`` with the base change-table schema plus ``extra`` fields."""
    schema = pa.schema([*BASE_FIELDS, *extra])
    columns = {f.name: [r.get(f.name) for r in rows] for f in schema}
    table = pa.table(columns, schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


@pytest.fixture
def make_parquet() -> Callable[..., bytes]:
    """``make_parquet(rows, extra=())`` → Parquet bytes in the change-table shape."""
    return parquet_bytes


@pytest.fixture
def make_row() -> Callable[..., dict[str, Any]]:
    """``make_row(pk, event_name, at=, seq=, event_id=, **attributes)`` → one change row."""
    return change_row


def write_change_file(root: Path, name: str, rows: Sequence[dict[str, Any]]) -> None:
    """``changes/persons/dt=…/hour=…/<name>`` under ``root`` (partition of the first row)."""
    at: datetime = rows[0]["event_time"]
    folder = root / "changes" / "persons" / f"dt={at:%Y-%m-%d}" / f"hour={at:%H}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(parquet_bytes(rows))


def run_on_duckdb(root: Path, sql: str) -> list[dict[str, Any]]:
    """Athena SQL transpiled to DuckDB over ``root``'s ``changelake.persons_changes``."""
    duck_sql = sqlglot.transpile(sql, read="athena", write="duckdb")[0]
    con = duckdb.connect()
    try:
        con.execute("CREATE SCHEMA changelake")
        con.execute(
            "CREATE VIEW changelake.persons_changes AS SELECT * FROM read_parquet("
            f"'{root}/changes/persons/*/*/*.parquet', hive_partitioning = true)"
        )
        cursor = con.execute(duck_sql)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()


@pytest.fixture
def write_changes() -> Callable[[Path, str, Sequence[dict[str, Any]]], None]:
    """``write_changes(root, name, rows)``: one Parquet file of the persons change table."""
    return write_change_file


@pytest.fixture
def run_duckdb() -> Callable[[Path, str], list[dict[str, Any]]]:
    """``run_duckdb(root, sql)``: Athena SQL run by DuckDB over ``write_changes``' files."""
    return run_on_duckdb


@pytest.fixture
def sample_row() -> dict[str, Any]:
    """A row with every attribute column filled."""
    return change_row(
        "p-1", name="Ada", active=True, age=Decimal(36), photo=b"\x00\x01", tags=["a"]
    )


@dataclass
class Lake:
    """The moto resources the catalog talks to."""

    endpoint: str
    bucket: str
    database: str
    queue_url: str
    dlq_url: str
    s3: Any
    sqs: Any
    glue: Any

    def put(self, key: str, data: bytes) -> None:
        """Write an object (moto sends the ObjectCreated event to the queue)."""
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)

    def drain_test_event(self) -> None:
        """Drop S3's test event, sent when the notification was configured."""
        got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
        for m in got.get("Messages", []):
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])

    def partitions(self, glue_table: str) -> dict[tuple[str, ...], dict[str, Any]]:
        """Registered partitions by values."""
        pages = self.glue.get_paginator("get_partitions").paginate(
            DatabaseName=self.database, TableName=glue_table
        )
        return {tuple(p["Values"]): p for page in pages for p in page["Partitions"]}

    def table(self, glue_table: str) -> dict[str, Any]:
        """GetTable."""
        return dict(self.glue.get_table(DatabaseName=self.database, Name=glue_table)["Table"])

    def dlq_bodies(self) -> list[str]:
        """Bodies in the dead-letter queue (received, not deleted)."""
        got = self.sqs.receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0
        )
        return [m["Body"] for m in got.get("Messages", [])]


@pytest.fixture
def lake(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Lake:
    """Bucket + catalog queue/DLQ + notification + Glue database, like the emulator's bootstrap."""
    bucket, queue, database = "changelake-lake", "changelake-catalog", "changelake"
    for name, value in {
        "CHANGELAKE_LAKE_BUCKET": bucket,
        "CHANGELAKE_CATALOG_QUEUE": queue,
        "CHANGELAKE_DATABASE": database,
        "CHANGELAKE_CATALOG_WAIT_SECONDS": "1",
        "CHANGELAKE_CATALOG_RETRY_DELAY_SECONDS": "0",
        "CHANGELAKE_CATALOG_GLUE_BACKOFF_SECONDS": "0.01",
    }.items():
        monkeypatch.setenv(name, value)
    s3, sqs, glue = boto3.client("s3"), boto3.client("sqs"), boto3.client("glue")
    dlq_url = sqs.create_queue(QueueName=f"{queue}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=queue,
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
            "VisibilityTimeout": "30",
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "changes/"}]}},
                }
            ]
        },
    )
    glue.create_database(DatabaseInput={"Name": database})
    return Lake(aws_endpoint, bucket, database, queue_url, dlq_url, s3, sqs, glue)


@pytest.fixture
def glue(aws_endpoint: str) -> Any:
    """A real boto3 Glue client on moto with the ``changelake`` database created."""
    client = boto3.client("glue")
    client.create_database(DatabaseInput={"Name": "changelake"})
    return client
