"""End to end on the emulator (real HTTP): DynamoDB writes → streaming destination → Kinesis →
local consumer → Parquet in S3, compared field by field with the items DynamoDB holds."""

from __future__ import annotations

import base64
import io
import time
from decimal import Decimal
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
from changelake import ddb_json
from changelake.timeutil import datetime_to_us
from changelake_consumer.bootstrap import build_local as build
from changelake_consumer.settings import ConsumerSettings
from changelake_lake import layout

pytestmark = pytest.mark.e2e

BIG = "12345678901234567890123456789012345678"  # 38 digits: beyond decimal(38,9)


def _item(i: int) -> dict[str, Any]:
    return {
        "pk": f"p-{i:03d}",
        "name": f"Zoë {i} 名前 🚀",
        "age": Decimal(30 + i),
        "balance": Decimal("-1234.56789"),
        "big": Decimal(BIG),
        "tiny": Decimal("1E-130"),
        "active": i % 2 == 0,
        "photo": bytes([i, 0, 255]),
        "tags": {"a", f"t{i}"},
        "scores": {Decimal("1.5"), Decimal(i + 10)},
        "blobs": {b"\x00", bytes([i + 1])},
        "history": [Decimal(1), "two", None, {"k": True}],
        "address": {"city": "Lyon", "geo": {"lat": Decimal("45.764043")}},
        "nothing": None,
    }


def _blobs(av: Any, to_bytes: bool) -> Any:
    # boto3's low-level client takes and returns B/BS as raw bytes (it does the base64 itself);
    # the DynamoDB JSON of the codec and of the stream carries base64 text.
    if isinstance(av, dict):
        out: dict[str, Any] = {}
        for tag, raw in av.items():
            if tag == "B":
                out[tag] = base64.b64decode(raw) if to_bytes else base64.b64encode(raw).decode()
            elif tag == "BS":
                out[tag] = [
                    base64.b64decode(v) if to_bytes else base64.b64encode(v).decode() for v in raw
                ]
            elif tag in ("M",):
                out[tag] = {k: _blobs(v, to_bytes) for k, v in raw.items()}
            elif tag == "L":
                out[tag] = [_blobs(v, to_bytes) for v in raw]
            else:
                out[tag] = raw
        return out
    return av


def _to_boto(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _blobs(v, True) for k, v in ddb_json.serialize_image(item).items()}


def _from_boto(item: dict[str, Any]) -> dict[str, Any]:
    return ddb_json.deserialize_image({k: _blobs(v, False) for k, v in item.items()})


def _objects(s3: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def _rows(s3: Any, bucket: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for key, data in _objects(s3, bucket, "changes/").items():
        parsed = layout.parse_change_object_key(key)
        assert parsed is not None, key
        for row in pq.read_table(io.BytesIO(data)).to_pylist():
            # partitions by event time
            assert layout.partition_for(row["event_time"]) == parsed.partition, key
            rows.append(row)
    return rows


def test_e2e_every_change_lands_once_with_dynamodb_values(emulator: Any) -> None:
    settings = ConsumerSettings(
        flush_age_s=0.3, shard_sync_s=0.3, get_records_per_s=4, checkpoint_table="e2e-ckpt"
    )
    ddb = boto3.client("dynamodb")
    s3 = boto3.client("s3")
    consumer = build(settings)
    consumer.start()
    try:
        # GIVEN 8 inserts, 3 updates (one with N → S drift) and 2 deletes
        for i in range(8):
            ddb.put_item(TableName=settings.tables[0], Item=_to_boto(_item(i)))
        for i in range(3):
            ddb.update_item(
                TableName=settings.tables[0],
                Key={"pk": {"S": f"p-{i:03d}"}},
                UpdateExpression="SET age = :a, #n = :n",
                ExpressionAttributeNames={"#n": "name"},
                ExpressionAttributeValues={
                    ":a": {"S": "forty"} if i == 0 else {"N": str(40 + i)},
                    ":n": {"S": f"renamed {i}"},
                },
            )
        for i in (6, 7):
            ddb.delete_item(TableName=settings.tables[0], Key={"pk": {"S": f"p-{i:03d}"}})
        expected_changes = 8 + 3 + 2
        deadline = time.monotonic() + 45
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            rows = _rows(s3, settings.lake_bucket)
            if len({r["event_id"] for r in rows}) >= expected_changes:
                break
            time.sleep(0.3)
    finally:
        consumer.stop()
    assert consumer.failure is None
    # THEN exactly N distinct event_ids, each once
    assert len({r["event_id"] for r in rows}) == expected_changes
    assert len(rows) == expected_changes
    assert sorted(r["event_name"] for r in rows).count("MODIFY") == 3
    latest: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: (r["event_time"], int(r["sequence_number"]))):
        latest[row["item_key"]] = row
    live = {
        ddb_json.value_to_json({"pk": ddb_json.deserialize_value(item["pk"])}): item
        for item in ddb.scan(TableName=settings.tables[0], ConsistentRead=True)["Items"]
    }
    assert len(live) == 6
    for key, item in live.items():
        row = latest[key]
        image = _from_boto(item)
        # the exact image, field by field, as DynamoDB holds it
        assert row["new_image"] == ddb_json.image_to_json(image), key
        assert row["name"] == image["name"]
        assert row["balance__n"] == image["balance"]
        assert row["big__n_text"] == BIG
        assert row.get("big__n") is None
        assert Decimal(row["tiny__n_text"]) == Decimal("1E-130")
        assert row["active__bool"] == image["active"]
        assert row["photo__b"] == image["photo"]
        assert row["tags__ss"] == sorted(image["tags"])
        assert row["scores__ns"] == [str(v) for v in sorted(image["scores"])]
        assert row["history__l"] == ddb_json.value_to_json(image["history"])
        assert row["address__city"] == "Lyon"
        assert row["address__geo__lat__n"] == Decimal("45.764043")
        if isinstance(image["age"], str):  # type drift: kept in the S column
            assert row["age"] == image["age"]
            assert row.get("age__n") is None
        else:
            assert row["age__n"] == image["age"]
        assert row["event_time"].tzinfo is not None
        assert row["arrival_time"] is not None
        assert datetime_to_us(row["event_time"]) > 0
    # REMOVE rows carry the old image
    for i in (6, 7):
        key = ddb_json.value_to_json({"pk": f"p-{i:03d}"})
        row = latest[key]
        assert row["event_name"] == "REMOVE"
        assert row["new_image"] is None
        assert row["old_image"] == ddb_json.image_to_json(_item(i))
        assert row["name"] == _item(i)["name"]
