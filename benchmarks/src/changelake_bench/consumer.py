"""Consumer bench: the same seeded records → Parquet bytes, single core, four ways.

Paths: naive (json + boto3 TypeDeserializer + ``Table.from_pylist``), awswrangler (pandas →
awswrangler's Arrow/Parquet writer), ours (the consumer's pure records→Parquet function), ours
with a privacy policy of the sample's shape (the policy's throughput cost), ours behind
amazon_kclpy's protocol layer, and ours through the real KCL MultiLangDaemon on the emulator,
end to end (``consumer_daemon``). Each path runs in a fresh subprocess (see
``consumer_worker``) one after the other, inside the same command run; peak RSS of ours is
measured in one more fresh subprocess that streams its input.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from changelake_bench.report import BenchResult, Progress, Row, Target, ratio


def run_worker(
    path: str, *, count: int, batch: int, reps: int, seed: int, profile: Path | None = None
) -> dict[str, Any]:
    """Run one path in a fresh interpreter and return its JSON result."""
    cmd = [
        sys.executable,
        "-m",
        "changelake_bench.consumer_worker",
        path,
        "--count",
        str(count),
        "--batch",
        str(batch),
        "--reps",
        str(reps),
        "--seed",
        str(seed),
    ]
    if profile is not None:
        cmd += ["--profile", str(profile)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"consumer worker {path} failed (exit {proc.returncode}): {proc.stderr[-2000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run(
    *,
    count: int = 100_000,
    batch: int = 10_000,
    reps: int = 3,
    seed: int = 7,
    progress: Progress | None = None,
    profile_dir: Path | None = None,
    daemon: bool = True,
) -> BenchResult:
    """Measure every path and compare ours against the two baselines."""
    say = progress or (lambda _msg: None)
    results: dict[str, dict[str, Any]] = {}
    for path in ("naive", "awswrangler", "ours", "ours_privacy", "ours_kcl"):
        say(f"consumer: {path} ({count:,} records, best of {reps})")
        profile = profile_dir / f"consumer-{path}.txt" if profile_dir and path == "ours" else None
        results[path] = run_worker(
            path, count=count, batch=batch, reps=reps, seed=seed, profile=profile
        )
    if daemon:
        from changelake_bench import consumer_daemon

        say(f"consumer: ours through the real MultiLangDaemon ({count:,} records, end to end)")
        results["ours_daemon"] = consumer_daemon.measure(count=count, batch=batch, seed=seed)
    else:
        results["ours_daemon"] = {
            "path": "ours_daemon",
            "available": False,
            "reason": "skipped (--no-daemon)",
        }
    say("consumer: peak RSS of ours (fresh process, streamed input)")
    rss = run_worker("ours_rss", count=count, batch=batch, reps=1, seed=seed)

    digests = {r.get("input_sha256_16") for r in results.values() if r.get("available")}
    notes = []
    if len(digests) > 1:
        notes.append(f"input digests differ between paths: {sorted(d or '' for d in digests)}")
    for name, res in results.items():
        if not res.get("available"):
            notes.append(f"{name} not measured: {res.get('reason')}")
        elif res.get("rows_out") != count:
            notes.append(f"{name} wrote {res.get('rows_out')} rows for {count} records")

    def speed(name: str, key: str) -> float | None:
        res = results[name]
        return float(res[key]) if res.get("available") else None

    ours_rps, naive_rps, wr_rps = (
        speed(p, "records_per_s") for p in ("ours", "naive", "awswrangler")
    )
    kcl_rps = speed("ours_kcl", "records_per_s")
    daemon_rps = speed("ours_daemon", "records_per_s")
    privacy_rps = speed("ours_privacy", "records_per_s")
    peak = float(rss["peak_rss_mb"]) if rss.get("available") else None
    ratios = {
        "ours_vs_naive": ratio(ours_rps, naive_rps),
        "ours_vs_awswrangler": ratio(ours_rps, wr_rps),
        "ours_kcl_vs_naive": ratio(kcl_rps, naive_rps),
        "ours_kcl_vs_awswrangler": ratio(kcl_rps, wr_rps),
        "ours_daemon_vs_ours": ratio(daemon_rps, ours_rps),
        "ours_privacy_vs_ours": ratio(privacy_rps, ours_rps),
    }
    rows = [
        Row(
            "records/s — ours vs naive",
            ours_rps,
            naive_rps,
            ratios["ours_vs_naive"],
            Target("ours_vs_naive", ">=", 10, "x"),
            ratios["ours_vs_naive"],
        ),
        Row(
            "records/s — ours vs awswrangler",
            ours_rps,
            wr_rps,
            ratios["ours_vs_awswrangler"],
            Target("ours_vs_awswrangler", ">=", 3, "x"),
            ratios["ours_vs_awswrangler"],
        ),
        Row(
            "MB/s — ours vs naive",
            speed("ours", "mb_per_s"),
            speed("naive", "mb_per_s"),
            ratio(speed("ours", "mb_per_s"), speed("naive", "mb_per_s")),
        ),
        Row(
            "MB/s — ours vs awswrangler",
            speed("ours", "mb_per_s"),
            speed("awswrangler", "mb_per_s"),
            ratio(speed("ours", "mb_per_s"), speed("awswrangler", "mb_per_s")),
        ),
        Row(
            "records/s — ours via amazon_kclpy vs naive",
            kcl_rps,
            naive_rps,
            ratios["ours_kcl_vs_naive"],
        ),
        Row(
            "records/s — ours through the real MultiLangDaemon (end to end) vs ours",
            daemon_rps,
            ours_rps,
            ratios["ours_daemon_vs_ours"],
        ),
        Row(
            "records/s — ours with a privacy policy (2 hashed, 1 masked) vs ours",
            privacy_rps,
            ours_rps,
            ratios["ours_privacy_vs_ours"],
        ),
        Row(
            "peak RSS MB — ours (fresh process)",
            peak,
            None,
            None,
            Target("peak_rss_mb", "<=", 300, " MB"),
            peak,
        ),
    ]
    return BenchResult(
        bench="consumer",
        params={
            "records": count,
            "batch": batch,
            "reps": reps,
            "seed": seed,
            "mean_record_bytes": _mean_size(results, count),
            "arrow_threads": 1,
        },
        ours={
            "direct": results["ours"],
            "privacy": results["ours_privacy"],
            "kcl": results["ours_kcl"],
            "daemon": results["ours_daemon"],
            "rss": rss,
        },
        baseline={"naive": results["naive"], "awswrangler": results["awswrangler"]},
        ratio=ratios,
        rows=rows,
        notes=notes,
    )


def _mean_size(results: dict[str, dict[str, Any]], count: int) -> float | None:
    for res in results.values():
        if res.get("available") and count:
            return round(int(res["input_bytes"]) / count, 1)
    return None
