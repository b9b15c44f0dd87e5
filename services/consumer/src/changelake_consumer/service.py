"""The consumer's pure core: one :class:`ShardProcessor` per shard, talking only to ports.

Flow per shard: raw records → strict decode (failures quarantined under ``errors/``) → one
column buffer per (table, event-time partition) → Parquet objects under ``changes/`` whose keys
come from the shard id and the first/last sequence number of their rows → the sequence number
that is safe to checkpoint.

Ordering rules (docs/architecture.md "Guarantees", docs/aws-behaviour.md "KCL and amazon-kclpy"):

* **Checkpoint**: never past a record whose row is not durable. With several partition buffers
  open, the safe checkpoint is the sequence number *just before* the oldest unflushed record;
  with nothing buffered it is the last record seen.
* **No duplicates on replay**: before writing a buffer the processor looks at the objects this
  shard already wrote in that partition (listed once per partition, then tracked in memory) and
  leaves out every row whose sequence number lies inside an existing object's range — each such
  row is already durable. A replay of an already-written range therefore writes nothing, and a
  replay that overlaps partly writes only the missing rows; where cut points coincide the key is
  the same and the PUT overwrites.
* **Write fencing** (ADR 0043): a runner that shares shards with others passes a ``fence``, run
  right before every PUT attempt; it raises :class:`~changelake_consumer.ports.LeaseLostError`
  once another worker owns the shard, and the processor then writes nothing more (the caller
  drops its buffers; the new owner reads again from the last checkpoint). After the PUT the fence
  runs again: an owner that lost the lease while its PUT was in flight (the only window left)
  is counted (``writes_after_lease_lost``) and logged with the key, as its rows may be twice at
  rest (the views dedupe by ``event_id``).
* **Failed writes** are retried with exponential backoff within one time budget
  (``write_timeout_s``; the S3 client's own retries are off, so every attempt is counted here)
  and then raise :class:`WriteError`; the buffer is kept and no checkpoint moves, so the caller
  can exit and the records are read again.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
from changelake.events import DecodeFailure, Position
from changelake.ports import Metrics, ObjectStore
from changelake.privacy import PrivacyPolicy
from changelake.table_name import check_table_name
from changelake.timeutil import now_us, us_to_datetime
from changelake_lake import layout, schema
from changelake_lake.column_policy import ChangeColumns, PreparedRow
from changelake_lake.layout import Partition

from changelake_consumer.parquet import table_to_parquet
from changelake_consumer.ports import LeaseLostError
from changelake_consumer.rows import prepare

log = logging.getLogger(__name__)

ERROR_SOURCE = "consumer"
PARQUET_TYPE = "application/vnd.apache.parquet"
JSONL_TYPE = "application/x-ndjson"
_MAX_BACKOFF_S = 8.0
_MIN_BACKOFF_S = 0.01  # never a hot loop against a failing S3, whatever the setting
_HOUR_US = 3_600_000_000
SEQUENCE_INDEX = [name for name, _ in schema.SYSTEM_COLUMNS].index("sequence_number")


class WriteError(RuntimeError):
    """An object could not be written after every retry: stop, do not checkpoint."""


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """When buffers flush and how writes are retried (defaults tuned for freshness)."""

    max_rows: int = 20_000
    max_bytes: int = 16 * 1024 * 1024
    max_age_s: float = 2.0
    max_buffered_bytes: int = 64 * 1024 * 1024
    max_open_partitions: int = 48
    write_timeout_s: float = 60.0
    write_backoff_s: float = 0.5

    @classmethod
    def from_settings(cls, settings: Any) -> BatchPolicy:
        """Build from :class:`~changelake_consumer.settings.ConsumerSettings`."""
        return cls(
            max_rows=settings.flush_rows,
            max_bytes=settings.flush_bytes,
            max_age_s=settings.flush_age_s,
            max_buffered_bytes=settings.max_buffered_bytes,
            max_open_partitions=settings.max_open_partitions,
            write_timeout_s=settings.write_timeout_s,
            write_backoff_s=settings.write_backoff_s,
        )


@dataclass(slots=True)
class _Buffer:
    table: str
    partition: Partition
    opened_at: float
    first_index: int
    before_first: str | None
    columns: ChangeColumns = field(default_factory=ChangeColumns)
    sequences: list[int] = field(default_factory=list)
    nbytes: int = 0


@dataclass(slots=True)
class _Written:
    """Sequence ranges this shard already has objects for under one prefix."""

    ranges: list[tuple[int, int]]
    high: int


def _seq(text: str) -> int:
    return int(text)


class ShardProcessor:
    """Turns one shard's records into durable Parquet objects and a safe checkpoint.

    Not thread-safe: one processor per shard, driven by one thread (KCL's model).
    """

    def __init__(
        self,
        shard_id: str,
        store: ObjectStore,
        metrics: Metrics,
        policy: BatchPolicy | None = None,
        *,
        expected_table: str | None = None,
        privacy: PrivacyPolicy | None = None,
        start_after: str | None = None,
        fence: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.shard_id = shard_id
        self._fence = fence
        self._store = store
        self._metrics = metrics
        self._policy = policy or BatchPolicy()
        self._expected_table = expected_table
        self._privacy = privacy
        self._clock = clock
        self._sleep = sleep
        self._buffers: dict[tuple[str, Partition], _Buffer] = {}
        self._written: dict[str, _Written] = {}
        self._index = 0
        self._last_seq: str | None = start_after
        self._buffered_bytes = 0
        self._partitions: dict[int, Partition] = {}

    # -- public API ----------------------------------------------------------------------

    @property
    def last_sequence(self) -> str | None:
        """Sequence number of the last record handed to :meth:`process` (or the start)."""
        return self._last_seq

    @property
    def buffered_rows(self) -> int:
        """Rows waiting in buffers (not yet durable)."""
        return sum(b.columns.rows for b in self._buffers.values())

    def safe_checkpoint(self) -> str | None:
        """The sequence number before the oldest unflushed record (``None``: nothing safe yet)."""
        if not self._buffers:
            return self._last_seq
        oldest = min(self._buffers.values(), key=lambda b: b.first_index)
        return oldest.before_first

    def process(
        self, records: Iterable[tuple[bytes, Position]], now: float | None = None
    ) -> str | None:
        """Buffer a batch (possibly empty), flush what is due, return the safe checkpoint.

        Bad records are written to ``errors/`` before this returns; a write that keeps failing
        raises :class:`WriteError` with every buffer intact.
        """
        failures: list[DecodeFailure] = []
        count = 0
        for raw, position in records:
            count += 1
            row = prepare(raw, position, self._expected_table, self._privacy)
            if isinstance(row, DecodeFailure):
                failures.append(row)
            else:
                self._add(row, len(raw), now)
            self._last_seq = position.sequence_number
            self._index += 1
        if count:
            self._metrics.count("records_in", count)
        if failures:
            self._quarantine(failures)
        self._flush_due(self._now(now))
        return self.safe_checkpoint()

    def flush_all(self) -> str | None:
        """Flush every buffer (shard end, shutdown); return the checkpoint (last record seen)."""
        for key in sorted(self._buffers, key=lambda k: self._buffers[k].first_index):
            self._flush(key)
        return self.safe_checkpoint()

    def drop(self) -> None:
        """Forget every buffer without writing (lease lost: another worker owns the shard)."""
        dropped = self.buffered_rows
        self._buffers.clear()
        self._buffered_bytes = 0
        if dropped:
            log.info("dropped buffers", extra={"shard_id": self.shard_id, "rows": dropped})

    # -- buffering -----------------------------------------------------------------------

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    def _add(self, row: PreparedRow, size: int, now: float | None) -> None:
        hour = row.event_time_us // _HOUR_US
        partition = self._partitions.get(hour)
        if partition is None:  # formatting dates per record costs more than the rest of _add
            if len(self._partitions) > 4096:
                self._partitions.clear()
            partition = self._partitions[hour] = layout.partition_for_us(row.event_time_us)
        key = (row.table, partition)
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = _Buffer(
                table=row.table,
                partition=partition,
                opened_at=self._now(now),
                first_index=self._index,
                before_first=self._last_seq,
            )
        buf.columns.add(row)
        buf.sequences.append(_seq(row.system[SEQUENCE_INDEX]))
        buf.nbytes += size
        self._buffered_bytes += size
        if buf.columns.rows >= self._policy.max_rows or buf.nbytes >= self._policy.max_bytes:
            self._flush(key)

    def _flush_due(self, now: float) -> None:
        policy = self._policy
        for key in [k for k, b in self._buffers.items() if now - b.opened_at >= policy.max_age_s]:
            self._flush(key)
        while self._buffers and (
            self._buffered_bytes > policy.max_buffered_bytes
            or len(self._buffers) > policy.max_open_partitions
        ):
            oldest = min(self._buffers, key=lambda k: self._buffers[k].first_index)
            self._flush(oldest)

    # -- writing -------------------------------------------------------------------------

    def _flush(self, key: tuple[str, Partition]) -> None:
        buf = self._buffers[key]
        prefix = layout.changes_partition_prefix(buf.table, buf.partition)
        table = buf.columns.to_table()
        sequences = buf.sequences
        keep = self._not_yet_written(prefix, sequences)
        skipped = len(sequences) - (len(keep) if keep is not None else len(sequences))
        if keep is not None:
            table = table.filter(pa.array([i in keep for i in range(len(sequences))]))
            sequences = [sequences[i] for i in sorted(keep)]
        if sequences:
            texts = table.column("sequence_number").to_pylist()
            first_i = min(range(len(sequences)), key=sequences.__getitem__)
            last_i = max(range(len(sequences)), key=sequences.__getitem__)
            first, last = sequences[first_i], sequences[last_i]
            first_text, last_text = str(texts[first_i]), str(texts[last_i])
            object_key = layout.change_object_key(
                buf.table, buf.partition, self.shard_id, first_text, last_text
            )
            privacy = self._privacy.metadata(buf.table) if self._privacy is not None else None
            data = table_to_parquet(table, privacy)
            self._put(object_key, data, PARQUET_TYPE)
            self._remember(prefix, first, last)
            self._metrics.count("rows_written", table.num_rows)
            self._metrics.count("files_written", 1)
            self._metrics.count("bytes_written", len(data))
            log.debug("wrote", extra={"key": object_key, "rows": table.num_rows})
        if skipped:
            self._metrics.count("duplicate_rows_skipped", skipped)
        if buf.columns.number_text_values:
            self._metrics.count("number_text_values", buf.columns.number_text_values)
        if buf.columns.collisions:
            self._metrics.count("column_collisions", buf.columns.collisions)
        del self._buffers[key]
        self._buffered_bytes -= buf.nbytes

    def _written_ranges(self, prefix: str) -> _Written:
        written = self._written.get(prefix)
        if written is None:
            # Listed once per partition: the shard has one owner, so memory is exact afterwards.
            ranges = []
            head = prefix + self.shard_id + "-"
            for object_key in self._store.list(head):
                span = _parse_range(object_key[len(head) :])
                if span is not None:
                    ranges.append(span)
            written = self._written[prefix] = _Written(
                ranges, max((hi for _, hi in ranges), default=-1)
            )
        return written

    def _remember(self, prefix: str, first: int, last: int) -> None:
        written = self._written_ranges(prefix)
        written.ranges.append((first, last))
        written.high = max(written.high, last)

    def _not_yet_written(self, prefix: str, sequences: Sequence[int]) -> set[int] | None:
        """Row indexes not covered by an existing object; ``None`` means "all of them"."""
        written = self._written_ranges(prefix)
        if not sequences or min(sequences) > written.high:
            return None
        lo, hi = min(sequences), max(sequences)
        spans = [(a, b) for a, b in written.ranges if b >= lo and a <= hi]
        if not spans:
            return None
        return {i for i, s in enumerate(sequences) if not any(a <= s <= b for a, b in spans)}

    def _put(self, key: str, data: bytes, content_type: str) -> None:
        """PUT with backoff until the write budget is spent (time slept or elapsed, the larger).

        The store's client does not retry by itself
        (:func:`changelake.adapters.s3_store.write_client`), so a failing S3 stops the shard
        after at most ``write_timeout_s`` plus one attempt's connect and read timeouts
        (docs/adr/0019).
        """
        budget = self._policy.write_timeout_s
        started, slept, attempt = self._clock(), 0.0, 0
        while True:
            attempt += 1
            try:
                if self._fence is not None:
                    self._fence()  # still the owner? (LeaseLostError: write nothing)
                self._store.put(key, data, content_type)
            except LeaseLostError:
                log.warning("write fenced: lease lost", extra={"shard_id": self.shard_id})
                self._metrics.count("writes_fenced", 1)
                raise
            except Exception as exc:  # any infrastructure error: bounded retry, then stop
                delay = min(
                    max(self._policy.write_backoff_s * 2 ** (attempt - 1), _MIN_BACKOFF_S),
                    _MAX_BACKOFF_S,
                )
                spent = max(self._clock() - started, slept)
                if spent + delay > budget:
                    raise WriteError(
                        f"writing {key} failed {attempt} times in {spent:.1f} s "
                        f"(write budget {budget:g} s): {exc}"
                    ) from exc
                log.warning(
                    "write failed, retrying",
                    extra={"key": key, "attempt": attempt, "delay_s": delay, "error": str(exc)},
                )
                self._metrics.count("write_retries", 1)
                self._sleep(delay)
                slept += delay
            else:
                self._after_put(key)
                return

    def _after_put(self, key: str) -> None:
        """Run the fence again: was the lease lost while the PUT was in flight?"""
        if self._fence is None:
            return
        try:
            self._fence()
        except LeaseLostError:
            log.error(
                "object written after the lease was lost: its rows may be twice at rest",
                extra={"shard_id": self.shard_id, "key": key},
            )
            self._metrics.count("writes_after_lease_lost", 1)
            raise
        except Exception as exc:  # the check itself failed: the write stands, say so
            log.warning(
                "could not re-check the lease after a write",
                extra={"shard_id": self.shard_id, "key": key, "error": str(exc)},
            )

    # -- quarantine ----------------------------------------------------------------------

    def _quarantine(self, failures: list[DecodeFailure]) -> None:
        groups: dict[tuple[str | None, Partition], list[DecodeFailure]] = {}
        for failure in failures:
            table = failure.table
            if table is not None:
                try:
                    check_table_name(table)
                except ValueError:
                    table = None
            arrival = failure.position.arrival_time_us
            partition = layout.partition_for_us(arrival if arrival is not None else now_us())
            groups.setdefault((table, partition), []).append(failure)
        for (table, partition), candidates in groups.items():
            group = candidates
            prefix = layout.errors_prefix(ERROR_SOURCE, table) + partition.path
            sequences = [_seq(f.position.sequence_number) for f in candidates]
            keep = self._not_yet_written(prefix, sequences)
            if keep is not None:
                group = [f for i, f in enumerate(candidates) if i in keep]
            if not group:
                continue
            first = min(group, key=lambda f: _seq(f.position.sequence_number))
            last = max(group, key=lambda f: _seq(f.position.sequence_number))
            first_seq = first.position.sequence_number
            last_seq = last.position.sequence_number
            key = layout.error_object_key(
                ERROR_SOURCE, table, partition, self.shard_id, first_seq, last_seq
            )
            body = b"".join(_error_line(f) for f in group)
            self._put(key, body, JSONL_TYPE)
            self._remember(prefix, _seq(first_seq), _seq(last_seq))
            self._metrics.count("decode_failures", len(group))
            log.warning(
                "quarantined bad records",
                extra={"key": key, "count": len(group), "first_reason": group[0].reason},
            )


def _error_line(failure: DecodeFailure) -> bytes:
    pos = failure.position
    arrival = (
        us_to_datetime(pos.arrival_time_us).isoformat() if pos.arrival_time_us is not None else None
    )
    return (
        orjson.dumps(
            {
                "reason": failure.reason,
                "data_base64": base64.b64encode(failure.raw).decode("ascii"),
                "shard_id": pos.shard_id,
                "sequence_number": pos.sequence_number,
                "arrival_time": arrival,
                "table": failure.table,
                "error_time": us_to_datetime(now_us()).isoformat(),
            }
        )
        + b"\n"
    )


def _parse_range(name: str) -> tuple[int, int] | None:
    stem = name.rsplit(".", 1)[0]
    first, sep, last = stem.partition("-")
    if not sep or not first.isdigit() or not last.isdigit():
        return None
    return int(first), int(last)
