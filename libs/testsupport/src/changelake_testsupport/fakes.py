"""In-memory fakes of the ports, for pure unit tests (no network)."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping


class InMemoryObjectStore:
    """A dict-backed :class:`~changelake.ports.ObjectStore`; ``fail_next`` injects put failures."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.puts: list[str] = []
        self.fail_next = 0
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Store, or raise ``OSError`` while ``fail_next`` > 0."""
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                raise OSError(f"injected put failure for {key}")
            self.objects[key] = bytes(data)
            self.puts.append(key)

    def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """Read an object or a byte range."""
        data = self.objects[key]
        if byte_range is None:
            return data
        return data[byte_range[0] : byte_range[1] + 1]

    def size(self, key: str) -> int:
        """Size of an object."""
        return len(self.objects[key])

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under prefix, sorted."""
        return iter(sorted(k for k in self.objects if k.startswith(prefix)))

    def delete(self, key: str) -> None:
        """Remove an object if present."""
        with self._lock:
            self.objects.pop(key, None)


class InMemoryCheckpointStore:
    """A dict-backed :class:`~changelake.ports.CheckpointStore` recording every save."""

    def __init__(self) -> None:
        self.checkpoints: dict[str, str] = {}
        self.history: list[tuple[str, str]] = []
        self.finished: dict[str, str | None] = {}

    def load(self, shard_id: str) -> str | None:
        """Last saved sequence number."""
        return self.checkpoints.get(shard_id)

    def save(self, shard_id: str, sequence_number: str) -> None:
        """Save and record."""
        self.checkpoints[shard_id] = sequence_number
        self.history.append((shard_id, sequence_number))

    def mark_finished(self, shard_id: str, end: str | None) -> None:
        """Mark the shard finished at ``end``."""
        self.finished[shard_id] = end

    def is_finished(self, shard_id: str) -> bool:
        """Whether the shard is finished."""
        return shard_id in self.finished

    def finished_end(self, shard_id: str) -> str | None:
        """The end recorded when the shard finished."""
        return self.finished.get(shard_id)


class RecordingMetrics:
    """A :class:`~changelake.ports.Metrics` that keeps totals for assertions."""

    def __init__(self) -> None:
        self.counters: dict[str, float] = defaultdict(float)
        self.gauges: dict[str, float] = {}

    def count(self, name: str, value: float = 1, dims: Mapping[str, str] | None = None) -> None:
        """Add to a counter (dimensions ignored)."""
        self.counters[name] += value

    def gauge(self, name: str, value: float, dims: Mapping[str, str] | None = None) -> None:
        """Set a gauge."""
        self.gauges[name] = value

    def flush(self) -> None:
        """Nothing to emit."""
