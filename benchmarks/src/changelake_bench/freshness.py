"""Freshness bench: DynamoDB write → visible in ``<table>_current``, on the embedded pipeline.

The embedded local stack (emulator with the DynamoDB→Kinesis streaming destination, the
consumer's local runner, the catalog service) runs in this process. Writer threads in a
separate process (``freshness_writer``) put items at ``rate`` changes/s for ``seconds`` (each
change bumps the item's ``ver``); a reader runs
``SELECT item_key, new_image FROM <table>_current`` on the local query engine (Glue + S3 +
DuckDB, exactly what ``changelake query`` does) in a loop. A change counts as visible when a
query *that has finished* shows its item at that version or later; latency = that finish time
minus the time the write call returned.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

from changelake_cli.stats import percentile
from changelake_lake import layout

from changelake_bench.report import BenchResult, Progress, Row, Target


class PendingWrites:
    """Writes not yet seen, per item, in version order (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_item: dict[str, deque[tuple[int, float]]] = defaultdict(deque)
        self.latencies: list[float] = []
        self.samples: list[tuple[float, float]] = []  # (write time, latency)
        self.written = 0

    def add(self, pk: str, ver: int, at: float) -> None:
        """Record that ``pk`` reached ``ver`` at ``at`` (monotonic)."""
        with self._lock:
            self._by_item[pk].append((ver, at))
            self.written += 1

    def observe(self, current: dict[str, int], at: float) -> None:
        """Mark every pending write whose version the query showed as visible at ``at``."""
        with self._lock:
            for pk, queue in self._by_item.items():
                seen = current.get(pk)
                if seen is None:
                    continue
                while queue and queue[0][0] <= seen:
                    _, wrote = queue.popleft()
                    self.latencies.append(max(0.0, at - wrote))
                    self.samples.append((wrote, max(0.0, at - wrote)))

    def outstanding(self) -> int:
        """Writes not yet visible."""
        with self._lock:
            return sum(len(q) for q in self._by_item.values())


def follow_writer(proc: subprocess.Popen[str], pending: PendingWrites) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        stamp, *changes = line.split()
        at = float(stamp)
        for change in changes:
            pk, ver = change.rsplit(":", 1)
            pending.add(pk, int(ver), at)


def start_writer(
    endpoint: str,
    table: str,
    pending: PendingWrites,
    *,
    rate: float,
    seconds: float,
    items: int,
    writers: int,
) -> tuple[subprocess.Popen[str], threading.Thread]:
    """The writer process (``freshness_writer``) and the thread recording its writes."""
    writer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "changelake_bench.freshness_writer",
            *("--endpoint", endpoint, "--table", table),
            *("--rate", str(rate), "--seconds", str(seconds)),
            *("--items", str(items), "--writers", str(writers)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    follower = threading.Thread(
        target=follow_writer, args=(writer, pending), name="bench-writer-follow", daemon=True
    )
    follower.start()
    return writer, follower


def _current_versions(engine: Any, view: str) -> dict[str, int]:
    result = engine.run(f"SELECT item_key, new_image FROM {view}")
    current: dict[str, int] = {}
    for item_key, new_image in result.rows:
        if not new_image:
            continue
        pk = json.loads(item_key)["pk"]
        current[pk] = int(json.loads(new_image)["ver"])
    return current


def run(
    *,
    rate: int = 1000,
    seconds: float = 30.0,
    items: int = 2000,
    writers: int = 2,
    drain_timeout_s: float = 90.0,
    progress: Progress | None = None,
) -> BenchResult:
    """Write at ``rate`` for ``seconds`` through the embedded pipeline and time visibility."""
    say = progress or (lambda _m: None)
    params: dict[str, Any] = {
        "rate": rate,
        "seconds": seconds,
        "items": items,
        "writers": writers,
        "drain_timeout_s": drain_timeout_s,
    }
    from changelake.settings import ChangelakeSettings
    from changelake_cli.local_stack import LocalStack
    from changelake_lake.query.local_engine import LocalEngine

    settings = ChangelakeSettings()
    table = settings.tables[0]
    view = layout.current_view_name(table)
    pending = PendingWrites()
    polls = 0
    poll_seconds: list[float] = []
    say(f"freshness: starting the embedded pipeline ({rate}/s for {seconds:g} s)")
    from changelake_catalog.bootstrap import local_service as catalog_service
    from changelake_consumer.bootstrap import local_service as consumer_service

    # The two services the embedded pipeline needs, in local-up order, named explicitly so the
    # bench measures the same pipeline whatever else the stack registers.
    factories: list[Any] = [consumer_service, catalog_service]
    cpu_before = _cpu_by_thread({})
    with LocalStack(0, settings=settings, factories=factories) as stack:
        engine = LocalEngine(settings.database)
        started = time.monotonic()
        until = started + seconds
        writer, follower = start_writer(
            stack.endpoint,
            table,
            pending,
            rate=rate,
            seconds=seconds,
            items=items,
            writers=writers,
        )
        deadline = until + drain_timeout_s
        try:
            while time.monotonic() < deadline:
                writing = writer.poll() is None or follower.is_alive()
                if not writing and pending.outstanding() == 0:
                    break
                q_start = time.monotonic()
                try:
                    current = _current_versions(engine, view)
                except Exception as exc:  # the view does not exist until the first object
                    if time.monotonic() - started > 60 and polls == 0:
                        raise RuntimeError(f"{view} never became queryable: {exc}") from exc
                    time.sleep(0.5)
                    continue
                done = time.monotonic()
                polls += 1
                poll_seconds.append(done - q_start)
                pending.observe(current, done)
                if polls % 10 == 0:
                    say(
                        f"freshness: {pending.written:,} written, "
                        f"{pending.outstanding():,} not yet visible"
                    )
        finally:
            if writer.poll() is None:
                writer.kill()
            writer.wait(30)
            follower.join(30)
        write_seconds = min(time.monotonic(), until) - started
        cpu = _cpu_by_thread(cpu_before)
    lat = pending.latencies
    achieved = round(pending.written / write_seconds, 1) if write_seconds > 0 else None
    # Latency by when the change was written: a rise from the first to the last third means the
    # pipeline fell behind the write rate (throughput-bound), a flat line a fixed delay.
    thirds: list[float | None] = []
    if pending.samples:
        first = min(w for w, _ in pending.samples)
        span = max(seconds, 1e-9) / 3
        for k in range(3):
            part = [lat for w, lat in pending.samples if k * span <= w - first < (k + 1) * span]
            thirds.append(_r(percentile(part, 50)))
    ours: dict[str, Any] = {
        "pipeline_process_cpu_seconds_by_thread": cpu,
        "latency_p50_by_third_of_run_s": thirds,
        "changes_written": pending.written,
        "achieved_rate_per_s": achieved,
        "visible": len(lat),
        "not_visible_after_drain": pending.outstanding(),
        "latency_p50_s": _r(percentile(lat, 50)),
        "latency_p95_s": _r(percentile(lat, 95)),
        "latency_max_s": _r(max(lat) if lat else None),
        "query_polls": polls,
        "query_seconds_p50": _r(percentile(poll_seconds, 50)),
    }
    rows = [
        Row("changes written", pending.written, None, None),
        Row(
            "achieved write rate (/s)",
            achieved,
            None,
            None,
            Target("achieved_rate_per_s", ">=", float(rate), "/s"),
            achieved,
        ),
        Row("write → visible in _current p50 (s)", ours["latency_p50_s"]),
        Row(
            "write → visible in _current p95 (s)",
            ours["latency_p95_s"],
            None,
            None,
            Target("latency_p95_s", "<=", 10, " s"),
            ours["latency_p95_s"],
        ),
        Row("write → visible in _current max (s)", ours["latency_max_s"]),
        Row("p50 (s) for writes in 1st / 2nd / 3rd third", " / ".join(str(x) for x in thirds)),
        Row("not visible after drain", ours["not_visible_after_drain"]),
        Row("one _current query (s, p50)", ours["query_seconds_p50"]),
    ]
    top = ", ".join(f"{k} {v}s" for k, v in list(cpu.items())[:5])
    notes = [
        f"pipeline process CPU by thread: {top}",
        "latency is measured to the end of the first query that shows the change; the "
        "query loop itself shares the 2 cores with the pipeline",
    ]
    return BenchResult(
        bench="freshness", params=params, ours=ours, baseline={}, ratio={}, rows=rows, notes=notes
    )


def _cpu_by_thread(before: dict[str, float]) -> dict[str, float]:
    """CPU seconds of this process by thread-name family since ``before`` (Linux /proc).

    Threads that already exited (moto's per-request handler threads) are reported together as
    ``exited threads``: the process total minus the live threads.
    """
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    out: dict[str, float] = defaultdict(float)
    live = 0.0
    for task in Path("/proc/self/task").glob("*"):
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        secs = (int(fields[11]) + int(fields[12])) / tick
        live += secs
        name = names.get(int(task.name), "other (native)")
        out[re.sub(r"[-_ ]?\d+$", "", name.split(" (")[0]) or name] += secs
    times = os.times()
    out["exited threads"] = max(0.0, times.user + times.system - live)
    result = {k: round(v - before.get(k, 0.0), 1) for k, v in out.items()}
    return dict(sorted(result.items(), key=lambda kv: -kv[1]))


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
