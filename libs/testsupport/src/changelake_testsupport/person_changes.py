"""Person changes for tests: real-shaped records at chosen positions of one test shard."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from changelake.events import Position

from changelake_testsupport.records import encode, kinesis_dynamodb_record

SHARD = "shardId-000000000000"
BASE_SEQ = 49654821367156789012345678901234567890123456789012340000
# 2026-11-27T10:00:00Z in µs
T0 = 1795773600_000_000

Records = list[tuple[bytes, Position]]


def seq(i: int) -> str:
    """The i-th sequence number of the test shard (56 digits, like Kinesis)."""
    return str(BASE_SEQ + i)


def person(i: int, **extra: Any) -> dict[str, Any]:
    """A small person item."""
    item: dict[str, Any] = {
        "id": f"p-{i:05d}",
        "name": f"Person {i}",
        "age": Decimal(20 + i % 50),
        "active": i % 2 == 0,
        "address": {"city": "Lyon", "zip": "69001"},
    }
    item.update(extra)
    return item


def event_id_of(i: int) -> str:
    """The default eventID of record i."""
    return str(uuid.UUID(int=i + 1))


def change(
    i: int,
    *,
    event_name: str = "INSERT",
    event_time_us: int | None = None,
    item: dict[str, Any] | None = None,
    shard: str = SHARD,
    event_id: str | None = None,
) -> tuple[bytes, Position]:
    """Record i: an INSERT (or MODIFY/REMOVE) of person i at T0 + i ms."""
    item = item if item is not None else person(i)
    keys = {"id": item["id"]}
    new = item if event_name != "REMOVE" else None
    old = item if event_name != "INSERT" else None
    record = kinesis_dynamodb_record(
        event_name=event_name,
        keys=keys,
        new_image=new,
        old_image=old,
        event_time_us=event_time_us if event_time_us is not None else T0 + i * 1000,
        event_id=event_id or event_id_of(i),
    )
    return encode(record), Position(shard, seq(i), T0 + i * 1000)


def changes(start: int, stop: int, **kwargs: Any) -> Records:
    """Records i in range(start, stop) (see :func:`change`)."""
    return [change(i, **kwargs) for i in range(start, stop)]
