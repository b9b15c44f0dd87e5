"""Resharding on the emulator behaves as Kinesis does (issue 18, finding 1): over real HTTP."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from changelake_emulator.emulator import Emulator

pytestmark = pytest.mark.aws


def _shards(kinesis: Any, stream: str) -> dict[str, dict[str, Any]]:
    return {s["ShardId"]: s for s in kinesis.list_shards(StreamName=stream)["Shards"]}


def _read_all(kinesis: Any, stream: str, shard_id: str) -> tuple[list[str], bool]:
    """Every record's data of the shard from its start, and whether the shard ended."""
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    data: list[str] = []
    for _ in range(20):
        resp = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
        data += [r["Data"].decode() for r in resp["Records"]]
        iterator = resp.get("NextShardIterator")
        if iterator is None:
            return data, True
        if not resp["Records"]:
            return data, False
    raise AssertionError("shard never drained")


def _put(kinesis: Any, stream: str, hash_key: int, data: str) -> tuple[str, str]:
    resp = kinesis.put_record(
        StreamName=stream, Data=data.encode(), PartitionKey="p", ExplicitHashKey=str(hash_key)
    )
    return resp["ShardId"], resp["SequenceNumber"]


def test_emulator_routes_writes_to_open_children_after_split_and_merge(emulator: Emulator) -> None:
    stream = emulator.settings.stream_name
    kinesis = boto3.client("kinesis")
    parent_id, parent = min(
        _shards(kinesis, stream).items(),
        key=lambda kv: int(kv[1]["HashKeyRange"]["StartingHashKey"]),
    )
    low = int(parent["HashKeyRange"]["StartingHashKey"])
    high = int(parent["HashKeyRange"]["EndingHashKey"])
    middle = (low + high + 1) // 2
    # GIVEN records on the parent, one at its inclusive EndingHashKey
    before = [
        _put(kinesis, stream, key, f"before-{i}") for i, key in enumerate((low, middle, high))
    ]
    assert {shard for shard, _ in before} == {parent_id}
    # WHEN the parent is split
    kinesis.split_shard(StreamName=stream, ShardToSplit=parent_id, NewStartingHashKey=str(middle))
    after = [_put(kinesis, stream, key, f"after-{i}") for i, key in enumerate((low, middle, high))]
    shards = _shards(kinesis, stream)
    children = sorted(
        (sid for sid, s in shards.items() if s.get("ParentShardId") == parent_id),
        key=lambda sid: int(shards[sid]["HashKeyRange"]["StartingHashKey"]),
    )
    # THEN writes go to the open children by hash key, none to the closed parent
    assert [shard for shard, _ in after] == [children[0], children[1], children[1]]
    ending = shards[parent_id]["SequenceNumberRange"]["EndingSequenceNumber"]
    assert ending == before[-1][1]
    # AND the parent keeps exactly its own records and then ends (null NextShardIterator)
    assert _read_all(kinesis, stream, parent_id) == (["before-0", "before-1", "before-2"], True)
    assert _read_all(kinesis, stream, children[0]) == (["after-0"], False)
    assert _read_all(kinesis, stream, children[1]) == (["after-1", "after-2"], False)
    # AND a child's sequence numbers come after its parent's, as in Kinesis
    assert min(int(seq) for _, seq in after) > int(ending)
    # WHEN the children are merged back
    kinesis.merge_shards(
        StreamName=stream, ShardToMerge=children[0], AdjacentShardToMerge=children[1]
    )
    merged = [_put(kinesis, stream, key, f"merged-{i}") for i, key in enumerate((low, high))]
    shards = _shards(kinesis, stream)
    (merged_id,) = {shard for shard, _ in merged}
    assert {shards[merged_id]["ParentShardId"], shards[merged_id]["AdjacentParentShardId"]} == set(
        children
    )
    # THEN the closed children keep their final ending sequence numbers and nothing is copied
    assert shards[parent_id]["SequenceNumberRange"]["EndingSequenceNumber"] == ending
    for child in children:
        assert "EndingSequenceNumber" in shards[child]["SequenceNumberRange"]
    assert _read_all(kinesis, stream, children[0]) == (["after-0"], True)
    assert _read_all(kinesis, stream, merged_id) == (["merged-0", "merged-1"], False)


def test_emulator_restarts_on_the_same_port_at_once() -> None:
    # issue 18, finding 8: a clean stop left the port in TIME_WAIT ("Address already in use"
    # for ~40 s); the server socket uses SO_REUSEADDR
    first = Emulator(0, firehose_poll_seconds=0.2).start()
    port = first.port
    try:
        kinesis = boto3.client("kinesis", endpoint_url=first.endpoint, region_name="us-east-1")
        for _ in range(5):  # connections the server closes on stop
            kinesis.list_shards(StreamName=first.settings.stream_name)
    finally:
        first.stop()
    again = Emulator(port, firehose_poll_seconds=0.2).start()
    try:
        assert again.endpoint.endswith(f":{port}")
        kinesis = boto3.client("kinesis", endpoint_url=again.endpoint, region_name="us-east-1")
        assert kinesis.list_shards(StreamName=again.settings.stream_name)["Shards"]
    finally:
        again.stop()
