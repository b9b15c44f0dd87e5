"""What the KCL daemon tests share (tests/e2e, tests/faults): the KCL's own DynamoDB tables.

The lease table (named after the application), the KCL 3 leader lock (``-CoordinatorState``)
and the worker id each daemon logs at start.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import boto3
from changelake_consumer.settings import ConsumerSettings


def scan(table: str) -> list[dict[str, Any]]:
    """Every item of a table the KCL creates, attribute values unwrapped ([] until it exists)."""
    ddb = boto3.client("dynamodb")
    try:
        items = ddb.scan(TableName=table, ConsistentRead=True)["Items"]
    except ddb.exceptions.ResourceNotFoundException:
        return []
    return [{k: next(iter(v.values())) for k, v in item.items()} for item in items]


def lease_table() -> list[dict[str, Any]]:
    """The KCL lease table's items (one per shard)."""
    return scan(ConsumerSettings().application_name)


def owners() -> dict[str, str | None]:
    """Shard → the worker holding its lease (None: free)."""
    return {lease["leaseKey"]: lease.get("leaseOwner") for lease in lease_table()}


def leader() -> str | None:
    """The worker holding the KCL 3 leader lock (DynamoDB lock client, CoordinatorState)."""
    for item in scan(f"{ConsumerSettings().application_name}-CoordinatorState"):
        if item.get("key") == "Leader":
            return str(item["ownerName"]) if item.get("ownerName") else None
    return None


def worker_id(lines: Iterable[dict[str, Any]]) -> str | None:
    """The KCL worker id a daemon logged at start (None until it did)."""
    for line in lines:
        message = str(line.get("message", ""))
        if message.startswith("Using workerId: "):
            return message.removeprefix("Using workerId: ").strip()
    return None
