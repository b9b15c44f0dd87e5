"""Ports: the small interfaces the pure core talks to. Adapters implement them; fakes too.

Contracts are stated here once; every implementation (S3, in-memory, …) must honour them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol


class ObjectStore(Protocol):
    """A bucket of immutable objects addressed by key.

    ``put`` returns only after the object is durable (S3: the PUT returned 200); it raises on
    any failure, and callers must not checkpoint past data whose ``put`` has not returned.
    Putting the same key again replaces the object (this is what makes replays idempotent).
    """

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Store ``data`` under ``key`` durably, or raise."""
        ...

    def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """Read an object (or the inclusive ``byte_range``); raise ``KeyError`` if missing."""
        ...

    def size(self, key: str) -> int:
        """Object size in bytes; raise ``KeyError`` if missing."""
        ...

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix`` in lexicographic order."""
        ...

    def delete(self, key: str) -> None:
        """Remove an object (no error if it is already gone)."""
        ...


class CheckpointStore(Protocol):
    """Per-shard checkpoints of one consumer application.

    ``save`` is called only after every record up to and including ``sequence_number`` is
    durable; ``load`` returns the last saved value, or ``None`` to start from the beginning.
    """

    def load(self, shard_id: str) -> str | None:
        """The last checkpointed sequence number of the shard, if any."""
        ...

    def save(self, shard_id: str, sequence_number: str) -> None:
        """Persist the checkpoint (raise on failure)."""
        ...

    def mark_finished(self, shard_id: str, end: str | None) -> None:
        """Record that the shard is closed and fully processed (children may start).

        ``end`` is the shard's ending sequence number as the consumer saw it when it finished
        (``None`` if it had none); a closed shard's end never moves in Kinesis, so a later,
        larger ending sequence number means records the consumer never read.
        """
        ...

    def is_finished(self, shard_id: str) -> bool:
        """Whether :meth:`mark_finished` was called for the shard."""
        ...

    def finished_end(self, shard_id: str) -> str | None:
        """The ``end`` recorded by :meth:`mark_finished` (``None``: not finished or no end)."""
        ...


class Metrics(Protocol):
    """Counters and gauges; names are lower_snake_case, dimensions small and bounded."""

    def count(self, name: str, value: float = 1, dims: Mapping[str, str] | None = None) -> None:
        """Add ``value`` to a counter."""
        ...

    def gauge(self, name: str, value: float, dims: Mapping[str, str] | None = None) -> None:
        """Record the current value of a gauge."""
        ...

    def flush(self) -> None:
        """Emit what was gathered (no-op for sinks that emit at once)."""
        ...
