"""Split and merge a stream's shards while a test runs (on the emulator: synchronous).

One home for the resharding steps of the consumer's reshard test and the fault tests: the
open shards in hash-key order, a split in the middle of a shard's range, a merge of two
adjacent shards, each returning the shards it created.
"""

from __future__ import annotations

from typing import Any


def shards(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """Every shard of the stream (closed ones too), in the order Kinesis lists them."""
    out: list[dict[str, Any]] = []
    for page in kinesis.get_paginator("list_shards").paginate(StreamName=stream):
        out.extend(page["Shards"])
    return out


def open_shards(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """The open shards (no ending sequence number), by starting hash key."""
    return sorted(
        (
            s
            for s in shards(kinesis, stream)
            if "EndingSequenceNumber" not in s["SequenceNumberRange"]
        ),
        key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]),
    )


def split_in_half(kinesis: Any, stream: str, shard: dict[str, Any]) -> list[dict[str, Any]]:
    """Split ``shard`` at the middle of its hash-key range; its two children, low half first."""
    low, high = (int(shard["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
    kinesis.split_shard(
        StreamName=stream, ShardToSplit=shard["ShardId"], NewStartingHashKey=str((low + high) // 2)
    )
    children = [
        s for s in open_shards(kinesis, stream) if s.get("ParentShardId") == shard["ShardId"]
    ]
    if len(children) != 2:
        raise AssertionError(f"split of {shard['ShardId']} gave {len(children)} children")
    return children


def merge(kinesis: Any, stream: str, low: dict[str, Any], high: dict[str, Any]) -> dict[str, Any]:
    """Merge two adjacent open shards (``low`` below ``high``); the merged shard."""
    kinesis.merge_shards(
        StreamName=stream, ShardToMerge=low["ShardId"], AdjacentShardToMerge=high["ShardId"]
    )
    return next(
        s
        for s in open_shards(kinesis, stream)
        if s.get("ParentShardId") == low["ShardId"]
        and s.get("AdjacentParentShardId") == high["ShardId"]
    )
