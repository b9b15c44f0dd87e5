"""moto's Kinesis shard reads in O(records returned), not O(records in the shard).

moto's ``Shard.get_records`` walks the shard's whole record dict from the first record on every
GetRecords call, and ``get_min/max_sequence_number`` copy every key into a list (ListShards,
DescribeStream, LATEST iterators call them). Under sustained load a shard holds hundreds of
thousands of records and every poll of the KCL, the local runner and the Firehose bridge became
a full scan under the GIL: ``changelake bench load`` profiled this as the emulator's first
bottleneck (docs/adr/0037). The patched methods keep moto's results exactly (a differential
test checks them against the originals): a shard's records are a dict whose keys (sequence
numbers) are inserted in increasing order, so a sorted list of the keys, extended with the new
tail as records arrive, finds the first record after a sequence number by bisection.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from typing import Any

from moto.kinesis import models

_KEYS_ATTR = "_changelake_sorted_keys"
_lock = threading.Lock()
_keys_lock = threading.Lock()
_installed = False


def _sorted_keys(shard: models.Shard) -> list[int]:
    """The shard's sequence numbers in order (cached, extended by the records added since)."""
    records = shard.records
    keys: list[int] | None = getattr(shard, _KEYS_ATTR, None)
    if keys is not None and len(keys) == len(records):
        return keys
    if keys is not None and len(keys) < len(records):
        added = len(records) - len(keys)
        tail = list(itertools.islice(reversed(records), added))
        tail.reverse()
        if (not keys or tail[0] > keys[-1]) and all(a < b for a, b in itertools.pairwise(tail)):
            keys.extend(tail)
            return keys
    # First call, records removed or inserted out of order: rebuild (O(n), rare).
    keys = sorted(records)
    setattr(shard, _KEYS_ATTR, keys)
    return keys


def get_records(
    self: models.Shard, last_sequence_id: str, limit: int | None
) -> tuple[list[Any], int, int]:
    """moto's ``Shard.get_records``: records after ``last_sequence_id`` (at most ``limit``)."""
    last = int(last_sequence_id)
    records = self.records
    if not records:
        return [], last, 0
    with _keys_lock:  # the executor's threads serve GetRecords of one shard concurrently
        keys = _sorted_keys(self)
    start = bisect.bisect_right(keys, last)
    end = len(keys) if not limit else min(len(keys), start + limit)
    results = [records[k] for k in keys[start:end]]
    if not results:
        return [], last, 0
    newest = records[keys[-1]]
    millis_behind = int((newest.created_at - results[-1].created_at) * 1000)
    return results, keys[end - 1], millis_behind


def get_min_sequence_number(self: models.Shard) -> int:
    """The shard's first sequence number (0 if empty), without copying its keys."""
    return next(iter(self.records), 0)


def get_max_sequence_number(self: models.Shard) -> int:
    """The shard's last sequence number (0 if empty), without copying its keys."""
    return next(reversed(self.records), 0)


def install() -> None:
    """Patch moto's Kinesis shard (idempotent; affects every moto server in this process)."""
    global _installed
    with _lock:
        if _installed:
            return
        models.Shard.get_records = get_records  # type: ignore[method-assign]
        models.Shard.get_min_sequence_number = get_min_sequence_number  # type: ignore[method-assign]
        models.Shard.get_max_sequence_number = get_max_sequence_number  # type: ignore[method-assign]
        _installed = True
