"""Builders of real-shaped Kinesis-for-DynamoDB records for tests and benchmarks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from changelake import ddb_json
from changelake.wire import TTL_PRINCIPAL


def kinesis_dynamodb_record(
    *,
    event_name: str,
    keys: Mapping[str, Any],
    new_image: Mapping[str, Any] | None = None,
    old_image: Mapping[str, Any] | None = None,
    event_time_us: int,
    precision: str | None = "MILLISECOND",
    event_id: str = "00000000-0000-0000-0000-000000000000",
    table: str = "persons",
    region: str = "us-east-1",
    ttl_delete: bool = False,
) -> dict[str, Any]:
    """One record dict exactly as the streaming destination emits it (images from plain values)."""
    stamp = event_time_us if precision == "MICROSECOND" else event_time_us // 1000
    payload: dict[str, Any] = {
        "ApproximateCreationDateTime": stamp,
        "Keys": ddb_json.serialize_image(keys),
    }
    if new_image is not None:
        payload["NewImage"] = ddb_json.serialize_image(new_image)
    if old_image is not None:
        payload["OldImage"] = ddb_json.serialize_image(old_image)
    payload["SizeBytes"] = len(orjson.dumps(payload["Keys"])) + sum(
        len(orjson.dumps(payload[k])) for k in ("NewImage", "OldImage") if k in payload
    )
    if precision == "MICROSECOND":
        payload["ApproximateCreationDateTimePrecision"] = "MICROSECOND"
    return {
        "awsRegion": region,
        "eventID": event_id,
        "eventName": event_name,
        "userIdentity": {"type": "Service", "principalId": TTL_PRINCIPAL} if ttl_delete else None,
        "recordFormat": "application/json",
        "tableName": table,
        "dynamodb": payload,
        "eventSource": "aws:dynamodb",
    }


def encode(record: Mapping[str, Any]) -> bytes:
    """Record dict → the bytes that travel as Kinesis record data."""
    return orjson.dumps(record)
