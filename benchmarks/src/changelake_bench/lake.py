"""A seeded lake on local disk in two layouts, cached by its parameters.

* ``ours/changes/persons/dt=YYYY-MM-DD/hour=HH/<shard>-<first>-<last>.parquet`` — the
  consumer's column layout and writer, zstd, event-time partitions.
* ``firehose/YYYY/MM/DD/HH/persons-raw-1-YYYY-MM-DD-HH-MM-SS-<n>`` — the classic
  Firehose-to-S3 design: the raw Kinesis JSON records, one per line, under *arrival-time*
  prefixes, no Hive partitions.

Both layouts cut a new object every ``file_minutes`` (Firehose's buffer interval; the
consumer flushing on age with the same setting), so they differ only in format and
partitioning. A finished lake has ``manifest.json``; anything else is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from changelake.events import Position
from changelake.timeutil import datetime_to_us, us_to_datetime
from changelake_lake.layout import change_object_key, partition_for_us

from changelake_bench.records import SHARD_ID, TABLE, generate

GENERATOR_VERSION = 1  # bump when records.py or the layouts change: invalidates caches
_US_PER_MIN = 60_000_000


@dataclass(frozen=True, slots=True)
class LakeSpec:
    """What the lake holds: ``changes`` changes over ``days`` days ending at ``end``."""

    changes: int = 1_000_000
    days: int = 30
    seed: int = 7
    file_minutes: int = 15
    end: str = "2026-01-31T00:00:00+00:00"

    @property
    def end_us(self) -> int:
        """End of the window, epoch µs."""
        return datetime_to_us(datetime.fromisoformat(self.end))

    @property
    def start_us(self) -> int:
        """Start of the window, epoch µs."""
        return self.end_us - self.days * 86_400 * 1_000_000

    def key(self, writer: str) -> str:
        """Cache key: every parameter, the generator version and the writer used."""
        blob = json.dumps(
            {**asdict(self), "v": GENERATOR_VERSION, "writer": writer}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Lake:
    """A built lake: its root, both layout roots and the build manifest."""

    root: Path
    manifest: dict[str, Any]

    @property
    def ours(self) -> Path:
        """Root of our layout (``changes/persons/dt=…``)."""
        return self.root / "ours" / "changes" / TABLE

    @property
    def firehose(self) -> Path:
        """Root of the Firehose-to-JSON layout (``YYYY/MM/DD/HH/…``)."""
        return self.root / "firehose"


Writer = Callable[[Sequence[tuple[bytes, Position]]], bytes]


def our_writer() -> tuple[str, Writer]:
    """The consumer's records→Parquet function, named by a digest of the consumer's source.

    A changed writer changes the name, which invalidates cached lakes.
    """
    from changelake_bench.consumer_paths import ours_function

    return f"consumer-{_consumer_fingerprint()}", ours_function()


def build(spec: LakeSpec, cache_dir: Path, say: Callable[[str], None] | None = None) -> Lake:
    """Return the cached lake for ``spec``, generating it first if needed."""
    say = say or (lambda _m: None)
    writer_name, writer = our_writer()
    root = cache_dir / f"lake-{spec.key(writer_name)}"
    manifest_path = root / "manifest.json"
    if manifest_path.exists():
        return Lake(root, json.loads(manifest_path.read_text()))
    if root.exists():
        shutil.rmtree(root)
    say(f"query: generating lake of {spec.changes:,} changes over {spec.days} days → {root}")
    started = time.perf_counter()
    ours_root = root / "ours"
    fh_root = root / "firehose"
    window_us = spec.file_minutes * _US_PER_MIN
    span_us = spec.end_us - spec.start_us

    ours_buf: list[tuple[bytes, Position]] = []
    ours_window: int | None = None
    ours_first_us = 0
    fh_buf: list[bytes] = []
    fh_window: int | None = None
    counts = {"ours_files": 0, "firehose_files": 0, "changes": 0}

    def flush_ours() -> None:
        if not ours_buf:
            return
        first, last = ours_buf[0][1], ours_buf[-1][1]
        partition = partition_for_us(ours_first_us)
        key = change_object_key(
            TABLE, partition, first.shard_id, first.sequence_number, last.sequence_number
        )
        target = ours_root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(writer(ours_buf))
        counts["ours_files"] += 1
        ours_buf.clear()

    def flush_firehose(window: int) -> None:
        if not fh_buf:
            return
        opened = us_to_datetime(window)
        name = f"{TABLE}-raw-1-{opened:%Y-%m-%d-%H-%M-%S}-{counts['firehose_files']:08d}"
        target = fh_root / f"{opened:%Y/%m/%d/%H}" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"\n".join(fh_buf) + b"\n")
        counts["firehose_files"] += 1
        fh_buf.clear()

    # The generator's arrival time is event time + 50 ms; Firehose buffers by arrival time.
    for change in generate(spec.changes, seed=spec.seed, start_us=spec.start_us, span_us=span_us):
        counts["changes"] += 1
        w = change.event_time_us // window_us
        if w != ours_window:
            flush_ours()
            ours_window = w
            ours_first_us = change.event_time_us
        ours_buf.append((change.data, change.position))
        arrival = change.position.arrival_time_us or change.event_time_us
        aw = arrival // window_us
        if aw != fh_window:
            if fh_window is not None:
                flush_firehose(fh_window * window_us)
            fh_window = aw
        fh_buf.append(change.data)
        if counts["changes"] % 100_000 == 0:
            say(f"query: … {counts['changes']:,} changes")
    flush_ours()
    if fh_window is not None:
        flush_firehose(fh_window * window_us)
    manifest = {
        "spec": asdict(spec),
        "writer": writer_name,
        "generator_version": GENERATOR_VERSION,
        "seconds_to_build": round(time.perf_counter() - started, 1),
        "built_at": datetime.now(UTC).isoformat(),
        **counts,
        "ours_bytes": _tree_bytes(ours_root),
        "firehose_bytes": _tree_bytes(fh_root),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2))
    say(f"query: lake built in {manifest['seconds_to_build']} s")
    return Lake(root, manifest)


def _consumer_fingerprint() -> str:
    import changelake_consumer

    digest = hashlib.sha256()
    for path in sorted(Path(changelake_consumer.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:8]


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


__all__ = ["SHARD_ID", "Lake", "LakeSpec", "build", "our_writer"]
