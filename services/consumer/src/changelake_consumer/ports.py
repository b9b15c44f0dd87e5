"""The consumer's ports: what its runner needs from Kinesis and from the lease table.

Implemented by :mod:`changelake_consumer.adapters` (boto3) and by fakes in tests; the pure
runner (:mod:`changelake_consumer.local_runner`) knows only these (ADR 0029).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from changelake.events import Position


class IteratorExpiredError(Exception):
    """The shard iterator expired (5 minutes unused): open a new one after the last record."""


class ThrottledError(Exception):
    """The shard's read budget is spent (ProvisionedThroughputExceeded): wait and retry."""


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """One shard as ListShards describes it."""

    shard_id: str
    parent_ids: tuple[str, ...]
    ending_sequence: str | None

    @property
    def closed(self) -> bool:
        """A closed shard (split or merged) receives no new records."""
        return self.ending_sequence is not None


@dataclass(frozen=True, slots=True)
class Page:
    """One GetRecords answer: records with their positions, the next iterator, the lag."""

    records: list[tuple[bytes, Position]]
    next_iterator: str | None
    millis_behind: int


class LeaseLostError(RuntimeError):
    """A conditional write found another owner (or none): this runner no longer owns the shard."""


@dataclass(frozen=True, slots=True)
class LeaseItem:
    """One row of the table as a scan sees it (``shard_id`` is a worker id for heartbeats)."""

    shard_id: str
    owner: str | None
    counter: int
    finished: bool
    ending_sequence: str | None
    is_worker: bool


class ShardReader(Protocol):
    """What the runner needs from Kinesis (adapter: ``adapters.kinesis_shards``)."""

    def list_shards(self) -> list[ShardInfo]:
        """Every shard of the stream."""
        ...

    def iterator(self, shard_id: str, after: str | None, initial_position: str) -> str:
        """An iterator after ``after`` or at ``initial_position``."""
        ...

    def get_records(self, shard_id: str, iterator: str, limit: int) -> Page:
        """One page of records."""
        ...


class ShardLeases(Protocol):
    """Shard ownership among runners (adapter: ``adapters.dynamodb_checkpoints``)."""

    worker_id: str | None

    def heartbeat(self) -> None:
        """Tell the other runners this one is alive."""
        ...

    def retire(self) -> None:
        """Remove this runner's heartbeat (clean stop)."""
        ...

    def scan(self) -> list[LeaseItem]:
        """Every shard lease and runner heartbeat of the stream."""
        ...

    def acquire(self, shard_id: str, expired: LeaseItem | None) -> bool:
        """Take a free lease, or an ``expired`` one as observed; False if another was faster."""
        ...

    def renew(self, shard_id: str) -> None:
        """Renew an owned lease (raise LeaseLostError if it is no longer ours)."""
        ...

    def release(self, shard_id: str) -> None:
        """Give an owned lease up."""
        ...
