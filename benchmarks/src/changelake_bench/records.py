"""Seeded generator of Kinesis-for-DynamoDB change records for the benchmarks.

Every benchmark measures the same kind of data: a stream of changes to a ``persons``-like table,
with every DynamoDB attribute type (S, N, B, BOOL, NULL, M, L, SS, NS, BS), 38-digit numbers,
a mix of INSERT, MODIFY and REMOVE (a few TTL deletes) that follows a consistent item history
(MODIFY and REMOVE only touch live items), and a mean record size near 650 bytes. The same seed
always yields the same bytes.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from changelake.events import Position
from changelake_testsupport.records import encode, kinesis_dynamodb_record

TABLE = "persons"
SHARD_ID = "shardId-000000000000"

_FIRST = (
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Ken",
    "Linus",
    "Margaret",
    "Donald",
    "Frances",
    "John",
    "Radia",
    "Tim",
    "Sophie",
    "Guido",
    "Anders",
    "Björn",
    "Zoë",
)
_LAST = (
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Thompson",
    "Torvalds",
    "Hamilton",
    "Knuth",
    "Allen",
    "Backus",
    "Perlman",
    "Berners-Lee",
    "Wilson",
    "Müller",
)
_CITIES = ("Lisboa", "Zürich", "Paris", "Kraków", "São Paulo", "Tōkyō", "Austin", "Nairobi")
_TAGS = ("vip", "beta", "newsletter", "churn-risk", "partner", "staff", "eu", "us", "apac")


@dataclass(frozen=True, slots=True)
class Mix:
    """Share of each change kind among generated records (the rest are MODIFY)."""

    insert: float = 0.45
    remove: float = 0.10
    ttl_share_of_removes: float = 0.2


@dataclass(frozen=True, slots=True)
class Change:
    """One generated change: the record bytes, its Kinesis position and the item it touched."""

    data: bytes
    position: Position
    pk: str
    event_name: str
    event_time_us: int


def _word(rng: random.Random, n: int) -> str:
    return "".join(rng.choices(string.ascii_lowercase, k=n))


def _person(rng: random.Random, pk: str, version: int) -> dict[str, Any]:
    # Sizes are tuned so the mean encoded record (INSERT/MODIFY/REMOVE mix) is ~650 bytes:
    # the envelope is ~300 bytes and a MODIFY carries two images.
    item: dict[str, Any] = {
        "pk": pk,
        "name": rng.choice(_FIRST),
        "age": rng.randint(18, 99),
        "bal": Decimal(f"{rng.randint(0, 10**4)}.{rng.randint(0, 99):02d}"),
        "ver": version,
        "ok": rng.random() < 0.8,
        "tags": {rng.choice(_TAGS)},
        "addr": {"city": rng.choice(_CITIES)},
    }
    # Optional attributes keep the mean size realistic while every type stays well represented.
    if rng.random() < 0.5:
        item["nick"] = None
    if rng.random() < 0.5:
        item["pic"] = rng.randbytes(3)
    if rng.random() < 0.5:
        item["nums"] = {rng.randint(1, 99)}
    if rng.random() < 0.5:
        item["ph"] = [f"555-{rng.randint(1000, 9999)}"]
    if rng.random() < 0.1:
        # 38 significant digits: the precision a double would destroy.
        item["big"] = Decimal("1234567890123456789012345678.9012345678")
    if rng.random() < 0.1:
        item["bs"] = {rng.randbytes(2), rng.randbytes(3)}
    return item


def _modify(rng: random.Random, old: dict[str, Any]) -> dict[str, Any]:
    new = dict(old)
    new["ver"] = old["ver"] + 1
    new["bal"] = Decimal(f"{rng.randint(0, 10**4)}.{rng.randint(0, 99):02d}")
    if rng.random() < 0.5:
        new["ok"] = not old["ok"]
    if rng.random() < 0.3:
        new["tags"] = set(rng.sample(_TAGS, 2))
    if rng.random() < 0.2:
        new["addr"] = {"city": rng.choice(_CITIES)}
    if rng.random() < 0.1:
        new.pop("ph", None)
    return new


def generate(
    count: int,
    *,
    seed: int = 7,
    start_us: int = 1_767_225_600_000_000,  # 2026-01-01T00:00:00Z
    span_us: int = 3_600_000_000,
    mix: Mix | None = None,
    table: str = TABLE,
    shard_id: str = SHARD_ID,
) -> Iterator[Change]:
    """Yield ``count`` changes, event times spread evenly over ``span_us`` from ``start_us``.

    MODIFY and REMOVE pick a live item; when none is live an INSERT is made instead, so the
    history is one a real table could have produced. Sequence numbers increase by one.
    """
    mix = mix or Mix()
    rng = random.Random(seed)
    live: dict[str, dict[str, Any]] = {}
    live_keys: list[str] = []
    next_id = 0
    step = max(span_us // max(count, 1), 1)
    seq_base = 49_650_000_000_000_000_000_000_000_000_000_000_000_000_000
    for i in range(count):
        t_us = start_us + i * step + rng.randrange(step)
        roll = rng.random()
        if roll < mix.insert or not live_keys:
            pk = f"u{next_id:07d}"
            next_id += 1
            new = _person(rng, pk, 1)
            live[pk] = new
            live_keys.append(pk)
            record = kinesis_dynamodb_record(
                event_name="INSERT",
                keys={"pk": pk},
                new_image=new,
                event_time_us=t_us,
                event_id=_event_id(rng),
                table=table,
            )
            name = "INSERT"
        elif roll < mix.insert + mix.remove:
            idx = rng.randrange(len(live_keys))
            pk = live_keys[idx]
            live_keys[idx] = live_keys[-1]
            live_keys.pop()
            old = live.pop(pk)
            record = kinesis_dynamodb_record(
                event_name="REMOVE",
                keys={"pk": pk},
                old_image=old,
                event_time_us=t_us,
                event_id=_event_id(rng),
                table=table,
                ttl_delete=rng.random() < mix.ttl_share_of_removes,
            )
            name = "REMOVE"
        else:
            pk = live_keys[rng.randrange(len(live_keys))]
            old = live[pk]
            new = _modify(rng, old)
            live[pk] = new
            record = kinesis_dynamodb_record(
                event_name="MODIFY",
                keys={"pk": pk},
                new_image=new,
                old_image=old,
                event_time_us=t_us,
                event_id=_event_id(rng),
                table=table,
                precision="MICROSECOND" if i % 2 else "MILLISECOND",
            )
            name = "MODIFY"
        position = Position(shard_id, str(seq_base + i), t_us + 50_000)
        yield Change(encode(record), position, pk, name, t_us)


def _event_id(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def records(count: int, *, seed: int = 7) -> list[tuple[bytes, Position]]:
    """``count`` (record bytes, position) pairs: the input every consumer path gets."""
    return [(c.data, c.position) for c in generate(count, seed=seed)]
