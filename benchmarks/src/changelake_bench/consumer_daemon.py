"""Consumer bench path "ours through the real MultiLangDaemon": records/s end to end.

The same seeded records as every other path are put on a 2-shard Kinesis stream of the
emulator *before* the daemon starts (a backlog, so the measure is throughput, not arrival
rate); then the Java KCL daemon (``KclDaemon``, as on ECS) reads them with our record
processor, which writes Parquet to the emulator's S3 (``batch`` rows per object at most).
Timed: from the first record processor's start (the KCL's startup — JVM, lease table, lease
assignment — is reported apart, it is no throughput) until every row is durable in S3. This
includes GetRecords over HTTP/2, the MultiLang JSON protocol, decoding, Parquet and S3 PUTs:
it is not single core like the other paths (JVM, emulator and processors share the machine).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

PUT_BATCH = 500
TIMEOUT_S = 600.0


def measure(*, count: int, batch: int, seed: int) -> dict[str, Any]:
    """Run the path once; the same result keys as the in-process paths (plus startup_s)."""
    import pyarrow.parquet as pq
    from changelake.settings import ChangelakeSettings
    from changelake_consumer.kcl_daemon import KclDaemon
    from changelake_consumer.kcl_properties import KclUnavailableError, check_available
    from changelake_consumer.settings import ConsumerSettings
    from changelake_emulator.adapters.clients import emulator_client
    from changelake_emulator.emulator import Emulator

    from changelake_bench.env import scoped_env
    from changelake_bench.records import records

    path = "ours_daemon"
    try:
        check_available(ConsumerSettings())
    except KclUnavailableError as exc:
        return {"path": path, "available": False, "reason": str(exc)}
    data = records(count, seed=seed)
    digest = hashlib.sha256(b"".join(raw for raw, _ in data)).hexdigest()[:16]
    settings = ChangelakeSettings()
    with tempfile.TemporaryDirectory() as tmp, Emulator(0, settings=settings) as emulator:
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": emulator.endpoint,
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "changelake-local"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "changelake-local"),
            "AWS_REGION": settings.region,
            "CHANGELAKE_FLUSH_ROWS": str(batch),
            "CHANGELAKE_FLUSH_AGE_S": "1",
            "CHANGELAKE_GET_RECORDS_PER_S": "5",
            "CHANGELAKE_SHARD_SYNC_S": "1",
            "CHANGELAKE_KCL_FAILOVER_MS": "3000",
            "CHANGELAKE_LOG_LEVEL": "INFO",
        }
        kinesis = emulator_client("kinesis", emulator.endpoint, settings.region)
        s3 = emulator_client("s3", emulator.endpoint, settings.region)
        for i in range(0, len(data), PUT_BATCH):
            chunk = data[i : i + PUT_BATCH]
            kinesis.put_records(
                StreamName=settings.stream_name,
                Records=[
                    {"Data": raw, "PartitionKey": str(i + n)} for n, (raw, _) in enumerate(chunk)
                ],
            )
        log_path = Path(tmp) / "daemon.log"
        consumer_settings = ConsumerSettings(
            kcl_failover_ms=3000,
            shard_sync_s=1,
            kcl_properties_path=str(Path(tmp) / "kcl.properties"),
        )
        # The rendered properties take the endpoints from os.environ.
        with scoped_env(AWS_ENDPOINT_URL=emulator.endpoint), log_path.open("wb") as log:
            daemon = KclDaemon(consumer_settings, env=env, stderr=log)
            started = time.time()
            daemon.start()
            try:
                rows, last = _wait_for_rows(s3, settings.lake_bucket, count, pq, io)
            finally:
                daemon.kill()  # every row is durable (or we gave up): no graceful stop needed
        first = _first_processor_start(log_path)
    if first is None or rows != count:
        return {"path": path, "available": False, "reason": f"{rows} of {count} rows landed"}
    seconds = max(last - first, 1e-9)
    input_bytes = sum(len(raw) for raw, _ in data)
    return {
        "path": path,
        "available": True,
        "records": count,
        "rows_out": rows,
        "input_bytes": input_bytes,
        "input_sha256_16": digest,
        "seconds": round(seconds, 3),
        "records_per_s": round(count / seconds, 1),
        "mb_per_s": round(input_bytes / seconds / 1e6, 3),
        "startup_s": round(first - started, 1),
    }


def _wait_for_rows(s3: Any, bucket: str, count: int, pq: Any, io_mod: Any) -> tuple[int, float]:
    """Rows durable under changes/ (Parquet footers), and when the last one landed."""
    seen: dict[str, int] = {}
    deadline = time.monotonic() + TIMEOUT_S
    last = time.time()
    while sum(seen.values()) < count and time.monotonic() < deadline:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="changes/")
        for obj in (o for page in pages for o in page.get("Contents", [])):
            if obj["Key"] not in seen:
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                seen[obj["Key"]] = pq.ParquetFile(io_mod.BytesIO(body)).metadata.num_rows
                last = time.time()
        time.sleep(0.2)
    return sum(seen.values()), last


def _first_processor_start(log_path: Path) -> float | None:
    """Epoch seconds of the first record processor's ``initialized`` log line."""
    for raw in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if line.get("message") == "initialized" and line.get("time"):
            return datetime.fromisoformat(str(line["time"])).timestamp()
    return None
