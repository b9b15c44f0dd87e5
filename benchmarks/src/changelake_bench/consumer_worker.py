"""One consumer path measured in a fresh process (``python -m …bench.consumer_worker``).

Each path runs in its own interpreter so that imports, caches and heap growth of one path
neither help nor hurt another, and so that peak RSS belongs to that path alone. The process
is pinned to one Arrow thread (the bench is single core). It prints one JSON line and exits
with ``os._exit``: importing awswrangler next to pyarrow makes interpreter teardown abort
intermittently ("terminate called without an active exception"), which must not turn a
finished measurement into a failure.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import resource
import sys
import time
from typing import Any


def _rss_mb() -> float:
    # ru_maxrss is KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    path: str, *, count: int, batch: int, reps: int, seed: int, profile: str | None = None
) -> dict[str, Any]:
    """Best-of-``reps`` seconds to turn ``count`` records into Parquet, ``batch`` per object.

    With ``profile``, one extra untimed repetition runs under pyinstrument and its profile is
    written there as text (input generation, imports and warm-up excluded).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    from changelake_bench import consumer_paths
    from changelake_bench.records import records

    try:
        fn = consumer_paths.resolve(path)
    except consumer_paths.PathUnavailableError as exc:
        return {"path": path, "available": False, "reason": str(exc)}
    data = records(count, seed=seed)
    digest = hashlib.sha256(b"".join(raw for raw, _ in data)).hexdigest()[:16]
    input_bytes = sum(len(raw) for raw, _ in data)
    batches = [data[i : i + batch] for i in range(0, len(data), batch)]
    fn(batches[0][: min(len(batches[0]), 1000)])  # warm-up: imports, caches, first allocations
    times = []
    outputs: list[bytes] = []
    for _ in range(reps):
        outputs = []
        start = time.perf_counter()
        for chunk in batches:
            outputs.extend(fn(chunk))
        times.append(time.perf_counter() - start)
    if profile:
        # One extra repetition under the profiler, after the timed ones: the sampling
        # profiler's overhead must not leak into the reported figures.
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
        for chunk in batches:
            fn(chunk)
        profiler.stop()
        with open(profile, "w", encoding="utf-8") as fh:
            fh.write(profiler.output_text(unicode=True, color=False, show_all=False))
    rows = sum(pq.ParquetFile(io.BytesIO(b)).metadata.num_rows for b in outputs)
    best = min(times)
    return {
        "path": path,
        "available": True,
        "records": count,
        "input_bytes": input_bytes,
        "input_sha256_16": digest,
        "rows_out": rows,
        "parquet_bytes": sum(len(b) for b in outputs),
        "seconds_best": round(best, 4),
        "seconds_all": [round(t, 4) for t in times],
        "records_per_s": round(count / best, 1),
        "mb_per_s": round(input_bytes / best / 1e6, 2),
        "peak_rss_mb": round(_rss_mb(), 1),
    }


def measure_rss(count: int, batch: int, seed: int) -> dict[str, Any]:
    """Peak RSS of ours streaming ``count`` records in batches, input generated lazily."""
    import pyarrow as pa

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    from changelake_bench import consumer_paths
    from changelake_bench.records import generate

    fn = consumer_paths.resolve("ours")
    before = _rss_mb()
    chunk: list[Any] = []
    written = 0
    for change in generate(count, seed=seed):
        chunk.append((change.data, change.position))
        if len(chunk) == batch:
            written += sum(len(b) for b in fn(chunk))
            chunk = []
    if chunk:
        written += sum(len(b) for b in fn(chunk))
    return {
        "path": "ours_rss",
        "available": True,
        "records": count,
        "batch": batch,
        "rss_after_imports_mb": round(before, 1),
        "peak_rss_mb": round(_rss_mb(), 1),
        "parquet_bytes": written,
    }


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, measure, print one JSON line, exit hard (see module docstring)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", default=None, help="write a pyinstrument text profile here")
    args = parser.parse_args(argv)
    try:
        if args.path == "ours_rss":
            result = measure_rss(args.count, args.batch, args.seed)
        else:
            result = measure(
                args.path,
                count=args.count,
                batch=args.batch,
                reps=args.reps,
                seed=args.seed,
                profile=args.profile,
            )
    except Exception as exc:  # reported in the bench's notes, not a crash of the whole run
        result = {"path": args.path, "available": False, "reason": f"failed: {exc!r}"[:2000]}
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
