"""Resharding as real Kinesis does it, patched into moto's in-process Kinesis model.

moto 5 gets four things wrong that lose or reorder data once a shard is split or merged
(issue 18, finding 1):

* ``put_record`` routes a hash key to the *first* shard whose range holds it, open or closed,
  so after ``SplitShard`` the closed parent keeps receiving records (its "ending" sequence
  number moves on) and a consumer that finished the parent never sees them;
* ``SplitShard`` moves the parent's records into the children and ``MergeShards`` copies
  them, so records are read twice at new positions; real Kinesis leaves them in the parent;
* a hash key equal to a shard's ``EndingHashKey`` (inclusive in Kinesis) matches no shard;
* sequence numbers restart at 1 in every shard, so a child's records sort before its
  parent's; in Kinesis they grow over the stream's life, and ``put_record`` is not
  thread-safe (two concurrent puts can get the same number and one record is overwritten).

And ``GetRecords`` on a closed shard never ends: Kinesis answers a null
``NextShardIterator`` once the reader is past the shard's last record, which is how the KCL
(and the local runner) knows the shard is finished.

:func:`install` replaces the affected methods on moto's classes (process-wide, idempotent):
the moto server runs in the emulator's process, so the server serves the patched model.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from moto.kinesis import models
from moto.kinesis.exceptions import InvalidArgumentError
from moto.kinesis.utils import decompose_shard_iterator
from moto.utilities.utils import md5_hash

_lock = threading.RLock()
_installed = False
_SEQ_ATTR = "_changelake_last_sequence"


def _hash_key(partition_key: str, explicit_hash_key: str | None) -> int:
    if not isinstance(partition_key, str) or len(partition_key) > 256:
        raise InvalidArgumentError("partition_key")
    if explicit_hash_key:
        key = int(explicit_hash_key)
        if not 0 <= key < 2**128:
            raise InvalidArgumentError("explicit_hash_key")
        return key
    return int(md5_hash(partition_key.encode("utf-8")).hexdigest(), 16)


def open_shard_for_key(
    stream: models.Stream, partition_key: str, explicit_hash_key: str | None
) -> models.Shard:
    """The one open shard whose (inclusive) hash key range holds the record's hash key."""
    key = _hash_key(partition_key, explicit_hash_key)
    for shard in stream.shards.values():
        if shard.is_open and shard.starting_hash <= key <= shard.ending_hash:
            return shard
    raise InvalidArgumentError(f"no open shard holds hash key {key}")


def _next_sequence(stream: models.Stream) -> int:
    last: int | None = getattr(stream, _SEQ_ATTR, None)
    if last is None:  # streams created before install(): continue after their records
        last = max((s.get_max_sequence_number() for s in stream.shards.values()), default=0)
    last += 1
    setattr(stream, _SEQ_ATTR, last)
    return last


def _put_record(
    self: models.Stream, partition_key: str, explicit_hash_key: str, data: str
) -> tuple[str, str]:
    with _lock:
        shard = open_shard_for_key(self, partition_key, explicit_hash_key)
        sequence = _next_sequence(self)
        shard.records[sequence] = models.Record(partition_key, data, sequence, explicit_hash_key)
    # moto's Lambda event source mappings (unused by changelake) are not forwarded.
    return str(sequence), shard.shard_id


def _new_shard_id(stream: models.Stream) -> int:
    return max(s._shard_id for s in stream.shards.values()) + 1


def _split_shard(self: models.Stream, shard_to_split: str, new_starting_hash_key: str) -> None:
    with _lock:
        shard = self.shards[shard_to_split]
        start = int(new_starting_hash_key)
        if not shard.starting_hash < start <= shard.ending_hash:
            raise InvalidArgumentError(
                message=f"NewStartingHashKey {start} is not within the hash key range of "
                f"shard {shard_to_split} ({shard.starting_hash}..{shard.ending_hash})"
            )
        if not shard.is_open:
            raise InvalidArgumentError(
                message=f"Shard {shard_to_split} has already been merged or split"
            )
        first = _new_shard_id(self)
        for offset, (low, high) in enumerate(
            ((shard.starting_hash, start - 1), (start, shard.ending_hash))
        ):
            child = models.Shard(first + offset, low, high, parent=shard.shard_id)
            child.records = OrderedDict()
            self.shards[child.shard_id] = child
        shard.is_open = False  # its records stay where they are: readers drain the parent


def _merge_shards(self: models.Stream, shard_to_merge: str, adjacent_shard_to_merge: str) -> None:
    with _lock:
        first = self.shards[shard_to_merge]
        second = self.shards[adjacent_shard_to_merge]
        if not (first.is_open and second.is_open):
            raise InvalidArgumentError(message="a shard to merge has already been merged or split")
        low, high = sorted((first, second), key=lambda s: s.starting_hash)
        if low.ending_hash + 1 != high.starting_hash:
            raise InvalidArgumentError(adjacent_shard_to_merge)
        child = models.Shard(
            _new_shard_id(self),
            low.starting_hash,
            high.ending_hash,
            parent=first.shard_id,
            adjacent_parent=second.shard_id,
        )
        self.shards[child.shard_id] = child
        first.is_open = False
        second.is_open = False


def _get_records(
    self: models.KinesisBackend, stream_arn: str | None, shard_iterator: str, limit: int | None
) -> tuple[str | None, list[Any], int]:
    stream_name, shard_id, _ = decompose_shard_iterator(shard_iterator)
    next_iterator, records, millis_behind = _original_get_records(
        self, stream_arn, shard_iterator, limit
    )
    stream = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
    shard = stream.get_shard(shard_id)
    if not shard.is_open:
        _, _, position = decompose_shard_iterator(next_iterator)
        if int(position) >= shard.get_max_sequence_number():
            return None, records, millis_behind  # past the closed shard's end: SHARD_END
    return next_iterator, records, millis_behind


_original_get_records = models.KinesisBackend.get_records


def install() -> None:
    """Patch moto's Kinesis model (idempotent; affects every moto server in this process)."""
    global _installed
    with _lock:
        if _installed:
            return
        models.Stream.get_shard_for_key = open_shard_for_key  # type: ignore[method-assign,assignment]
        models.Stream.put_record = _put_record  # type: ignore[method-assign]
        models.Stream.split_shard = _split_shard  # type: ignore[method-assign]
        models.Stream.merge_shards = _merge_shards  # type: ignore[method-assign]
        models.KinesisBackend.get_records = _get_records  # type: ignore[method-assign,assignment]
        _installed = True
