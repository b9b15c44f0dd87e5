"""Catalog bench: Parquet object written → its partition visible in Glue, and Glue calls.

The catalog service runs as it does in the local stack (SQS long poll, footer reads, batched
``BatchCreatePartition``) against a fresh emulator; its Glue endpoint goes through a counting
proxy so every Glue call it makes is counted by operation. A poller (direct to the emulator,
not counted) notes when each partition appears.

Baseline: the common per-object registrar (one Lambda per S3 event calling ``GetPartition``
then ``CreatePartition``), run against the same emulator, its calls counted the same way. Its
latency excludes any Lambda or event-delivery delay (it is called in process right after the
PUT), so it is a lower bound for that design.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from changelake.timeutil import datetime_to_us
from changelake_cli.stats import percentile
from changelake_emulator.fault_proxy import FaultProxy
from changelake_lake import layout
from changelake_lake.layout import Partition

from changelake_bench.env import (
    bootstrapped_moto,
    boto_client,
    fake_aws_env,
    scoped_env,
)
from changelake_bench.lake import our_writer
from changelake_bench.records import TABLE, generate
from changelake_bench.report import BenchResult, Progress, Row, Target, ratio

_START = datetime(2026, 2, 1, tzinfo=UTC)
_BUCKET = "changelake-lake"
_DATABASE = "changelake"
# Calls about partitions, as opposed to one-off table, schema and view upkeep.
_PARTITION_OPS = frozenset(
    {
        "BatchCreatePartition",
        "CreatePartition",
        "GetPartition",
        "GetPartitions",
        "BatchGetPartition",
    }
)


def _objects(
    partitions: list[Partition], per_partition: int, rows: int, seed: int
) -> list[tuple[Partition, str, bytes]]:
    _, writer = our_writer()
    out = []
    for i, part in enumerate(partitions):
        start_us = datetime_to_us(part.start())
        changes = list(
            generate(rows * per_partition, seed=seed + i, start_us=start_us, span_us=3_600_000_000)
        )
        for j in range(per_partition):
            chunk = [(c.data, c.position) for c in changes[j * rows : (j + 1) * rows]]
            first, last = chunk[0][1], chunk[-1][1]
            key = layout.change_object_key(
                TABLE, part, first.shard_id, first.sequence_number, last.sequence_number
            )
            out.append((part, key, writer(chunk)))
    return out


def _glue_partitions(glue: Any, table: str) -> set[Partition]:
    found: set[Partition] = set()
    try:
        for page in glue.get_paginator("get_partitions").paginate(
            DatabaseName=_DATABASE, TableName=table
        ):
            for p in page["Partitions"]:
                found.add(Partition(p["Values"][0], p["Values"][1]))
    except glue.exceptions.EntityNotFoundException:
        pass
    return found


def _watch(
    glue: Any,
    table: str,
    wanted: set[Partition],
    seen: dict[Partition, float],
    stop: threading.Event,
) -> None:
    while not stop.is_set() and len(seen) < len(wanted):
        now = time.monotonic()
        for part in _glue_partitions(glue, table) & wanted:
            seen.setdefault(part, now)
        stop.wait(0.05)


def _measure(
    objects: list[tuple[Partition, str, bytes]],
    s3: Any,
    glue: Any,
    *,
    table: str,
    on_put: Callable[[Partition, str], None] | None,
    timeout_s: float,
) -> tuple[list[float], int]:
    wanted = {p for p, _, _ in objects}
    first_put: dict[Partition, float] = {}
    seen: dict[Partition, float] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(glue, table, wanted, seen, stop), daemon=True)
    watcher.start()
    try:
        for part, key, data in objects:
            s3.put_object(Bucket=_BUCKET, Key=key, Body=data)
            first_put.setdefault(part, time.monotonic())
            if on_put is not None:
                on_put(part, key)
        deadline = time.monotonic() + timeout_s
        while len(seen) < len(wanted) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        watcher.join(10)
    latencies = [seen[p] - first_put[p] for p in wanted if p in seen]
    return latencies, len(wanted) - len(seen)


def run(
    *,
    partitions: int = 50,
    objects_per_partition: int = 4,
    rows_per_object: int = 50,
    seed: int = 7,
    timeout_s: float = 120.0,
    progress: Progress | None = None,
) -> BenchResult:
    """Measure the catalog service, then the per-object baseline, on one fresh emulator."""
    say = progress or (lambda _m: None)
    ours_parts = [layout.partition_for(_START + timedelta(hours=h)) for h in range(partitions)]
    base_parts = [
        layout.partition_for(_START + timedelta(hours=partitions + h)) for h in range(partitions)
    ]
    say(f"catalog: preparing {partitions * objects_per_partition * 2} Parquet objects")
    ours_objects = _objects(ours_parts, objects_per_partition, rows_per_object, seed)
    base_objects = _objects(base_parts, objects_per_partition, rows_per_object, seed + 10_000)

    from changelake_catalog.bootstrap import local_service

    changes_table = layout.changes_table_name(TABLE)
    with bootstrapped_moto() as endpoint, FaultProxy(endpoint) as proxy:
        s3, glue = boto_client("s3", endpoint), boto_client("glue", endpoint)
        env = {**fake_aws_env(), "AWS_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL_GLUE": proxy.url}
        with scoped_env(**env):
            service = local_service()
            service.start()
            try:
                say(f"catalog: ours — {len(ours_objects)} objects into {partitions} partitions")
                ours_lat, ours_missing = _measure(
                    ours_objects, s3, glue, table=changes_table, on_put=None, timeout_s=timeout_s
                )
            finally:
                service.stop()
        ours_calls = proxy.snapshot()

        say("catalog: baseline — per-object GetPartition + CreatePartition")
        base_table = f"{changes_table}_perobject"
        described = glue.get_table(DatabaseName=_DATABASE, Name=changes_table)["Table"]
        sd = dict(described["StorageDescriptor"])
        glue.create_table(
            DatabaseName=_DATABASE,
            TableInput={
                "Name": base_table,
                "StorageDescriptor": sd,
                "PartitionKeys": described.get("PartitionKeys", []),
                "TableType": "EXTERNAL_TABLE",
            },
        )
        counted = boto_client("glue", proxy.url)
        before = proxy.snapshot()

        def per_object(part: Partition, key: str) -> None:
            # The usual Lambda: look the partition up, create it if it is missing.
            try:
                counted.get_partition(
                    DatabaseName=_DATABASE, TableName=base_table, PartitionValues=part.values
                )
            except counted.exceptions.EntityNotFoundException:
                location = f"s3://{_BUCKET}/{layout.changes_partition_prefix(TABLE, part)}"
                counted.create_partition(
                    DatabaseName=_DATABASE,
                    TableName=base_table,
                    PartitionInput={
                        "Values": part.values,
                        "StorageDescriptor": {**sd, "Location": location},
                    },
                )

        base_lat, base_missing = _measure(
            base_objects, s3, glue, table=base_table, on_put=per_object, timeout_s=timeout_s
        )
        after = proxy.snapshot()
    base_calls = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    base_calls = {k: v for k, v in base_calls.items() if v}

    def summary(lat: list[float], calls: dict[str, int], missing: int) -> dict[str, Any]:
        total = sum(calls.values())
        partition_calls = sum(v for k, v in calls.items() if k in _PARTITION_OPS)
        return {
            "partition_calls": partition_calls,
            "partition_calls_per_partition": (
                round(partition_calls / partitions, 3) if partitions else None
            ),
            "partitions": partitions,
            "objects": partitions * objects_per_partition,
            "visible": len(lat),
            "missing_after_timeout": missing,
            "latency_p50_s": _r(percentile(lat, 50)),
            "latency_p95_s": _r(percentile(lat, 95)),
            "latency_max_s": _r(max(lat) if lat else None),
            "glue_calls": total,
            "glue_calls_by_operation": calls,
            "glue_calls_per_partition": round(total / partitions, 3) if partitions else None,
            "batch_create_partition_calls": calls.get("BatchCreatePartition", 0),
        }

    ours = summary(ours_lat, ours_calls, ours_missing)
    base = summary(base_lat, base_calls, base_missing)
    ratios = {
        "fewer_partition_calls_per_partition": ratio(
            base["partition_calls_per_partition"], ours["partition_calls_per_partition"]
        ),
        "fewer_glue_calls_per_partition": ratio(
            base["glue_calls_per_partition"], ours["glue_calls_per_partition"]
        ),
        "ours_latency_p95_over_baseline": ratio(ours["latency_p95_s"], base["latency_p95_s"]),
    }
    rows = [
        Row("partition visible p50 (s)", ours["latency_p50_s"], base["latency_p50_s"]),
        Row(
            "partition visible p95 (s)",
            ours["latency_p95_s"],
            base["latency_p95_s"],
            None,
            Target("latency_p95_s", "<=", 2, " s"),
            ours["latency_p95_s"],
        ),
        Row("partition visible max (s)", ours["latency_max_s"], base["latency_max_s"]),
        Row(
            "Glue partition calls per partition",
            ours["partition_calls_per_partition"],
            base["partition_calls_per_partition"],
            ratios["fewer_partition_calls_per_partition"],
        ),
        Row(
            "Glue calls per partition (all, incl. table/schema/view upkeep)",
            ours["glue_calls_per_partition"],
            base["glue_calls_per_partition"],
            ratios["fewer_glue_calls_per_partition"],
        ),
        Row(
            "BatchCreatePartition calls",
            ours["batch_create_partition_calls"],
            base["batch_create_partition_calls"],
        ),
        Row(
            "partitions not visible before timeout",
            ours["missing_after_timeout"],
            base["missing_after_timeout"],
        ),
    ]
    notes = [
        "ours counts every Glue call of the service (table creation, schema merge, view, "
        "partitions); the baseline only registers partitions into an existing table",
        "baseline latency excludes S3-event and Lambda delivery (called in process after PUT)",
    ]
    return BenchResult(
        bench="catalog",
        params={
            "partitions": partitions,
            "objects_per_partition": objects_per_partition,
            "rows_per_object": rows_per_object,
            "seed": seed,
            "poll_interval_s": 0.05,
        },
        ours=ours,
        baseline=base,
        ratio=ratios,
        rows=rows,
        notes=notes,
    )


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
