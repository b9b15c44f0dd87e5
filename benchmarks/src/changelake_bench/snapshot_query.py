"""The "current with snapshot" rows of `changelake bench query` (ADR 0035).

The same items changed for 1x and for 10x as many hours, written as the pipeline writes them
into moto (S3 + Glue over HTTP); a snapshot folds all but the last ``recent_hours``; then the
production ``<table>_current`` view runs through the local engine, which reports the bytes it
fetched (only the snapshot and the partitions the view's predicate keeps, as Athena bills).
The same query over the full history (ADR 0007's text) is measured beside it, and both must
give the same rows.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from changelake_bench.env import scoped_env
from changelake_bench.report import Row, Target, ratio

CURRENT = "SELECT item_key, new_image FROM persons_current ORDER BY item_key"


@dataclass(frozen=True, slots=True)
class Measured:
    """One history size: what the current-state query read, with and without the snapshot."""

    hours: int
    changes: int
    snapshot_bytes: int
    snapshot_seconds: float
    full_bytes: int
    full_seconds: float
    snapshot_take_seconds: float
    items: int
    same_answer: bool


def _measure(endpoint: str, hours: int, items: int, per_hour: int, recent: int) -> Measured:
    from changelake.adapters import aws
    from changelake.adapters.s3_store import S3ObjectStore
    from changelake_catalog.snapshot import Lake, take_snapshot
    from changelake_lake.adapters.glue_catalog import GlueCatalog
    from changelake_lake.query.local_engine import LocalEngine
    from changelake_lake.query.s3_objects import S3Objects
    from changelake_lake.views import current_view_sql

    from changelake_bench import history_lake

    bucket = f"bench-snapshot-{hours}"
    with scoped_env(AWS_ENDPOINT_URL=endpoint):
        # The project's client: dummy credentials at moto's loopback endpoint when the machine
        # has none (a fresh clone running `make bench`).
        aws.s3().create_bucket(Bucket=bucket)
        database = f"bench_snapshot_{hours}"
        catalog = GlueCatalog(bucket, database)
        catalog.ensure_database()
        store = S3ObjectStore(bucket)
        start = datetime(2026, 1, 1, tzinfo=UTC)
        spec = history_lake.HistorySpec(
            items=items,
            hours=hours,
            changes_per_hour=per_hour,
            start=start,
            records_per_object=per_hour,
            duplicate_share=0.01,
        )
        history = history_lake.write(spec, store, catalog)
        lake = Lake(catalog, S3Objects(), store)
        began = time.perf_counter()
        take_snapshot(
            lake, "persons", cut=history_lake.hour_of(spec, hours - recent), late_check_delay_s=0
        )
        took = time.perf_counter() - began
        engine = LocalEngine(database, catalog=catalog)
        began = time.perf_counter()
        with_snapshot = engine.run(CURRENT)
        snap_s = time.perf_counter() - began
        columns = [c.name for c in catalog.table_columns("persons") or ()]
        full_sql = current_view_sql("persons", columns, database)
        began = time.perf_counter()
        full = LocalEngine(database).run(
            f"SELECT item_key, new_image FROM ({full_sql}) f ORDER BY item_key"
        )
        full_s = time.perf_counter() - began
    return Measured(
        hours=hours,
        changes=history.changes,
        snapshot_bytes=with_snapshot.stats.bytes_read,
        snapshot_seconds=snap_s,
        full_bytes=full.stats.bytes_read,
        full_seconds=full_s,
        snapshot_take_seconds=took,
        items=len(with_snapshot.rows),
        same_answer=with_snapshot.rows == full.rows,
    )


def sizes_for(changes: int) -> dict[str, int]:
    """The 1x history for a query bench of ``changes`` changes: the full size from 100,000 on
    (2,000 items, 24 h of 200 changes), a small one for smoke runs."""
    if changes >= 100_000:
        return {"items": 2_000, "hours": 24, "per_hour": 200}
    return {"items": 200, "hours": 6, "per_hour": 40}


def run(
    *, items: int = 2_000, hours: int = 24, per_hour: int = 200, recent: int = 2
) -> tuple[dict[str, Any], list[Row], list[str]]:
    """Measure 1x and 10x history; the bench's ``ours`` entry, its rows and notes."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server.get_host_and_port()[1]}"
        one = _measure(endpoint, hours, items, per_hour, recent)
        ten = _measure(endpoint, hours * 10, items, per_hour, recent)
    finally:
        server.stop()
    growth = ratio(ten.snapshot_bytes, one.snapshot_bytes)
    notes = [
        f"MISMATCH: current with snapshot differs from the full history at {m.hours} h"
        for m in (one, ten)
        if not m.same_answer
    ]
    rows = [
        Row(
            f"current with snapshot: bytes scanned, 1x history ({one.hours} h)",
            one.snapshot_bytes,
            one.full_bytes,
            ratio(one.full_bytes, one.snapshot_bytes),
        ),
        Row(
            f"current with snapshot: bytes scanned, 10x history ({ten.hours} h)",
            ten.snapshot_bytes,
            ten.full_bytes,
            ratio(ten.full_bytes, ten.snapshot_bytes),
        ),
        Row(
            "current with snapshot: bytes scanned 10x / 1x history",
            ten.snapshot_bytes,
            one.snapshot_bytes,
            growth,
            Target("current_snapshot_bytes_10x_vs_1x", "<=", 1.5, "x"),
            growth,
        ),
        Row(
            f"current with snapshot: seconds, 10x history (same answer: {ten.same_answer})",
            ten.snapshot_seconds,
            ten.full_seconds,
            ratio(ten.full_seconds, ten.snapshot_seconds),
        ),
    ]
    ours = {
        "current_with_snapshot": {
            f"{m.hours}h": {
                "changes": m.changes,
                "items_live": m.items,
                "bytes_with_snapshot": m.snapshot_bytes,
                "bytes_full_history": m.full_bytes,
                "seconds_with_snapshot": m.snapshot_seconds,
                "seconds_full_history": m.full_seconds,
                "seconds_to_take_snapshot": m.snapshot_take_seconds,
                "same_answer": m.same_answer,
            }
            for m in (one, ten)
        }
        | {"bytes_10x_vs_1x": growth, "recent_hours_not_folded": recent}
    }
    return ours, rows, notes
