"""Sustained-load bench: ``changelake bench load --rate R --seconds S`` (docs/adr/0037).

The local stack runs in this process (the emulator: moto under hypercorn with the DynamoDB →
Kinesis streaming destination; the catalog service) with the consumer as on ECS: the real
KCL MultiLangDaemon (Java) and its Python record processors (``--runner kcl``; ``local``: the
in-process local runner). Once every shard has a record processor, a writer process puts
items into DynamoDB at ``rate`` changes/s for ``seconds`` (``freshness_writer``: each change
bumps an item's ``ver``), and this process watches the lake:

* **lag over time**, every ``interval`` seconds: changes produced (accepted by DynamoDB) minus
  changes durable in the lake (rows of the Parquet objects under ``changes/``), and the
  consumer's own ``MillisBehindLatest`` (the largest per-shard ``lag_ms`` gauge the record
  processors log, as KCL hands it to them);
* **freshness**: DynamoDB write returned → its row durable in a Parquet object of the lake
  (found by listing ``changes/`` every ``poll`` seconds: that is the resolution), p50/p95/max;
* **reconcile** after the drain: distinct ``event_id`` in ``<table>_changes`` against the
  changes produced (lost = produced - distinct, stored duplicates = rows - distinct, which the
  views remove), and ``<table>_current`` against a Scan of the table, item by item.

With ``profile_dir`` the pipeline process (emulator, catalog, this observer) is sampled with
py-spy for the whole run; the hottest functions are reported.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from changelake_cli.stats import percentile
from changelake_lake import layout

from changelake_bench.env import scoped_env
from changelake_bench.freshness import PendingWrites, start_writer
from changelake_bench.report import BenchResult, Progress, Row, Target

# KCL knobs for a run that starts in seconds (ADR 0016 says what they are on ECS): a lease is
# taken over after 3 s, shards are synced every second, partition buffers flush after 1 s and
# the processors log their metrics (MillisBehindLatest included) every second.
BENCH_ENV = {
    "CHANGELAKE_KCL_FAILOVER_MS": "3000",
    "CHANGELAKE_SHARD_SYNC_S": "1",
    "CHANGELAKE_FLUSH_AGE_S": "1",
    "CHANGELAKE_METRICS_FLUSH_S": "1",
    "CHANGELAKE_LOG_LEVEL": "INFO",
}
STARTUP_TIMEOUT_S = 180.0


@dataclass
class LakeWatch:
    """What the observer has seen of the lake: objects, rows, and write → durable latencies."""

    pending: PendingWrites
    objects: set[str] = field(default_factory=set)
    rows: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def poll(self, s3: Any, bucket: str, prefix: str) -> None:
        """List the change objects once; read the new ones' ``pk`` and ``ver`` columns."""
        import pyarrow.parquet as pq

        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        new = [
            o["Key"]
            for page in pages
            for o in page.get("Contents", [])
            if o["Key"].endswith(".parquet") and o["Key"] not in self.objects
        ]
        seen: dict[str, int] = {}
        rows = 0
        for key in new:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            table = pq.read_table(io.BytesIO(body), columns=["pk", "ver__n"])
            rows += table.num_rows
            for pk, ver in zip(
                table.column("pk").to_pylist(), table.column("ver__n").to_pylist(), strict=True
            ):
                if pk is not None and ver is not None and int(ver) > seen.get(pk, 0):
                    seen[pk] = int(ver)
        at = time.monotonic()
        with self.lock:
            self.objects.update(new)
            self.rows += rows
        self.pending.observe(seen, at)


class DaemonLog:
    """The consumer's structured log (the KCL daemon's stderr): lag gauges and processor starts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self.lag_ms: dict[str, float] = {}
        self.processors = 0

    def read(self) -> None:
        """Read what was appended since the last call."""
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1
        self._offset += end
        for raw in chunk[:end].splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(line, dict):
                continue
            if line.get("message") == "initialized":
                self.processors += 1
            gauges = line.get("gauges") if line.get("message") == "metrics" else None
            for name, value in (gauges or {}).items():
                if name.startswith("lag_ms"):
                    self.lag_ms[name] = float(value)

    def max_lag_ms(self) -> float | None:
        """The largest MillisBehindLatest over the shards last reported."""
        return max(self.lag_ms.values(), default=None)


@dataclass(frozen=True)
class Sample:
    """One point of the lag series."""

    t_s: float
    produced: int
    durable_rows: int
    lag_changes: int
    millis_behind_latest: float | None
    load_avg_1m: float


class ProcessCpu:
    """CPU seconds (user + system) of the pipeline's processes over the run, by role (Linux).

    Roles: ``pipeline`` (this process: emulator, catalog, observer), ``writer`` (the load
    generator), ``kcl_jvm`` (the MultiLangDaemon), ``kcl_processors`` (its Python record
    processors), ``transform`` (the emulator's transform Lambda process), ``profiler``
    (py-spy), ``other`` descendants; plus ``machine_busy`` (every
    process on the machine, from /proc/stat) and ``machine_capacity`` (cores x seconds).
    Processes are read from /proc at each sample, and a process' last reading is kept, so one
    that exited (the writer) still counts up to its last sample. Without /proc: empty.
    """

    def __init__(self, root: int) -> None:
        self.root = root
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._started = time.monotonic()
        self._base: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._machine_base = self._machine_busy()
        self._machine_last = self._machine_base
        for pid, (_, cpu) in self._tree().items():
            self._base[pid] = cpu
        self._ended = self._started

    def _machine_busy(self) -> float | None:
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        except OSError:
            return None
        ticks = [int(v) for v in fields]
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
        return (sum(ticks[:8]) - idle) / self._tick

    def _tree(self) -> dict[int, tuple[str, float]]:
        stats: dict[int, tuple[int, float, str]] = {}
        for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
            if not entry.name.isdigit():
                continue
            try:
                raw = (entry / "stat").read_text()
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            fields = raw[raw.rfind(")") + 2 :].split()
            stats[int(entry.name)] = (
                int(fields[1]),
                (int(fields[11]) + int(fields[12])) / self._tick,
                cmd,
            )
        found: dict[int, tuple[str, float]] = {}
        if self.root in stats:
            found[self.root] = ("pipeline", stats[self.root][1])
        grew = True
        while grew:
            grew = False
            for pid, (ppid, cpu, cmd) in stats.items():
                if pid in found or ppid not in found:
                    continue
                parent_role = found[ppid][0]
                if "freshness_writer" in cmd:
                    role = "writer"
                elif "py-spy" in cmd:
                    role = "profiler"
                elif "java" in cmd.split(" ", 1)[0] or "MultiLangDaemon" in cmd:
                    role = "kcl_jvm"
                elif parent_role in ("kcl_jvm", "kcl_processors"):
                    role = "kcl_processors"
                elif parent_role == "pipeline" and "spawn_main" in cmd:
                    role = "transform"  # the transform Lambda's own process (ADR 0047)
                else:
                    role = "other"
                found[pid] = (role, cpu)
                grew = True
        return found

    def sample(self) -> None:
        """Read the process tree and the machine once more."""
        for pid, (role, cpu) in self._tree().items():
            # A process keeps the role it was first seen with (an exited, unreaped writer has
            # no command line any more, but still its CPU times).
            known = self._last.get(pid)
            self._last[pid] = (known[0] if known else role, cpu)
        self._machine_last = self._machine_busy()
        self._ended = time.monotonic()

    def report(self) -> dict[str, float]:
        """CPU seconds by role since the start, and the machine's busy and capacity seconds."""
        by_role: dict[str, float] = collections.defaultdict(float)
        for pid, (role, cpu) in self._last.items():
            by_role[role] += cpu - self._base.get(pid, 0.0)
        out = {role: round(value, 1) for role, value in sorted(by_role.items())}
        if self._machine_base is not None and self._machine_last is not None:
            out["machine_busy"] = round(self._machine_last - self._machine_base, 1)
            out["machine_capacity"] = round(
                (os.cpu_count() or 1) * (self._ended - self._started), 1
            )
        return out


def run(
    *,
    rate: int = 2000,
    seconds: float = 300.0,
    items: int = 5000,
    writers: int = 4,
    interval_s: float = 5.0,
    poll_s: float = 1.0,
    drain_timeout_s: float = 180.0,
    runner: str = "kcl",
    profile_dir: Path | None = None,
    progress: Progress | None = None,
) -> BenchResult:
    """Drive the local pipeline at ``rate`` changes/s for ``seconds``; lag, freshness, reconcile."""
    say = progress or (lambda _m: None)
    params: dict[str, Any] = {
        "rate": rate,
        "seconds": seconds,
        "items": items,
        "writers": writers,
        "interval_s": interval_s,
        "poll_s": poll_s,
        "runner": runner,
    }
    from changelake.settings import ChangelakeSettings

    settings = ChangelakeSettings()
    with tempfile.TemporaryDirectory(prefix="changelake-load-") as tmp, scoped_env(**BENCH_ENV):
        log_path = Path(tmp) / "consumer.log"
        outcome = _drive(
            settings=settings,
            params=params,
            log_path=log_path,
            folder=Path(tmp),
            drain_timeout_s=drain_timeout_s,
            profile_dir=profile_dir,
            say=say,
        )
    return _result(params, outcome)


def _consumer_factory(runner: str, folder: Path, log_path: Path) -> Any:
    def build() -> Any:
        if runner == "kcl":
            from changelake_consumer.kcl_daemon import KclDaemon
            from changelake_consumer.settings import ConsumerSettings

            properties = str(folder / "kcl.properties")
            return KclDaemon(
                ConsumerSettings(kcl_properties_path=properties), stderr=log_path.open("wb")
            )
        from changelake_consumer.bootstrap import local_service

        return local_service()

    return build


def _drive(
    *,
    settings: Any,
    params: dict[str, Any],
    log_path: Path,
    folder: Path,
    drain_timeout_s: float,
    profile_dir: Path | None,
    say: Progress,
) -> dict[str, Any]:
    from changelake_catalog.bootstrap import local_service as catalog_service
    from changelake_cli.local_stack import LocalStack
    from changelake_emulator.adapters.clients import emulator_client

    runner = params["runner"]
    factories = [_consumer_factory(runner, folder, log_path), catalog_service]
    say(f"load: starting the local stack (consumer: {runner})")
    # The transform Lambda in its own process (ADR 0047): off the emulator's GIL.
    with LocalStack(
        0, settings=settings, factories=factories, runner=runner, transform_process=True
    ) as stack:
        s3 = emulator_client("s3", stack.endpoint, settings.region)
        prefix = layout.changes_prefix(settings.tables[0])
        consumer_log = DaemonLog(log_path)
        startup = _wait_for_processors(consumer_log, runner, shards=2)
        say(f"load: consumer ready after {startup:.1f} s; writing {params['rate']}/s")
        profiler = _start_profiler(profile_dir)
        cpu = ProcessCpu(os.getpid())
        pending = PendingWrites()
        watch = LakeWatch(pending)
        samples: list[Sample] = []
        started = time.monotonic()
        writer, follower = start_writer(
            stack.endpoint,
            settings.tables[0],
            pending,
            rate=params["rate"],
            seconds=params["seconds"],
            items=params["items"],
            writers=params["writers"],
        )
        next_sample = started + params["interval_s"]
        write_end: float | None = None
        deadline: float | None = None
        drained = started
        try:
            while True:
                watch.poll(s3, settings.lake_bucket, prefix)
                consumer_log.read()
                now = time.monotonic()
                if now >= next_sample:
                    cpu.sample()
                    samples.append(_sample(now - started, pending, watch, consumer_log))
                    last = samples[-1]
                    say(
                        f"load: t={last.t_s:.0f}s produced {last.produced:,} durable "
                        f"{last.durable_rows:,} lag {last.lag_changes:,} changes / "
                        f"{last.millis_behind_latest} ms"
                    )
                    next_sample += params["interval_s"]
                writing = writer.poll() is None or follower.is_alive()
                if not writing and write_end is None:
                    write_end = now
                    deadline = now + drain_timeout_s
                if deadline is not None and (pending.outstanding() == 0 or now > deadline):
                    cpu.sample()
                    samples.append(_sample(now - started, pending, watch, consumer_log))
                    drained = now
                    break
                time.sleep(max(0.0, params["poll_s"] - (time.monotonic() - now)))
        finally:
            if writer.poll() is None:
                writer.kill()
            writer.wait(30)
            follower.join(30)
            hot = _stop_profiler(profiler)
        assert write_end is not None
        say("load: drained; reconciling")
        reconcile = _reconcile(settings, pending.written)
        return {
            "startup_s": round(startup, 1),
            "write_seconds": write_end - started,
            "drain_seconds": round(drained - write_end, 1),
            "pending": pending,
            "watch": watch,
            "samples": samples,
            "reconcile": reconcile,
            "profile": hot,
            "cpu": cpu.report(),
        }


def _wait_for_processors(consumer_log: DaemonLog, runner: str, shards: int) -> float:
    """Seconds until every shard has a record processor (the KCL's JVM start and leases)."""
    started = time.monotonic()
    if runner != "kcl":
        return 0.0
    while consumer_log.processors < shards:
        if time.monotonic() - started > STARTUP_TIMEOUT_S:
            raise RuntimeError(
                f"the KCL daemon started {consumer_log.processors} of {shards} record "
                f"processors in {STARTUP_TIMEOUT_S:.0f} s (log: {consumer_log.path})"
            )
        time.sleep(0.5)
        consumer_log.read()
    return time.monotonic() - started


def _sample(
    t_s: float, pending: PendingWrites, watch: LakeWatch, consumer_log: DaemonLog
) -> Sample:
    produced = pending.written
    return Sample(
        round(t_s, 1),
        produced,
        watch.rows,
        pending.outstanding(),
        consumer_log.max_lag_ms(),
        round(os.getloadavg()[0], 2),
    )


def _reconcile(settings: Any, produced: int) -> dict[str, Any]:
    """``changelake reconcile`` on the table, plus every produced change once in the lake.

    Reconcile (issue 15) checks the table against ``<table>_current``, the raw path's event ids
    against the curated path's, the catalog's partitions and the quarantine; it cannot know what
    was produced, so the distinct ``event_id`` count is compared with the writer's count too.
    The last objects and Firehose's last buffer land a moment after the drain: both are retried
    for up to a minute until clean.
    """
    from changelake_cli.ops.reconcile import reconcile_from_settings
    from changelake_lake.query.local_engine import LocalEngine
    from changelake_lake.query.model import QueryError

    engine = LocalEngine(settings.database, region=settings.region)
    changes = layout.changes_table_name(settings.tables[0])
    deadline = time.monotonic() + 60
    while True:
        try:
            result = engine.run(f"SELECT count(*), count(DISTINCT event_id) FROM {changes}")
            rows, distinct = (int(v) for v in result.rows[0])
        except QueryError:
            rows = distinct = 0
        report = reconcile_from_settings(settings.tables[0], engine=engine).to_dict()
        if (distinct >= produced and report["clean"]) or time.monotonic() > deadline:
            break
        time.sleep(2)
    items = report["tables"][0]["items"] if report["tables"] else {}
    return {
        "produced": produced,
        "rows": rows,
        "distinct_events": distinct,
        "lost": max(0, produced - distinct),
        "unexpected": max(0, distinct - produced),
        "stored_duplicates": rows - distinct,
        "reconcile_clean": report["clean"],
        "reconcile_gaps": report["gaps"],
        "reconcile": report,
        "current_equals_scan": bool(items)
        and all(items[kind]["count"] == 0 for kind in ("missing", "extra", "different")),
        "current_items": items.get("view_items"),
        "table_items": items.get("source_items"),
        "ok": distinct == produced and report["clean"],
    }


def _start_profiler(profile_dir: Path | None) -> tuple[subprocess.Popen[bytes], Path] | None:
    if profile_dir is None:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    profile_dir.mkdir(parents=True, exist_ok=True)
    out = profile_dir / "load-pipeline.txt"
    command = [spy, "record", "--pid", str(os.getpid()), "--gil", "--format", "raw"]
    proc = subprocess.Popen(
        # --gil: only the thread holding the GIL is sampled, i.e. where the process' Python
        # CPU goes (idle executor threads would otherwise dominate the samples).
        [*command, "-r", "50", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, out


def _stop_profiler(profiler: tuple[subprocess.Popen[bytes], Path] | None) -> list[str]:
    """Stop py-spy; the top functions by samples on the stack top (self time)."""
    if profiler is None:
        return []
    proc, out = profiler
    proc.send_signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(60)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    return top_functions(out)


def top_functions(collapsed: Path, limit: int = 12) -> list[str]:
    """Self-time shares from a collapsed-stack file (``frame;frame;… count`` per line)."""
    if not collapsed.exists():
        return []
    by_leaf: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        by_leaf[stack.rsplit(";", 1)[-1]] += int(count)
        total += int(count)
    return [f"{100 * n / total:.1f}% {leaf}" for leaf, n in by_leaf.most_common(limit)]


def _result(params: dict[str, Any], outcome: dict[str, Any]) -> BenchResult:
    pending: PendingWrites = outcome["pending"]
    samples: list[Sample] = outcome["samples"]
    reconcile = outcome["reconcile"]
    lat = pending.latencies
    write_seconds = max(outcome["write_seconds"], 1e-9)
    achieved = round(pending.written / min(write_seconds, params["seconds"]), 1)
    # What reached the lake per second, write start to the last change durable (the drain
    # included): the pipeline's rate. Equal to the write rate when it keeps up.
    durable = pending.written - pending.outstanding()
    lake_rate = round(durable / (outcome["write_seconds"] + outcome["drain_seconds"]), 1)
    loads = [s.load_avg_1m for s in samples]
    fresh = {
        "p50_s": _r(percentile(lat, 50)),
        "p95_s": _r(percentile(lat, 95)),
        "max_s": _r(max(lat) if lat else None),
    }
    ours: dict[str, Any] = {
        "changes_produced": pending.written,
        "achieved_rate_per_s": achieved,
        "consumer_startup_s": outcome["startup_s"],
        "drain_s": outcome["drain_seconds"],
        "lag": [s.__dict__ for s in samples],
        "max_lag_changes": max((s.lag_changes for s in samples), default=None),
        "max_millis_behind_latest": max(
            (s.millis_behind_latest for s in samples if s.millis_behind_latest is not None),
            default=None,
        ),
        "freshness": fresh,
        "not_durable_after_drain": pending.outstanding(),
        "objects": len(outcome["watch"].objects),
        "reconcile": reconcile,
        "lake_rate_per_s": lake_rate,
        "cpu_seconds": outcome["cpu"],
        "cpu_ms_per_change": {
            role: round(1000 * value / max(1, pending.written), 3)
            for role, value in outcome["cpu"].items()
            if not role.startswith("machine")
        },
        "load_avg_1m": [min(loads), max(loads)] if loads else None,
        "profile_top_self": outcome["profile"],
    }
    series = "  ".join(
        f"{s.t_s:.0f}s:{s.lag_changes}/{_ms(s.millis_behind_latest)}" for s in samples
    )
    rows = [
        Row("changes produced", pending.written),
        Row(
            "achieved write rate (/s)",
            achieved,
            None,
            None,
            Target("achieved_rate_per_s", ">=", float(params["rate"]), "/s"),
            achieved,
        ),
        Row("changes durable in the lake per second (write start → drained)", lake_rate),
        Row("lag every interval (t: changes / MillisBehindLatest ms)", series),
        Row("max lag (changes)", ours["max_lag_changes"]),
        Row("max MillisBehindLatest (ms)", ours["max_millis_behind_latest"]),
        Row("write → durable in the lake p50 (s)", fresh["p50_s"]),
        Row(
            "write → durable in the lake p95 (s)",
            fresh["p95_s"],
            None,
            None,
            Target("freshness_p95_s", "<=", 10, " s"),
            fresh["p95_s"],
        ),
        Row("write → durable in the lake max (s)", fresh["max_s"]),
        Row("drain after the last write (s)", outcome["drain_seconds"]),
        Row(
            "lost / stored duplicates (views dedupe) / reconcile gaps",
            f"{reconcile['lost']} / {reconcile['stored_duplicates']} / "
            f"{reconcile['reconcile_gaps']} "
            + ("(clean)" if reconcile["reconcile_clean"] else "(GAPS)"),
        ),
    ]
    notes = [
        f"consumer: {params['runner']} (startup {outcome['startup_s']} s before the first write)",
        f"freshness resolution: the lake is listed every {params['poll_s']} s",
        "lag in changes = produced (accepted by DynamoDB) minus durable in the lake",
    ]
    if pending.outstanding():
        notes.append(
            f"{pending.outstanding():,} changes were not durable when the drain timed out: the "
            "'lost' count includes them (still upstream of the lake when the stack stopped); "
            "only a run that drains completely proves 0 lost"
        )
    if outcome["cpu"]:
        notes.append(
            "CPU seconds over the run: "
            + ", ".join(f"{role} {value}" for role, value in outcome["cpu"].items())
        )
    if loads:
        notes.append(f"machine load average (1 min) during the run: {min(loads)} to {max(loads)}")
    if outcome["profile"]:
        notes.append("pipeline process, GIL holder: " + "; ".join(outcome["profile"][:8]))
    return BenchResult(
        bench="load", params=params, ours=ours, baseline={}, ratio={}, rows=rows, notes=notes
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else str(int(value))


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
