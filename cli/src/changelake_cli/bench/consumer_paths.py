"""The four ways of turning records into Parquet bytes the consumer bench compares.

Each path is a callable ``(records) -> list[bytes]`` (one Parquet object per call, or several
for the KCL path, which writes through the processor's object store). ``resolve(name)``
returns it, or raises :class:`PathUnavailableError` when the code it needs has not landed.
"""

from __future__ import annotations

import base64
import importlib
import inspect
import io
import json
from collections.abc import Callable, Sequence
from typing import Any

from changelake.events import Position

Records = Sequence[tuple[bytes, Position]]
PathFn = Callable[[Records], list[bytes]]

PATHS = ("naive", "awswrangler", "ours", "ours_privacy", "ours_kcl")
TABLE = "persons"
# The sample privacy policy's shape (two attributes hashed, one masked) on the bench records'
# attributes: a string set (like emails), a list of phone numbers, a string (docs/adr/0027).
BENCH_PRIVACY_POLICY = {TABLE: {"tags": "hash", "ph": "hash", "name": "mask"}}
BENCH_PRIVACY_KEY = b"changelake-bench-key-not-a-secret-0123456789"


class PathUnavailableError(RuntimeError):
    """The implementation a path measures is not importable (yet)."""


def resolve(name: str) -> PathFn:
    """The path called ``name`` (see :data:`PATHS`)."""
    if name == "naive":
        from changelake_cli.bench.baselines import naive_records_to_parquet

        return lambda records: [naive_records_to_parquet(records)]
    if name == "awswrangler":
        from changelake_cli.bench.baselines import awswrangler_records_to_parquet

        return lambda records: [awswrangler_records_to_parquet(records)]
    if name == "ours":
        fn = ours_function()
        return lambda records: [fn(records)]
    if name == "ours_privacy":
        from changelake.privacy import PrivacyPolicy
        from changelake_consumer.parquet import records_to_parquet

        policy = PrivacyPolicy(BENCH_PRIVACY_POLICY, BENCH_PRIVACY_KEY)
        return lambda records: [records_to_parquet(records, TABLE, policy)]
    if name == "ours_kcl":
        return kcl_path()
    raise ValueError(f"unknown consumer path {name!r}")


def ours_function() -> Callable[[Records], bytes]:
    """The consumer's pure records → Parquet function, bound to the bench table."""
    candidates = (
        ("changelake_consumer.parquet", "records_to_parquet"),
        ("changelake_consumer.parquet_writer", "records_to_parquet"),
        ("changelake_consumer.rows", "records_to_parquet"),
    )
    for module_name, attr in candidates:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        fn = getattr(module, attr, None)
        if fn is None:
            continue
        params = list(inspect.signature(fn).parameters)
        if len(params) >= 2:
            return lambda records: _as_bytes(fn(records, TABLE))
        return lambda records: _as_bytes(fn(records))
    raise PathUnavailableError("changelake_consumer.parquet.records_to_parquet has not landed")


def _as_bytes(result: Any) -> bytes:
    # Tolerate a result object carrying the bytes (e.g. a dataclass with .data / .parquet).
    if isinstance(result, bytes | bytearray | memoryview):
        return bytes(result)
    for attr in ("data", "parquet", "body", "payload"):
        value = getattr(result, attr, None)
        if isinstance(value, bytes | bytearray):
            return bytes(value)
    raise TypeError(f"records_to_parquet returned {type(result).__name__}, not bytes")


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
    except ImportError as exc:
        raise PathUnavailableError(f"amazon_kclpy is not installed: {exc}") from exc
    factory = _kcl_processor_factory()

    def run(records: Records) -> list[bytes]:
        processor, store = factory()
        shard = records[0][1].shard_id if records else "shardId-000000000000"
        daemon = _Daemon(kcl_messages(records, len(records) or 1, shard))
        err = io.StringIO()
        try:
            kcl.KCLProcess(processor, input_file=daemon, output_file=daemon, error_file=err).run()
        except SystemExit as exc:  # the processor exits on any unexpected error (by design)
            tail = err.getvalue()[-2000:]
            raise RuntimeError(f"record processor exited ({exc.code}): {tail}") from exc
        if "Caught exception" in err.getvalue():
            raise RuntimeError(f"record processor failed: {err.getvalue()[-2000:]}")
        return [store.objects[k] for k in sorted(store.objects)]

    return run


def _kcl_processor_factory() -> Callable[[], tuple[Any, Any]]:
    """Build the consumer's KCL record processor over an in-memory object store.

    Uses ``bench_processor(store)`` if the module offers one, else the module's record
    processor class, its constructor arguments filled by name (store, metrics, policy, table).
    """
    try:
        module = importlib.import_module("changelake_consumer.kcl_processor")
    except ImportError as exc:
        raise PathUnavailableError(
            f"changelake_consumer.kcl_processor has not landed: {exc}"
        ) from exc
    from changelake.testing.fakes import InMemoryObjectStore, RecordingMetrics

    build = getattr(module, "bench_processor", None)
    if build is not None:

        def make_hooked() -> tuple[Any, Any]:
            store = InMemoryObjectStore()
            return build(store), store

        return make_hooked
    classes = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and obj.__module__ == module.__name__
        and callable(getattr(obj, "process_records", None))
        and callable(getattr(obj, "initialize", None))
    ]
    if not classes:
        raise PathUnavailableError("changelake_consumer.kcl_processor has no record processor")
    cls = classes[0]

    def make() -> tuple[Any, Any]:
        store = InMemoryObjectStore()
        kwargs: dict[str, Any] = {}
        for name, param in inspect.signature(cls).parameters.items():
            if name in ("store", "object_store", "objects"):
                kwargs[name] = store
            elif name == "metrics":
                kwargs[name] = RecordingMetrics()
            elif name in ("table", "expected_table", "table_name"):
                kwargs[name] = TABLE
            elif param.default is inspect.Parameter.empty and param.kind not in (
                inspect.Parameter.VAR_POSITIONAL,
                inspect.Parameter.VAR_KEYWORD,
            ):
                raise PathUnavailableError(
                    f"cannot build {cls.__name__}: no bench value for parameter {name!r}"
                )
        return cls(**kwargs), store

    return make
