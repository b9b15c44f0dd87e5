"""The streaming destination's forwarding (ADR 0041): batches, failed puts, order per item.

A destination with a Kinesis sink that fails on schedule (whole calls raising, calls that
accept only some entries) forwards a real emulator's DynamoDB stream into its real Kinesis
stream; what a consumer then reads must be every change exactly once, in write order per item.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any

import boto3
import orjson
import pytest
from changelake.settings import ChangelakeSettings
from changelake_emulator.emulator import Emulator
from changelake_emulator.moto_direct import (
    PUT_RECORDS_MAX,
    PUT_RECORDS_MAX_BYTES,
    MotoKinesisSink,
)
from changelake_emulator.streaming_destination import StreamingDestination, _next_batch

SETTINGS = ChangelakeSettings()
ITEMS = 30
VERSIONS = 8


class FlakySink:
    """Kinesis that fails on a fixed schedule: raise, accept only some entries, accept all."""

    def __init__(self, inner: MotoKinesisSink) -> None:
        self.inner = inner
        self.calls = 0
        self.raised = 0
        self.partial = 0
        self.entries_rejected = 0

    def put_records(self, entries: Sequence[tuple[str, bytes]]) -> list[bool]:
        self.calls += 1
        step = self.calls % 3
        if step == 1:
            self.raised += 1
            raise ConnectionError("injected: PutRecords did not answer")
        if step == 2 and len(entries) > 1:
            # Kinesis stores the accepted entries only; every third one fails (throttled).
            accepted = [i % 3 != 1 for i in range(len(entries))]
            self.partial += 1
            self.entries_rejected += accepted.count(False)
            self.inner.put_records([e for e, ok in zip(entries, accepted, strict=True) if ok])
            return accepted
        return self.inner.put_records(entries)


def _read_stream(endpoint: str) -> list[dict[str, Any]]:
    kinesis = boto3.client("kinesis", endpoint_url=endpoint, region_name=SETTINGS.region)
    records: list[dict[str, Any]] = []
    for shard in kinesis.list_shards(StreamName=SETTINGS.stream_name)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=SETTINGS.stream_name,
            ShardId=shard["ShardId"],
            ShardIteratorType="TRIM_HORIZON",
        )["ShardIterator"]
        while True:
            resp = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            records.extend(orjson.loads(r["Data"]) for r in resp["Records"])
            if not resp["Records"]:
                break
            iterator = resp["NextShardIterator"]
    return records


@pytest.mark.aws
@pytest.mark.parametrize("emulator", [{"stream_enabled": False}], indirect=True)
def test_forwarding_loses_nothing_and_keeps_item_order_when_puts_fail_and_retry(
    emulator: Emulator,
) -> None:
    # GIVEN a destination whose Kinesis raises on every third call and rejects a third of the
    # entries of the next (the emulator's own destination is disabled)
    sink = FlakySink(MotoKinesisSink(SETTINGS.stream_name, SETTINGS.region))
    table = SETTINGS.tables[0]
    destination = StreamingDestination(
        table=table,
        stream_name=SETTINGS.stream_name,
        region=SETTINGS.region,
        idle_flush_s=0.05,
        sink=sink,
    )
    destination.start()
    try:
        # WHEN 30 items change 8 times each, 25 changes per BatchWriteItem
        ddb: Any = boto3.client(
            "dynamodb", endpoint_url=emulator.endpoint, region_name=SETTINGS.region
        )
        changes = [(f"item-{i:02d}", v) for v in range(1, VERSIONS + 1) for i in range(ITEMS)]
        for start in range(0, len(changes), 25):
            requests = [
                {"PutRequest": {"Item": {"pk": {"S": pk}, "ver": {"N": str(v)}}}}
                for pk, v in changes[start : start + 25]
            ]
            ddb.batch_write_item(RequestItems={table: requests})
        deadline = time.monotonic() + 60
        while destination.records_forwarded < len(changes) or destination.unsent:
            assert time.monotonic() < deadline, (destination.records_forwarded, destination.unsent)
            time.sleep(0.1)
    finally:
        destination.stop()

    # THEN the failures really happened, and were retried
    assert sink.raised >= 3
    assert sink.partial >= 3
    assert sink.entries_rejected > 0
    assert destination.put_attempts_failed == sink.raised + sink.partial
    assert destination.records_read == destination.records_forwarded == len(changes)
    # AND the stream holds every change exactly once, each item's changes in write order
    records = _read_stream(emulator.endpoint)
    versions: dict[str, list[int]] = defaultdict(list)
    for record in records:
        image = record["dynamodb"]["NewImage"]
        versions[image["pk"]["S"]].append(int(image["ver"]["N"]))
    assert len(records) == len(changes)
    assert len({r["eventID"] for r in records}) == len(changes)
    assert dict(versions) == {f"item-{i:02d}": list(range(1, VERSIONS + 1)) for i in range(ITEMS)}


@pytest.mark.unit
def test_next_batch_ends_before_a_partition_key_repeats() -> None:
    queue = deque([("a", b"1"), ("b", b"1"), ("c", b"1"), ("b", b"2"), ("d", b"1")])

    assert _next_batch(queue) == [("a", b"1"), ("b", b"1"), ("c", b"1")]


@pytest.mark.unit
def test_next_batch_keeps_to_the_put_records_limits() -> None:
    many = deque((f"k{i}", b"x") for i in range(PUT_RECORDS_MAX + 10))
    big = PUT_RECORDS_MAX_BYTES // 3
    large = deque((f"k{i}", b"x" * big) for i in range(5))

    assert len(_next_batch(many)) == PUT_RECORDS_MAX
    assert len(_next_batch(large)) == 2  # a third would pass 5 MiB with the keys
    huge = ("k", b"x" * (PUT_RECORDS_MAX_BYTES + 1))
    assert _next_batch(deque([huge])) == [huge]  # alone; Kinesis will say what is wrong
