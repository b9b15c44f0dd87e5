"""A small lake written by the product's own code, for the query-engine tests (ADR 0040).

Nothing here writes a lake object or a Glue definition by hand. Stream records of table
``persons`` (key ``pk``, as the demo table) are built as the DynamoDB streaming destination
emits them, then:

* the **consumer** (:class:`~changelake_consumer.service.ShardProcessor`) decodes them and
  writes the change objects (Parquet, its own columns, names and partitions) into S3;
* the **transform Lambda** (``transform_records``) and the emulator's Firehose rules
  (``firehose_event``, ``interpret_response``, the layout's prefix expression, Firehose's
  object name) write the raw JSON lines;
* the **catalog** (``changelake catalog repair``: :class:`~changelake_catalog.repair.Repairer`
  over the Glue adapter) creates the tables, columns, partitions and views in Glue.

Events, 2024-05-01, UTC (one shard; ``seq`` is the record's position in it):

====  ===  ==========  ======  =================================================================
id    seq  time        kind    item
====  ===  ==========  ======  =================================================================
e01   1    10:00       INSERT  p1 Ann ann@a 30
e02   2    10:05       INSERT  p2 Bob bob@b 40
e03   3    10:30       MODIFY  p1 email → ann@new
e04   4    11:00       INSERT  p3 Cy cy@c 25
e05   5    11:10       REMOVE  p2                          user delete
e06   6    11:20       MODIFY  p3 age → 26
e03   7    10:30       MODIFY  the stream delivers e03 again (at-least-once): stored twice
e07   8    12:00       REMOVE  p3                          TTL delete
e08   9    12:30       MODIFY  p1 name → Anna, email → anna@x, address.city → Oslo (new column)
e09   10   12:40:00.5  INSERT  p4 Dee dee@d 50             same µs as e10 (MICROSECOND
e10   11   12:40:00.5  MODIFY  p4 age → 51                 precision); the sequence decides
e11   12   13:00       INSERT  p5 Eve eve@e 20             written after the catalog's pass:
                                                           partition hour=13 not registered
====  ===  ==========  ======  =================================================================

The consumer is flushed after seq 2, 3, 7, 9 and 11 (its objects: hour 10 ``1-2``, ``3-3``,
``7-7``; hour 11 ``4-6``; hour 12 ``8-9``, ``10-11``; hour 13 ``12-12``), so the hour-10
objects and the object of e09/e10 have no ``address_city`` column.
Raw: Firehose delivers every record (e03 twice) in one buffer per hour, plus one object the
stream wrote before the projection range (2019) and one outside the path template.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
from changelake.adapters.s3_store import S3ObjectStore
from changelake.events import Position
from changelake.metrics import make_metrics
from changelake_catalog.bootstrap import build_catalog
from changelake_catalog.repair import Repairer
from changelake_catalog.settings import CatalogSettings
from changelake_cli.local_stack import free_port
from changelake_consumer.service import BatchPolicy, ShardProcessor
from changelake_emulator.firehose_bridge import (
    SourceRecord,
    evaluate_prefix,
    firehose_event,
    interpret_response,
    object_name,
)
from changelake_lake.layout import firehose_raw_prefix_expression
from changelake_testsupport.person_changes import SHARD
from changelake_testsupport.records import encode, kinesis_dynamodb_record
from changelake_transform.service import transform_records

BUCKET = "product-lake"
DATABASE = "changelake"
TABLE = "persons"
DAY = "2024-05-01"
REGION = "us-east-1"
DELIVERY_STREAM = "changelake-raw"


def moment(hms: str) -> datetime:
    """An aware UTC datetime on the lake's day (engines return Hive timestamps so)."""
    return datetime.fromisoformat(f"{DAY}T{hms}+00:00").astimezone(UTC)


def _us(hms: str) -> int:
    return int(moment(hms).timestamp() * 1_000_000)


def seq(i: int) -> str:
    """The sequence number of position i of the shard (56 digits, as Kinesis)."""
    return f"4965482136715678901234567890123456789012345678901234{i:04d}"


@dataclass(frozen=True, slots=True)
class Event:
    """One change of table persons."""

    event_id: str
    kind: str
    at: str
    new: dict[str, Any] | None
    old: dict[str, Any] | None
    ttl: bool = False

    @property
    def item_id(self) -> str:
        image = self.new if self.new is not None else self.old
        assert image is not None
        return str(image["pk"])

    def record(self) -> dict[str, Any]:
        """The record exactly as the DynamoDB streaming destination emits it."""
        return kinesis_dynamodb_record(
            event_name=self.kind,
            keys={"pk": self.item_id},
            new_image=self.new,
            old_image=self.old,
            event_time_us=_us(self.at),
            precision="MICROSECOND",
            event_id=self.event_id,
            table=TABLE,
            region=REGION,
            ttl_delete=self.ttl,
        )


def _person(pk: str, name: str, email: str, age: int, **extra: Any) -> dict[str, Any]:
    return {"pk": pk, "name": name, "email": email, "age": Decimal(age), **extra}


P1 = _person("p1", "Ann", "ann@a", 30)
P1B = {**P1, "email": "ann@new"}
P1C = {**P1B, "name": "Anna", "email": "anna@x", "address": {"city": "Oslo"}}
P2 = _person("p2", "Bob", "bob@b", 40)
P3 = _person("p3", "Cy", "cy@c", 25)
P3B = {**P3, "age": Decimal(26)}
P4 = _person("p4", "Dee", "dee@d", 50)
P4B = {**P4, "age": Decimal(51)}
P5 = _person("p5", "Eve", "eve@e", 20)

E03 = Event("e03", "MODIFY", "10:30:00", P1B, P1)
# The shard, in order (position i + 1 holds STREAM[i]); e03 is delivered twice.
STREAM: tuple[Event, ...] = (
    Event("e01", "INSERT", "10:00:00", P1, None),
    Event("e02", "INSERT", "10:05:00", P2, None),
    E03,
    Event("e04", "INSERT", "11:00:00", P3, None),
    Event("e05", "REMOVE", "11:10:00", None, P2),
    Event("e06", "MODIFY", "11:20:00", P3B, P3),
    E03,
    Event("e07", "REMOVE", "12:00:00", None, P3B, ttl=True),
    Event("e08", "MODIFY", "12:30:00", P1C, P1B),
    Event("e09", "INSERT", "12:40:00.500001", P4, None),
    Event("e10", "MODIFY", "12:40:00.500001", P4B, P4),
    Event("e11", "INSERT", "13:00:00", P5, None),
)
# The consumer flushes after these positions (see the module doc).
FLUSH_AFTER = (2, 3, 7, 9, 11)
# The catalog's pass runs before position 12 (e11) is written.
CATALOGED_UP_TO = 11
# Kinesis's arrival time of every record (the consumer's arrival_time column).
ARRIVAL_MS = _us("13:00:05") // 1000


def _records() -> list[tuple[bytes, Position]]:
    return [
        (encode(e.record()), Position(SHARD, seq(i), ARRIVAL_MS * 1000))
        for i, e in enumerate(STREAM, start=1)
    ]


def _write_raw(s3: Any, records: Sequence[tuple[bytes, Position]]) -> None:
    """Firehose with the transform Lambda: one delivery per hour of arrival."""
    by_hour: dict[str, list[SourceRecord]] = {}
    for i, ((data, position), change) in enumerate(zip(records, STREAM, strict=True)):
        by_hour.setdefault(change.at[:2], []).append(
            SourceRecord(f"r{i}", data, ARRIVAL_MS, SHARD, position.sequence_number, "pk")
        )
    for hour, batch in sorted(by_hour.items()):
        event = firehose_event(
            batch,
            invocation_id=f"invocation-{hour}",
            delivery_stream_arn=f"arn:aws:firehose:{REGION}:000000000000:deliverystream/raw",
            source_stream_arn=f"arn:aws:kinesis:{REGION}:000000000000:stream/changes",
            region=REGION,
        )
        response = transform_records(event["records"])
        delivered, failed = interpret_response(batch, {"records": response.records})
        assert not failed, failed
        now = datetime.fromisoformat(f"{DAY}T{hour}:59:00+00:00")
        expression = firehose_raw_prefix_expression()
        (prefix,) = {
            evaluate_prefix(expression, now=now, partition_keys=d.partition_keys) for d in delivered
        }
        key = prefix + object_name(DELIVERY_STREAM, now)
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"".join(d.data for d in delivered))


def _write_stray_raw(s3: Any) -> None:
    """Raw objects the raw table must ignore: before the projection range, outside the template."""
    old = Event("e00", "INSERT", "10:00:00", _person("p0", "Old", "old@o", 99), None).record()
    old["dynamodb"]["ApproximateCreationDateTime"] = int(
        datetime(2019, 12, 31, 23, tzinfo=UTC).timestamp() * 1_000_000
    )
    line = json.dumps(old).encode() + b"\n"
    s3.put_object(Bucket=BUCKET, Key=f"raw/{TABLE}/dt=2019-12-31/hour=23/old.json", Body=line)
    s3.put_object(Bucket=BUCKET, Key=f"raw/{TABLE}/notapartition/x.json", Body=line)


def build() -> None:
    """Write the lake into S3 and Glue at ``AWS_ENDPOINT_URL`` (an empty moto)."""
    s3: Any = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    records = _records()
    _write_raw(s3, records)
    _write_stray_raw(s3)
    store = S3ObjectStore(BUCKET)
    consumer = ShardProcessor(
        SHARD,
        store,
        make_metrics("log"),
        BatchPolicy(max_rows=1000, max_age_s=3600.0),
        expected_table=TABLE,
    )
    start = 0
    for stop in (*FLUSH_AFTER, len(records)):
        if start == CATALOGED_UP_TO:
            settings = CatalogSettings(lake_bucket=BUCKET, database=DATABASE)
            Repairer(store, build_catalog(settings), metrics=make_metrics("log")).run(TABLE)
        consumer.process(records[start:stop])
        consumer.flush_all()
        start = stop


@contextmanager
def served() -> Iterator[str]:
    """The lake, built once in a moto server of its own; yields that server's endpoint.

    The build points ``AWS_ENDPOINT_URL`` at it and restores the variable afterwards; tests
    point their clients at it themselves (they only read: the lake is shared).
    """
    with moto_process() as endpoint:
        previous = os.environ.get("AWS_ENDPOINT_URL")
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        try:
            build()
        finally:
            if previous is None:
                os.environ.pop("AWS_ENDPOINT_URL", None)
            else:
                os.environ["AWS_ENDPOINT_URL"] = previous
        yield endpoint


@contextmanager
def moto_process() -> Iterator[str]:
    """A moto server in its own process (its state apart from the session's moto, which every
    ``aws_endpoint`` test resets); yields its endpoint."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start on {endpoint}") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)
