"""The four ways of turning records into Parquet bytes the consumer bench compares.

Each path is a callable ``(records) -> list[bytes]`` (one Parquet object per call, or several
for the KCL path, which writes through the processor's object store). ``resolve(name)``
returns it, or raises :class:`PathUnavailableError` when amazon_kclpy (the consumer's optional
``kcl`` extra) is not installed.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable, Sequence
from typing import Any

from changelake.events import Position
from changelake.ports import ObjectStore
from changelake_testsupport.fakes import InMemoryObjectStore, RecordingMetrics

Records = Sequence[tuple[bytes, Position]]
PathFn = Callable[[Records], list[bytes]]

PATHS = ("naive", "awswrangler", "ours", "ours_privacy", "ours_kcl")
TABLE = "persons"
# The sample privacy policy's shape (two attributes hashed, one masked) on the bench records'
# attributes: a string set (like emails), a list of phone numbers, a string (docs/adr/0027).
BENCH_PRIVACY_POLICY = {TABLE: {"tags": "hash", "ph": "hash", "name": "mask"}}
BENCH_PRIVACY_KEY = b"changelake-bench-key-not-a-secret-0123456789"


class PathUnavailableError(RuntimeError):
    """The library a path measures is not installed."""


def resolve(name: str) -> PathFn:
    """The path called ``name`` (see :data:`PATHS`)."""
    if name == "naive":
        from changelake_bench.baselines import naive_records_to_parquet

        return lambda records: [naive_records_to_parquet(records)]
    if name == "awswrangler":
        from changelake_bench.baselines import awswrangler_records_to_parquet

        return lambda records: [awswrangler_records_to_parquet(records)]
    if name == "ours":
        ours = ours_function()
        return lambda records: [ours(records)]
    if name == "ours_privacy":
        from changelake.privacy import PrivacyPolicy
        from changelake_consumer.parquet import records_to_parquet

        policy = PrivacyPolicy(BENCH_PRIVACY_POLICY, BENCH_PRIVACY_KEY)
        return lambda records: [records_to_parquet(records, TABLE, policy)]
    if name == "ours_kcl":
        return kcl_path()
    raise ValueError(f"unknown consumer path {name!r}")


def ours_function() -> Callable[[Records], bytes]:
    """The consumer's records → Parquet function (``changelake_consumer.parquet``), bench table."""
    from changelake_consumer.parquet import records_to_parquet

    return lambda records: records_to_parquet(records, TABLE)


# --- ours through amazon_kclpy's protocol layer ----------------------------------------------


class _Daemon:
    """Plays the MultiLangDaemon in memory: feeds action lines, answers checkpoints at once.

    ``KCLProcess`` reads lines from it (``readline``) and writes its responses to it
    (``write``); a ``checkpoint`` action gets an immediate success reply, as the daemon gives.
    """

    def __init__(self, lines: list[str]) -> None:
        self._lines = lines
        self._next = 0
        self._pending: list[str] = []
        self.checkpoints: list[str | None] = []
        self.statuses = 0

    def readline(self) -> str:
        """Next line for the record processor (a checkpoint reply first, if one is due)."""
        if self._pending:
            return self._pending.pop(0)
        if self._next >= len(self._lines):
            return ""
        line = self._lines[self._next]
        self._next += 1
        return line

    def write(self, text: str) -> int:
        """Receive protocol output; reply to checkpoint requests."""
        for line in text.splitlines():
            if not line.strip():
                continue
            message = json.loads(line)
            if message.get("action") == "checkpoint":
                seq = message.get("sequenceNumber")
                self.checkpoints.append(seq)
                reply = {
                    "action": "checkpoint",
                    "sequenceNumber": seq,
                    "subSequenceNumber": message.get("subSequenceNumber"),
                    "error": None,
                }
                self._pending.append(json.dumps(reply) + "\n")
            elif message.get("action") == "status":
                self.statuses += 1
        return len(text)

    def flush(self) -> None:
        """Nothing is buffered."""


def kcl_messages(records: Records, batch: int, shard_id: str) -> list[str]:
    """The daemon's JSON lines for ``records``: initialize, processRecords…, shutdownRequested."""
    lines = [
        json.dumps(
            {
                "action": "initialize",
                "shardId": shard_id,
                "sequenceNumber": None,
                "subSequenceNumber": None,
            }
        )
        + "\n"
    ]
    for start in range(0, len(records), batch):
        chunk = records[start : start + batch]
        payload = [
            {
                "action": "record",
                "data": base64.b64encode(raw).decode("ascii"),
                "partitionKey": "pk",
                "sequenceNumber": pos.sequence_number,
                "subSequenceNumber": 0,
                "approximateArrivalTimestamp": (pos.arrival_time_us or 0) // 1000,
            }
            for raw, pos in chunk
        ]
        lines.append(
            json.dumps({"action": "processRecords", "records": payload, "millisBehindLatest": 0})
            + "\n"
        )
    lines.append(json.dumps({"action": "shutdownRequested"}) + "\n")
    return lines


def kcl_path() -> PathFn:
    """Ours behind ``amazon_kclpy.kcl.KCLProcess``: protocol parsing + our record processor."""
    try:
        from amazon_kclpy import kcl
    except ImportError as exc:  # the consumer's optional `kcl` extra
        raise PathUnavailableError(f"amazon_kclpy is not installed: {exc}") from exc

    def run(records: Records) -> list[bytes]:
        store = InMemoryObjectStore()
        shard = records[0][1].shard_id if records else "shardId-000000000000"
        daemon = _Daemon(kcl_messages(records, len(records) or 1, shard))
        err = io.StringIO()
        try:
            kcl.KCLProcess(
                kcl_processor(store), input_file=daemon, output_file=daemon, error_file=err
            ).run()
        except SystemExit as exc:  # the processor exits on any unexpected error (by design)
            tail = err.getvalue()[-2000:]
            raise RuntimeError(f"record processor exited ({exc.code}): {tail}") from exc
        if "Caught exception" in err.getvalue():
            raise RuntimeError(f"record processor failed: {err.getvalue()[-2000:]}")
        return [store.objects[k] for k in sorted(store.objects)]

    return run


def kcl_processor(store: ObjectStore) -> Any:
    """The consumer's KCL record processor writing to ``store``, flushing only on shard end or
    shutdown (so one batch is one object, as on the other paths)."""
    from changelake_consumer.adapters.kcl_processor import ChangeRecordProcessor
    from changelake_consumer.service import BatchPolicy, ShardProcessor

    metrics = RecordingMetrics()
    policy = BatchPolicy(
        max_rows=10**9,
        max_bytes=2**62,
        max_age_s=10.0**9,
        max_buffered_bytes=2**62,
        max_open_partitions=10**6,
    )

    def factory(shard_id: str, start_after: str | None) -> ShardProcessor:
        return ShardProcessor(shard_id, store, metrics, policy, start_after=start_after)

    return ChangeRecordProcessor(factory, metrics)
