"""Several local runners on one stream (issue 18, finding 2): shard leases, no duplicates.

Real processes (`python -m changelake_consumer local`) against the emulator over HTTP: two
runners share a 4-shard stream, a third joins and gets its share, one is killed with SIGKILL
and the others take its shards over after the lease timeout. Every change is in the lake
exactly once.
"""

from __future__ import annotations

import io
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
from changelake.settings import ChangelakeSettings
from changelake_emulator.emulator import Emulator
from changelake_producer.bootstrap import produce
from changelake_testsupport.runners import RunnerProcesses

pytestmark = pytest.mark.e2e

TABLE = "leases-ckpt"
SETTINGS = ChangelakeSettings()


def runners_for(endpoint: str, tmp: Path) -> RunnerProcesses:
    """Local runner processes with a short lease timeout, logs in ``tmp``."""
    return RunnerProcesses(
        tmp,
        {
            "AWS_ENDPOINT_URL": endpoint,
            "CHANGELAKE_CHECKPOINT_TABLE": TABLE,
            "CHANGELAKE_LEASE_TIMEOUT_S": "2",
            "CHANGELAKE_SHARD_SYNC_S": "0.3",
            "CHANGELAKE_FLUSH_AGE_S": "0.3",
            "CHANGELAKE_GET_RECORDS_PER_S": "5",
        },
    )


def owners() -> Counter[str]:
    """Owner → shard leases held, from the lease table."""
    items = boto3.client("dynamodb").scan(TableName=TABLE, ConsistentRead=True)["Items"]
    return Counter(
        i["owner"]["S"] for i in items if "owner" in i and "#worker/" not in i["lease_key"]["S"]
    )


def _rows() -> list[dict[str, Any]]:
    s3 = boto3.client("s3")
    rows: list[dict[str, Any]] = []
    bucket = SETTINGS.lake_bucket
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="changes/"):
        for obj in page.get("Contents", []):
            data = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            rows.extend(pq.read_table(io.BytesIO(data)).to_pylist())
    return rows


def _wait(
    what: str, predicate: Callable[[], bool], runners: RunnerProcesses, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except Exception:  # the lease table may not exist yet
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached; owners {owners()}\n{runners.logs()}")
        time.sleep(0.2)


@pytest.mark.parametrize("emulator", [{"shards": 4}], indirect=True)
def test_local_runners_share_shards_and_take_over_after_sigkill(
    emulator: Emulator, tmp_path: Path
) -> None:
    runners = runners_for(emulator.endpoint, tmp_path)
    produced = 0
    try:
        # GIVEN two runners on a 4-shard stream: two shards each
        first, second = runners.start(), runners.start()
        _wait("2 runners, 2 shards each", lambda: sorted(owners().values()) == [2, 2], runners)
        produced += produce(count=120, seed=1, settings=SETTINGS).total
        _wait("first changes", lambda: len({r["event_id"] for r in _rows()}) == produced, runners)
        # WHEN a third runner joins THEN the shards are shared 2/1/1
        third = runners.start()
        _wait("3 runners share", lambda: sorted(owners().values()) == [1, 1, 2], runners)
        assert runners.owner_of(third, owners()) in owners()
        produced += produce(count=120, seed=2, settings=SETTINGS).total
        _wait("more changes", lambda: len({r["event_id"] for r in _rows()}) == produced, runners)
        # WHEN the runner with two shards is killed (SIGKILL: no flush, no release)
        victim = max((first, second, third), key=lambda p: owners()[runners.owner_of(p, owners())])
        dead = runners.owner_of(victim, owners())
        victim.kill()
        victim.wait()
        produced += produce(count=120, seed=3, settings=SETTINGS).total
        # THEN the two others take its shards over after the lease timeout: 2/2
        _wait(
            "take-over",
            lambda: dead not in owners() and sorted(owners().values()) == [2, 2],
            runners,
        )
        _wait("all changes", lambda: len({r["event_id"] for r in _rows()}) == produced, runners)
        time.sleep(1.0)  # a duplicate written late would show now
    finally:
        codes = runners.stop_all()
    rows = _rows()
    # AND every change is in the lake exactly once: 0 lost, 0 duplicated
    assert produced == 360
    assert len({r["event_id"] for r in rows}) == produced
    assert len(rows) == produced, Counter(r["event_id"] for r in rows).most_common(3)
    # AND the survivors stopped cleanly (the killed one by SIGKILL)
    assert sorted(c for c in codes if c is not None) == sorted([0, 0, -signal.SIGKILL])
