"""The real KCL 3 MultiLangDaemon (Java) driving our record processor, on the emulator.

Every test runs the daemon as ECS does (``KclDaemon``: the JVM, one Python record processor per
leased shard) against the emulator over HTTP/1.1 + h2c (ADR 0015), with the catalog running, and
checks what comes out through the local query engine: ``<table>_changes`` holds each change
exactly once with DynamoDB's values and ``<table>_current`` equals a Scan. The KCL's timing
knobs are turned down (failover 3 s, shard sync 1 s) so a run fits CI; ADR 0016 says why each
is what it is on ECS.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from changelake import ddb_json
from changelake.events import item_key
from changelake.settings import ChangelakeSettings
from changelake_cli.local_stack import LocalStack, free_port
from changelake_consumer.kcl_daemon import KclDaemon
from changelake_consumer.settings import ConsumerSettings
from changelake_kcl import leader, lease_table, owners, worker_id
from changelake_lake.layout import changes_table_name
from changelake_lake.query.current_check import compare
from changelake_lake.query.local_engine import LocalEngine
from changelake_lake.query.model import QueryError

pytestmark = [pytest.mark.kcl, pytest.mark.e2e, pytest.mark.timeout(300)]

FAILOVER_MS = 3000
# KCL 3: a lease not renewed for failoverTimeMillis is expired; the leader's assignment runs
# every leaseAssignmentIntervalMillis (2 x failover) and gives a dead worker's leases away once
# its metrics are 2 reports old (workerMetricsReporterFreqInMillis = failover here): about
# 2 + 2 failover times, plus slack for a loaded CI machine.
TAKEOVER_BUDGET_S = 5 * FAILOVER_MS / 1000 + 15
SETTINGS = ChangelakeSettings()
TABLE = SETTINGS.tables[0]


@pytest.fixture
def kcl_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fast KCL timings for tests, and metrics flushed every second (read from the log)."""
    for name, value in {
        "CHANGELAKE_KCL_FAILOVER_MS": str(FAILOVER_MS),
        "CHANGELAKE_SHARD_SYNC_S": "1",
        "CHANGELAKE_FLUSH_AGE_S": "0.5",
        "CHANGELAKE_METRICS_FLUSH_S": "1",
        "CHANGELAKE_LOG_LEVEL": "INFO",
    }.items():
        monkeypatch.setenv(name, value)


class Daemons:
    """KCL workers started by the stack (after it set AWS_ENDPOINT_URL), each with its log."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[KclDaemon] = []
        self.logs: list[Path] = []

    def factory(self) -> Any:
        """A local-stack service factory building one more daemon."""

        def build() -> KclDaemon:
            n = len(self.started)
            log = self.folder / f"daemon-{n}.log"
            properties = self.folder / f"kcl-{n}.properties"
            settings = ConsumerSettings(kcl_properties_path=str(properties))
            daemon = KclDaemon(settings, stderr=log.open("wb"))
            self.started.append(daemon)
            self.logs.append(log)
            return daemon

        return build

    def lines(self, n: int) -> list[dict[str, Any]]:
        """Daemon ``n``'s stderr: every line must be a JSON object (JVM and processors)."""
        out = []
        for raw in self.logs[n].read_text(encoding="utf-8", errors="replace").splitlines():
            if raw.strip():
                out.append(json.loads(raw))  # a non-JSON line fails the test here
        return out

    def records_in(self, n: int) -> int:
        """Records the daemon's processors received, from their periodic metrics lines."""
        return int(
            sum(
                line.get("counters", {}).get("records_in", 0)
                for line in self.lines(n)
                if line.get("message") == "metrics"
            )
        )


FORCED_SHUTDOWN = "Lease failover time is reached, so forcing shutdown."
MULTILANG_PROCESSOR = "software.amazon.kinesis.multilang.MultiLangShardRecordProcessor"


def forced_shutdown_tolerated(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The daemon's log without what a forced last step of a graceful shutdown logs.

    On SIGTERM the KCL (3.1.3, ``GracefulShutdownCoordinator``) first waits until every record
    processor has answered ``shutdownRequested`` (flushed and checkpointed), then starts the
    worker's shutdown: the leases are dropped, the processors get ``leaseLost``, and those not
    ended ``failoverTimeMillis`` later are interrupted (``Scheduler.shouldShutdown``:
    "Lease failover time is reached, so forcing shutdown"). The interrupted wait on a child's
    output is an ERROR line with an ``InterruptedException``. With the tests' 3 s failover a
    loaded machine gets there (reproduced with 1 s: the checkpoints were all written before);
    a 10 s failover costs ~40 s more here (lease assignment waits 2 failover times). Only those
    lines, after the forced-shutdown line, are left out; the data and checkpoint assertions
    say whether the shutdown did its work.
    """
    messages = [str(line.get("message")) for line in lines]
    if FORCED_SHUTDOWN not in messages:
        return lines
    forced_at = messages.index(FORCED_SHUTDOWN)
    return [
        line
        for i, line in enumerate(lines)
        if not (
            i > forced_at
            and line.get("logger") == MULTILANG_PROCESSOR
            and messages[i].startswith("Encountered error while draining STD")
            and str(line.get("exception")).startswith("java.lang.InterruptedException")
        )
    ]


def catalog_factory() -> Any:
    return __import__("changelake_catalog.bootstrap").bootstrap.local_service()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until ``predicate()`` held; fails naming ``what`` after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)
    return time.monotonic() - started


# -- the workload: every DynamoDB type, inserts, updates, deletes ---------------------------


def person(i: int, version: int) -> dict[str, Any]:
    """An item with every DynamoDB type (S N B BOOL NULL M L SS NS BS)."""
    return {
        "pk": f"p{i:03d}",
        "version": Decimal(version),
        "name": f"Zoë {i} v{version} 🚀",
        "balance": Decimal("-1234567890123456789012345678.123456789"),
        "photo": bytes([i % 256, 0, 255, version]),
        "active": (i + version) % 2 == 0,
        "nothing": None,
        "address": {"city": f"City {i % 5}", "geo": {"lat": Decimal("45.764043")}},
        "history": [Decimal(version), "two", None, {"k": True}],
        "tags": {f"t{i % 3}", "all"},
        "scores": {Decimal("1.5"), Decimal(i + 10)},
        "blobs": {b"\x00", bytes([i % 256 + 1 if i % 256 < 255 else 1])},
    }


class Workload:
    """Writes changes through boto3 and remembers each one's expected image."""

    def __init__(self) -> None:
        self.table = boto3.resource("dynamodb").Table(TABLE)
        self.changes = 0
        self.images: dict[tuple[str, int], str] = {}  # (item_key, version) -> image JSON
        self.last: dict[int, dict[str, Any]] = {}

    def put(self, i: int) -> None:
        version = int(self.last[i]["version"]) + 1 if i in self.last else 1
        item = person(i, version)
        self.table.put_item(Item=item)
        self.last[i] = item
        image = ddb_json.image_to_json(item)
        assert image is not None
        self.images[(item_key({"pk": item["pk"]}), version)] = image
        self.changes += 1

    def delete(self, i: int) -> None:
        self.table.delete_item(Key={"pk": f"p{i:03d}"})
        del self.last[i]
        self.changes += 1

    def run(self, items: range, *, pause_s: float = 0.0) -> None:
        """Insert every item, update two in three, delete one in five."""
        for i in items:
            self.put(i)
        for i in items:
            if i % 3:
                self.put(i)
                time.sleep(pause_s)
        for i in items:
            if i % 5 == 0:
                self.delete(i)


def changes_rows(engine: LocalEngine) -> list[dict[str, Any]]:
    try:
        result = engine.run(
            "SELECT event_id, event_name, item_key, new_image, old_image, shard_id, "
            f"sequence_number FROM {changes_table_name(TABLE)}"
        )
    except QueryError:
        return []  # the catalog has not created the table yet
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def assert_lake_matches(engine: LocalEngine, work: Workload) -> list[dict[str, Any]]:
    """N rows, N distinct events, each image as written, and _current = Scan."""
    rows = changes_rows(engine)
    assert len({r["event_id"] for r in rows}) == work.changes  # nothing lost
    assert len(rows) == work.changes  # nothing doubled, even as rows before the views' dedupe
    for row in rows:
        if row["event_name"] == "REMOVE":
            assert row["new_image"] is None
            continue
        version = int(json.loads(row["new_image"])["version"])
        assert row["new_image"] == work.images[(row["item_key"], version)], row["item_key"]
    check = compare(engine, TABLE)
    assert check.equal, (check.missing[:3], check.extra[:3], check.different[:3])
    assert check.view_items == len(work.last)
    return rows


def wait_for_lake(work: Workload, timeout: float) -> list[dict[str, Any]]:
    """Wait until every change is in ``<table>_changes``, then check the lake (see above)."""
    engine = LocalEngine(SETTINGS.database, region=SETTINGS.region)
    wait_for(
        lambda: len({r["event_id"] for r in changes_rows(engine)}) >= work.changes,
        timeout,
        "every change in the lake",
    )
    time.sleep(2)  # anything written twice would show up now
    return assert_lake_matches(engine, work)


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    """The workers a test starts; any still running at the end is killed with its children."""
    d = Daemons(tmp_path)
    try:
        yield d
    finally:
        for daemon in d.started:
            daemon.kill()


# -- the tests ------------------------------------------------------------------------------


@pytest.mark.usefixtures("kcl_env")
def test_daemon_lands_every_change_once_then_sigterm_flushes_and_checkpoints(
    daemons: Daemons, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Buffers flush only at shutdown: what lands in S3 is what SIGTERM flushed.
    monkeypatch.setenv("CHANGELAKE_FLUSH_AGE_S", "600")
    with LocalStack(free_port(), factories=[daemons.factory(), catalog_factory]) as stack:
        (daemon,) = daemons.started
        work = Workload()
        work.run(range(40))
        wait_for(lambda: daemons.records_in(0) >= work.changes, 150, "the daemon to read all")
        s3 = boto3.client("s3")
        assert "Contents" not in s3.list_objects_v2(Bucket=SETTINGS.lake_bucket, Prefix="changes/")

        daemon.terminate()  # what ECS does to stop a task
        assert daemon.exit_code() == 0
        lines = daemons.lines(0)
        messages = [str(line.get("message")) for line in lines]
        assert "Process shutdown is complete." in messages
        # Checkpoints written: every lease sits at its shard's last sequence number.
        kinesis = boto3.client("kinesis")
        for lease in lease_table():
            iterator = kinesis.get_shard_iterator(
                StreamName=SETTINGS.stream_name,
                ShardId=lease["leaseKey"],
                ShardIteratorType="TRIM_HORIZON",
            )["ShardIterator"]
            records = kinesis.get_records(ShardIterator=iterator, Limit=10_000)["Records"]
            expected = records[-1]["SequenceNumber"] if records else "TRIM_HORIZON"
            assert lease["checkpoint"] == expected, lease["leaseKey"]

        engine = LocalEngine(SETTINGS.database, region=SETTINGS.region)
        wait_for(lambda: len(changes_rows(engine)) >= work.changes, 30, "the catalog")
        assert_lake_matches(engine, work)
        assert stack.emulator.stats().errors == 0
    # Operated like on ECS: JSON lines at INFO, child stderr not echoed as ERROR by the JVM.
    assert {line["level"] for line in lines} <= {"INFO", "WARN", "WARNING", "ERROR"}
    assert not any("Received error line from subprocess" in m for m in messages)
    assert not [line for line in forced_shutdown_tolerated(lines) if line["level"] == "ERROR"]


@pytest.mark.usefixtures("kcl_env")
def test_two_daemons_share_leases_and_one_takes_over_after_kill_9(daemons: Daemons) -> None:
    with LocalStack(
        free_port(), shards=4, factories=[daemons.factory(), daemons.factory(), catalog_factory]
    ):
        wait_for(
            lambda: all(worker_id(daemons.lines(n)) for n in (0, 1)), 60, "both workers to start"
        )
        ids = [str(worker_id(daemons.lines(0))), str(worker_id(daemons.lines(1)))]
        work = Workload()
        writer = threading.Thread(target=work.run, args=(range(120),), kwargs={"pause_s": 0.05})
        writer.start()
        # Both workers process shards: the leader's assignment spreads the 4 leases.
        wait_for(lambda: set(owners().values()) == set(ids), 150, "both workers to hold leases")
        # Kill the worker that is not the leader (the leader lock's 2-minute lease is hard-coded
        # in KCL 3.1.3; ADR 0015): its leases expire after failoverTimeMillis and the leader
        # reassigns them.
        wait_for(lambda: leader() in ids, 30, "a leader")
        victim = 1 - ids.index(str(leader()))
        survivor = ids[1 - victim]
        lost = {k for k, v in owners().items() if v == ids[victim]}
        assert lost
        daemons.started[victim].kill()  # kill -9 of the JVM and its record processors
        took = wait_for(
            lambda: all(owner == survivor for owner in owners().values()),
            TAKEOVER_BUDGET_S,
            "the survivor to own every lease",
        )
        writer.join()
        work.run(range(120, 160))  # more changes after the takeover
        rows = wait_for_lake(work, 120)
        assert {r["shard_id"] for r in rows} >= lost  # the taken-over shards kept flowing
        # Exactly-once S3 writes: one shard's objects never overlap in sequence ranges.
        keys = [
            o["Key"]
            for page in boto3.client("s3")
            .get_paginator("list_objects_v2")
            .paginate(Bucket=SETTINGS.lake_bucket, Prefix="changes/")
            for o in page.get("Contents", [])
        ]
        spans: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for key in keys:
            folder, name = key.rsplit("/", 1)
            shard, first_seq, last_seq = name.removesuffix(".parquet").rsplit("-", 2)
            spans.setdefault((folder, shard), []).append((int(first_seq), int(last_seq)))
        for ranges in spans.values():
            ranges.sort()
            assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges)), ranges
        survivor_daemon = daemons.started[1 - victim]
        assert survivor_daemon.poll() is None
    print(f"takeover of {sorted(lost)} took {took:.1f} s (budget {TAKEOVER_BUDGET_S:.0f} s)")


def processor_events(lines: list[dict[str, Any]], message: str) -> dict[str, str]:
    """``shard_id → time`` of a record-processor log line (``initialized``, ``shard ended``)."""
    return {
        str(line["shard_id"]): str(line["time"])
        for line in lines
        if line.get("message") == message and line.get("shard_id")
    }


@pytest.mark.usefixtures("kcl_env")
def test_split_and_merge_under_the_daemon_parents_first_nothing_lost(daemons: Daemons) -> None:
    with LocalStack(free_port(), factories=[daemons.factory(), catalog_factory]):
        kinesis = boto3.client("kinesis")
        stream = SETTINGS.stream_name
        work = Workload()
        work.run(range(30))
        wait_for(lambda: daemons.records_in(0) >= work.changes, 150, "the daemon to read all")
        # Split the first shard while the daemon runs, write, merge the two children, write.
        parent = kinesis.list_shards(StreamName=stream)["Shards"][0]
        low, high = (int(parent["HashKeyRange"][k]) for k in ("StartingHashKey", "EndingHashKey"))
        kinesis.split_shard(
            StreamName=stream,
            ShardToSplit=parent["ShardId"],
            NewStartingHashKey=str((low + high) // 2),
        )
        work.run(range(30, 60))
        children = sorted(
            (s for s in kinesis.list_shards(StreamName=stream)["Shards"] if s.get("ParentShardId")),
            key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]),
        )
        assert len(children) == 2
        kinesis.merge_shards(
            StreamName=stream,
            ShardToMerge=children[0]["ShardId"],
            AdjacentShardToMerge=children[1]["ShardId"],
        )
        work.run(range(60, 90))
        rows = wait_for_lake(work, 150)
        shards = kinesis.list_shards(StreamName=stream)["Shards"]
        lines = daemons.lines(0)
    # Parents before children: a child's processor starts only after each parent's ended.
    ended = processor_events(lines, "shard ended")
    started = processor_events(lines, "initialized")
    reshards = 0
    for shard in shards:
        child = shard["ShardId"]
        for parent_id in (shard.get(k) for k in ("ParentShardId", "AdjacentParentShardId")):
            if parent_id:
                assert child in started, f"{child} never started"
                assert parent_id in ended, f"{child} started but {parent_id} never ended"
                assert ended[parent_id] <= started[child], (parent_id, child)
                reshards += 1
    assert reshards == 4  # split: 2 children of one parent; merge: 1 child of 2 parents
    assert {r["shard_id"] for r in rows} >= {parent["ShardId"], *(c["ShardId"] for c in children)}


def test_bench_path_through_the_daemon_lands_the_same_records_once() -> None:
    """`changelake bench consumer`'s row "ours through the real MultiLangDaemon", tiny."""
    import hashlib

    from changelake_bench import consumer_daemon
    from changelake_bench.records import records

    result = consumer_daemon.measure(count=300, batch=100, seed=7)
    assert result["available"] is True, result
    assert result["rows_out"] == 300
    same = hashlib.sha256(b"".join(raw for raw, _ in records(300, seed=7))).hexdigest()[:16]
    assert result["input_sha256_16"] == same  # the records every other path measures
    assert result["records_per_s"] > 0
    assert result["startup_s"] > 0
