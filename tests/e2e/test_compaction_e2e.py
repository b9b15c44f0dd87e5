"""Compaction and late data on a lake written by the running pipeline (ADR 0033, 0034).

GIVEN the embedded stack under the stream's faults (duplicates, reordering, TTL deletes, ms/µs
mix) and the demo's producer workload, WHEN the scheduled compaction runs while the consumer and
catalog keep running, THEN each partition-hour is one object, rows = distinct events, every
named query answers as before and ``<table>_current`` still equals a Scan; AND a change written
afterwards (its event time falls in the compacted hour: late data) goes through the real
consumer and catalog, is visible at once, and the next compaction folds it in.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from changelake_catalog.maintenance import run
from changelake_catalog.settings import CatalogSettings
from changelake_cli.local_stack import LocalStack, free_port
from changelake_lake.layout import changes_table_name
from changelake_lake.query.current_check import compare
from changelake_lake.query.local_engine import LocalEngine
from changelake_lake.query.model import QueryError
from changelake_lake.query.named import load_all
from changelake_lake.rewrite import MANIFEST, generation_of, key_of

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

COUNT = 400
# Columns that count stored copies: compaction removes the stream's duplicates, so these
# become the distinct counts; everything else must be equal.
STORED_COPIES = {"rows_stored", "duplicate_rows", "files"}


def _distinct(engine: LocalEngine, table: str) -> int:
    try:
        return int(
            engine.run(f"SELECT count(DISTINCT event_id) FROM {changes_table_name(table)}").rows[0][
                0
            ]
        )
    except QueryError:
        return 0


def _named_answers(engine: LocalEngine, table: str, item_key: str, as_of: str) -> dict[str, Any]:
    params = {"item_key": item_key, "attribute": "phone", "limit": "1000", "as_of": as_of}
    answers: dict[str, Any] = {}
    for name, query in sorted(load_all().items()):
        wanted = {p: params[p] for p in query.parameter_names() if p in params}
        result = engine.run(query.sql(table), query.execution_parameters(wanted))
        answers[name] = [
            {k: v for k, v in r.items() if k not in STORED_COPIES} for r in result.records()
        ]
    return answers


def _objects_per_partition(bucket: str, database: str, table: str) -> dict[str, list[str]]:
    glue, s3 = boto3.client("glue"), boto3.client("s3")
    out: dict[str, list[str]] = {}
    for page in glue.get_paginator("get_partitions").paginate(
        DatabaseName=database, TableName=changes_table_name(table)
    ):
        for part in page["Partitions"]:
            prefix = key_of(bucket, part["StorageDescriptor"]["Location"])
            keys = [
                o["Key"]
                for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
                if not o["Key"].endswith(MANIFEST)
            ]
            out[prefix] = keys
    return out


def _wait(predicate: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_compaction_and_late_data_on_a_pipeline_written_lake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from changelake_emulator.faults import FaultConfig
    from changelake_producer.bootstrap import produce

    # The late change below must fall in the hour compacted here: not across an hour boundary.
    now = datetime.now(UTC)
    if now.minute == 59:
        time.sleep(61 - now.second)
    monkeypatch.setenv("CHANGELAKE_LOG_LEVEL", "WARNING")
    settings = CatalogSettings()
    table, bucket, database = settings.tables[0], settings.lake_bucket, settings.database
    faults = FaultConfig(
        seed=5, duplicate_rate=0.05, reorder_window=8, ttl_rate=0.3, precision_mix=True
    )
    with LocalStack(free_port(), settings=settings, faults=faults, precision="MICROSECOND"):
        produced = produce(count=COUNT, seed=8, settings=settings)
        engine = LocalEngine(database)
        _wait(lambda: _distinct(engine, table) >= produced.total, "the lake to catch up", 120)
        busiest = str(
            engine.run(
                f"SELECT item_key FROM {changes_table_name(table)} GROUP BY item_key "
                "ORDER BY count(DISTINCT event_id) DESC, item_key LIMIT 1"
            ).rows[0][0]
        )
        rows_before = engine.run(f"SELECT count(*) FROM {changes_table_name(table)}").rows[0][0]
        assert rows_before > produced.total  # the stream's duplicates are stored
        # The "as of" queries at the middle version of the busiest item's history.
        times = sorted(
            r[0]
            for r in engine.run(
                f"SELECT DISTINCT event_time FROM {changes_table_name(table)} "
                f"WHERE item_key = '{busiest}'"
            ).rows
        )
        middle = times[len(times) // 2]
        middle = middle.astimezone(UTC) if middle.tzinfo else middle.replace(tzinfo=UTC)
        as_of = middle.isoformat().replace("+00:00", "Z")
        before = _named_answers(engine, table, busiest, as_of)
        assert before["item_as_of"]  # the moment has data
        assert before["table_as_of"]
        assert compare(engine, table).equal

        # The scheduled task, 3 hours on: every hour written so far is sealed.
        later = lambda: datetime.now(UTC) + timedelta(hours=3)  # noqa: E731
        [summary] = run(settings, grace=timedelta(0), now=later)
        assert summary["partitions_compacted"] >= 1
        assert summary["duplicates_removed"] == rows_before - produced.total

        files = _objects_per_partition(bucket, database, table)
        assert all(len(keys) == 1 for keys in files.values()), files
        assert all(generation_of(table, _p(k), k) for k in files), files
        total = f"SELECT count(*), count(DISTINCT event_id) FROM {changes_table_name(table)}"
        assert engine.run(total).rows[0] == (produced.total, produced.total)
        assert _named_answers(engine, table, busiest, as_of) == before
        assert compare(engine, table).equal

        # Late data: a change now lands in the hour just compacted, through the real path.
        ddb = boto3.client("dynamodb", region_name=settings.region)
        ddb.put_item(TableName=table, Item={"pk": {"S": "late-person"}, "name": {"S": "Late"}})
        _wait(lambda: _distinct(engine, table) == produced.total + 1, "the late change")
        late = engine.run(
            f"SELECT count(*), min(dt || '/' || hour) FROM {changes_table_name(table)} "
            'WHERE item_key = \'{"pk":"late-person"}\''
        ).rows[0]
        assert late[0] == 1  # visible, once
        assert compare(engine, table).equal
        files = _objects_per_partition(bucket, database, table)
        [late_partition] = [k for k in files if f"dt={late[1].replace('/', '/hour=')}/" in k]
        assert len(files[late_partition]) == 2  # the compacted part + the late copy

        [summary] = run(settings, grace=timedelta(0), now=later)
        assert summary["partitions_compacted"] == 1
        files = _objects_per_partition(bucket, database, table)
        assert all(len(keys) == 1 for keys in files.values()), files
        assert engine.run(total).rows[0] == (produced.total + 1, produced.total + 1)
        assert compare(engine, table).equal


def _p(prefix: str) -> Any:
    from changelake_lake.layout import Partition

    dt = prefix.split("dt=")[1][:10]
    hour = prefix.split("hour=")[1][:2]
    return Partition(dt, hour)
