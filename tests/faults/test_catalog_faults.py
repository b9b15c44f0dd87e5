"""The catalog service as a real process: ``kill -9`` mid-batch, and duplicate S3 events.

One pipeline for the module: the emulator, the consumer in this process, the catalog as
``python -m changelake_catalog`` processes whose Glue and SQS clients go through the fault
proxy (ADR 0038). The proxy SIGKILLs the catalog at an exact call of a batch; SQS redelivers
the batch's undeleted messages after the queue's visibility timeout (4 s here, 2 min in the
stack) and a restarted catalog must register every partition exactly as an uncrashed one
would. Each test ends in a clean reconcile (tests/changelake_faults.py).

Every batch holds partitions the catalog has not seen yet: changes of past hours are put on
the stream directly (one item per hour, so one object per partition — a lost message would
leave its partition unregistered), then the items are written to DynamoDB for real.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import boto3
import orjson
import pytest
from changelake_emulator.fault_proxy import FaultRule
from changelake_faults import (
    SETTINGS,
    TABLE,
    Pipeline,
    objects,
    reconcile,
    rewritten_partitions,
    stream_records,
    wait_reconciled,
    wait_until,
)
from changelake_lake import layout
from changelake_producer.bootstrap import produce
from changelake_testsupport.queues import queue_drained
from changelake_testsupport.records import encode, kinesis_dynamodb_record
from changelake_testsupport.runners import CATALOG, Command, RunnerProcesses

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.timeout(420)]

VISIBILITY_TIMEOUT_S = 4


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    with (
        pytest.MonkeyPatch.context() as mp,
        Pipeline(mp, catalog=False, proxied=("glue", "sqs"), seed=7) as running,
    ):
        sqs = boto3.client("sqs")
        sqs.set_queue_attributes(
            QueueUrl=_queue_url(),
            Attributes={"VisibilityTimeout": str(VISIBILITY_TIMEOUT_S)},
        )
        yield running


def _queue_url(suffix: str = "") -> str:
    url = boto3.client("sqs").get_queue_url(QueueName=SETTINGS.catalog_queue + suffix)
    return str(url["QueueUrl"])


def _queue_empty() -> bool:
    return queue_drained(boto3.client("sqs"), _queue_url())


def _past_hours(tag: str, hours: range) -> set[layout.Partition]:
    """Put one item's changes, one per past hour, on the stream; then write the item for real.

    Returns the partitions those changes belong to (one object each).
    """
    start = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    key = {"pk": f"{tag}-history"}
    records, partitions, previous = [], set(), None
    for n, back in enumerate(hours):
        at = start - timedelta(hours=back)
        image = {**key, "v": Decimal(n)}
        records.append(
            encode(
                kinesis_dynamodb_record(
                    event_name="INSERT" if previous is None else "MODIFY",
                    keys=key,
                    old_image=previous,
                    new_image=image,
                    event_time_us=int(at.timestamp() * 1_000_000),
                    event_id=f"{tag}-{n:04d}",
                    table=TABLE,
                )
            )
        )
        partitions.add(layout.partition_for(at))
        previous = image
    kinesis = boto3.client("kinesis")
    for data in records:  # one partition key: in order, on one shard
        kinesis.put_record(StreamName=SETTINGS.stream_name, Data=data, PartitionKey=key["pk"])
    boto3.resource("dynamodb").Table(TABLE).put_item(Item={**key, "v": Decimal(len(records))})
    return partitions


def _object_partitions() -> dict[layout.Partition, int]:
    """Partition → change objects in S3 (what the catalog has to register)."""
    counts: Counter[layout.Partition] = Counter()
    for key, _ in objects(layout.changes_prefix(TABLE)):
        parsed = layout.parse_change_object_key(key)
        if parsed is not None:
            counts[parsed.partition] += 1
    return dict(counts)


def _glue_state() -> dict[str, Any]:
    """Everything the catalog writes to Glue: tables (version, columns, view text), partitions."""
    state = _glue_state_tables()
    state["partitions"] = _partitions()
    return state


def _partitions() -> dict[layout.Partition, tuple[str, Any]]:
    glue = boto3.client("glue")
    out = {}
    for page in glue.get_paginator("get_partitions").paginate(
        DatabaseName=SETTINGS.database, TableName=layout.changes_table_name(TABLE)
    ):
        for part in page["Partitions"]:
            sd = part["StorageDescriptor"]
            out[layout.Partition(*part["Values"])] = (sd["Location"], sd["Columns"])
    return out


def _assert_registered_as_an_uncrashed_catalog_would() -> None:
    """Each partition with objects is registered once, at its base prefix, with the table's
    exact columns; nothing else is registered."""
    glue = boto3.client("glue")
    table = glue.get_table(DatabaseName=SETTINGS.database, Name=layout.changes_table_name(TABLE))
    columns = table["Table"]["StorageDescriptor"]["Columns"]
    expected = {
        p: (f"s3://{SETTINGS.lake_bucket}/{layout.changes_partition_prefix(TABLE, p)}", columns)
        for p in _object_partitions()
    }
    assert _partitions() == expected
    names = _tables()
    assert {
        layout.changes_table_name(TABLE),
        layout.raw_table_name(TABLE),
        layout.current_view_name(TABLE),
    } <= names, names


def _log_lines(catalogs: RunnerProcesses) -> list[dict[str, Any]]:
    lines = []
    for text in catalogs.logs(tail=10**7).splitlines():
        if text.startswith("{"):
            lines.append(orjson.loads(text))
    return lines


def test_catalog_killed_mid_batch_then_restarted_registers_every_partition_once(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    proxy = pipeline.fault_proxy()
    new = _past_hours("crash", range(12, 0, -1))
    produced = produce(count=60, seed=51, settings=SETTINGS).total
    # the consumer has written everything before the catalog starts: one batch holds it all
    wait_until(lambda: not reconcile(views=False).lost, 90, "the consumer to write everything")
    assert new <= _object_partitions().keys()
    assert sum(_object_partitions().values()) > 10  # a batch deletes its messages in 10s
    assert not _tables(), "this test starts on an empty catalog (the module's first test)"
    catalogs = RunnerProcesses(tmp_path, command=CATALOG)
    victims: list[Any] = []

    def kill() -> None:
        victims[-1].kill()

    # Three exact points of a batch, one per catalog process, each one restarted:
    kill_points = [
        # the changes table is created (the answer is lost), its raw table and view are not
        FaultRule("drop_after", "glue", "CreateTable", times=1, callback=kill),
        # the batch's partitions are created, no message is deleted yet
        FaultRule("drop_after", "glue", "BatchCreatePartition", times=1, callback=kill),
        # the first 10 messages are deleted, the second delete of the batch never happens
        FaultRule("drop", "sqs", "DeleteMessageBatch", after=1, times=1, callback=kill),
    ]
    restarted = time.monotonic()
    try:
        for rule, left_behind in zip(kill_points, _LEFT_BEHIND, strict=True):
            proxy.add(rule)
            victims.append(catalogs.start())
            wait_until(partial(_injected, rule), 90, f"the kill at {rule.operation}")
            victims[-1].wait(timeout=30)
            restarted = time.monotonic()
            # what the dead process left behind (a dropped-after call lands just after the kill)
            wait_until(left_behind, 30, f"the state after the kill at {rule.operation}")
        proxy.clear()
        catalogs.start()  # the batch's messages come back after the visibility timeout
        verdict, took = wait_reconciled(120)
        recovered = time.monotonic() - restarted
        wait_until(_queue_empty, 60, "the catalog queue to drain")
        _assert_registered_as_an_uncrashed_catalog_would()
    finally:
        codes = catalogs.stop_all()
    assert codes == [-9, -9, -9, 0], codes
    assert verdict.distinct_events == produced + len(new) + 1  # + the item written for real
    errors = [line for line in _log_lines(catalogs) if line.get("level") == "ERROR"]
    assert not errors, errors[:3]
    print(
        f"catalog kill -9 at CreateTable, BatchCreatePartition, DeleteMessageBatch: "
        f"{verdict.summary()}; {len(_object_partitions())} partitions; clean {recovered:.1f} s "
        f"after the last restart (reconcile polled {took:.1f} s)"
    )


def _injected(rule: FaultRule) -> bool:
    return rule.injected > 0


def _tables() -> set[str]:
    return set(_glue_state_tables())


def _glue_state_tables() -> dict[str, Any]:
    glue = boto3.client("glue")
    state: dict[str, Any] = {}
    for page in glue.get_paginator("get_tables").paginate(DatabaseName=SETTINGS.database):
        for table in page["TableList"]:
            state[table["Name"]] = (
                table.get("VersionId"),
                table.get("StorageDescriptor", {}).get("Columns"),
                table.get("ViewOriginalText"),
            )
    return state


def _only_the_changes_table() -> bool:
    return _tables() == {layout.changes_table_name(TABLE)}


def _partitions_registered_messages_kept() -> bool:
    return bool(_partitions()) and not _queue_empty()


def _messages_left() -> bool:
    return not _queue_empty()


# After each kill point: the changes table without its raw table and view; the batch's
# partitions registered, its messages still on the queue; messages left on the queue (the
# batch's second delete never happened).
_LEFT_BEHIND = (_only_the_changes_table, _partitions_registered_messages_kept, _messages_left)


def _drain_notifications(keys: set[str], timeout: float = 60) -> list[str]:
    """Receive (and delete) the catalog queue's messages until every key's notification came."""
    sqs, url = boto3.client("sqs"), _queue_url()
    bodies: list[str] = []
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while not keys <= seen:
        assert time.monotonic() < deadline, f"notifications missing for {sorted(keys - seen)[:3]}"
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in messages.get("Messages", []):
            body = message["Body"]
            bodies.append(body)
            for record in orjson.loads(body).get("Records", []):
                seen.add(unquote_plus(record["s3"]["object"]["key"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def _send(bodies: list[str]) -> None:
    sqs, url = boto3.client("sqs"), _queue_url()
    for body in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body)


def _counters(catalogs: RunnerProcesses, proc_index: int) -> Counter[str]:
    """The service's own counters, from the ``metrics`` lines of one process's log."""
    return catalogs.counters(catalogs.procs[proc_index])


def test_duplicate_s3_events_register_once(pipeline: Pipeline, tmp_path: Path) -> None:
    """The same ObjectCreated notification twice, newest first, then again for objects already
    registered (to the same catalog and to a fresh one): one registration, no error."""
    proxy = pipeline.fault_proxy()
    before = {key for key, _ in objects(layout.changes_prefix(TABLE))}
    new = _past_hours("dup", range(20, 14, -1))
    produce(count=40, seed=52, settings=SETTINGS)
    wait_until(lambda: not reconcile(views=False).lost, 90, "the consumer to write everything")
    written = {key for key, _ in objects(layout.changes_prefix(TABLE))} - before
    bodies = _drain_notifications(written)  # the real notifications, held back
    catalogs = RunnerProcesses(tmp_path, command=CATALOG)
    retries_before = proxy.count("sqs", "ChangeMessageVisibilityBatch")
    try:
        # every notification twice, in reverse order (the newest hour's first)
        _send([body for body in reversed(bodies) for _ in range(2)])
        first = catalogs.start()
        verdict, took = wait_reconciled(120)
        wait_until(_queue_empty, 60, "the catalog queue to drain")
        registered = _glue_state()
        _assert_registered_as_an_uncrashed_catalog_would()
        # again, for objects already registered: the same catalog (its cache)...
        _send(bodies)
        wait_until(_queue_empty, 60, "the repeated notifications to be handled")
        assert _glue_state() == registered
        catalogs.stop_all()  # graceful: the first catalog flushes its counters
        # ...and a fresh one (no cache: Glue answers that the partitions exist)
        catalogs.start()
        _send(bodies)
        wait_until(_queue_empty, 60, "the repeated notifications to be handled")
        assert _glue_state() == registered
        assert reconcile().clean
    finally:
        codes = catalogs.stop_all()
    assert codes == [0, 0]
    assert first.returncode == 0
    assert proxy.count("sqs", "ChangeMessageVisibilityBatch") == retries_before  # none failed
    errors = [line for line in _log_lines(catalogs) if line.get("level") == "ERROR"]
    assert not errors, errors[:3]
    first_counts, fresh_counts = _counters(catalogs, 0), _counters(catalogs, 1)
    partitions_key = f"catalog_partitions_added{{table={TABLE}}}"
    new_partitions = new | {layout.parse_change_object_key(k).partition for k in written}  # type: ignore[union-attr]
    known_before = {layout.parse_change_object_key(k).partition for k in before}  # type: ignore[union-attr]
    # registered once each, however often announced
    assert first_counts[partitions_key] == len(new_partitions - known_before)
    assert first_counts["catalog_messages_deleted"] == 3 * len(bodies)
    assert fresh_counts[partitions_key] == 0
    assert fresh_counts["catalog_messages_deleted"] == len(bodies)
    assert first_counts["catalog_messages_failed"] == fresh_counts["catalog_messages_failed"] == 0
    print(
        f"duplicate S3 events ({len(bodies)} notifications x2 reversed, then x1 to the same and "
        f"x1 to a fresh catalog): {verdict.summary()}; clean after {took:.1f} s"
    )


def _views() -> dict[str, list[tuple[str, ...]]]:
    """Every row of ``<table>_changes`` and of each view over it, through the catalog."""
    from changelake_lake.query.local_engine import LocalEngine

    engine = LocalEngine(SETTINGS.database, region=SETTINGS.region)
    names = [
        name
        for name in _tables()
        if name.startswith(f"{TABLE}_") and name != layout.raw_table_name(TABLE)
    ]
    out = {}
    for name in sorted(names):
        result = engine.run(f"SELECT * FROM {name}")
        out[name] = sorted(
            tuple(f"{column}={value}" for column, value in zip(result.columns, row, strict=True))
            for row in result.rows
        )
    return out


def _without(views: dict[str, list[tuple[str, ...]]], item_key: str) -> dict[str, Any]:
    return {
        name: [row for row in rows if f"item_key={item_key}" not in row]
        for name, rows in views.items()
    }


def _cli(tmp: Path, *args: str) -> RunnerProcesses:
    """``changelake <args>`` as processes (started by the caller), logs in ``tmp``."""
    return RunnerProcesses(tmp, command=Command(("-m", "changelake_cli.main", *args), args[0], b""))


def _changelake(*args: str) -> None:
    """``changelake <args>`` in this process (a rerun: nothing to kill), succeeding."""
    from changelake_cli.main import app
    from typer.testing import CliRunner

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        result = CliRunner().invoke(app, list(args))
    finally:  # the command logs to the runner's stderr, closed after it: restore the logging
        root.handlers[:] = handlers
        root.setLevel(level)
    assert result.exit_code == 0, result.output


def test_compaction_and_erasure_killed_mid_way_then_rerun_keep_the_views(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """``kill -9`` of ``changelake compact`` at its second partition swap (the first partition
    swapped, its old objects waiting out the grace; the second's new objects written, not
    swapped), then of ``changelake erase`` at its second swap; each rerun; then the grace runs
    out (trash collected). Readers see the same rows throughout (minus the erased item)."""
    proxy = pipeline.fault_proxy()
    _past_hours("erase", range(30, 28, -1))  # the item to erase: two past hours and now
    produce(count=30, seed=53, settings=SETTINGS)
    catalogs = RunnerProcesses(tmp_path / "catalog", command=CATALOG)
    # only this test's past hours (30 and 29 h ago) are old enough: the module's others stay
    compact = ("compact", "--table", TABLE, "--older-than", "25h")
    erase = ("erase", "--table", TABLE, "--key", '{"pk": "erase-history"}')
    victims: list[subprocess.Popen[bytes]] = []

    def kill() -> None:
        victims[-1].kill()

    def kill_at_second_swap(args: tuple[str, ...]) -> int:
        command = _cli(tmp_path / args[0], *args)
        rule = proxy.add(
            FaultRule("drop", "glue", "UpdatePartition", after=1, times=1, callback=kill)
        )
        victims.append(command.start())
        code: int = victims[-1].wait(timeout=120)
        proxy.clear()
        assert rule.injected == 1, command.logs()
        return code

    catalogs.start()
    try:
        wait_reconciled(120)
        before = _views()
        item_key = next(
            r.event.item_key
            for r in stream_records()
            if r.event and "erase-history" in r.event.item_key
        )
        assert kill_at_second_swap(compact) == -9
        assert len(rewritten_partitions()) == 1  # one swapped, the next one not
        assert _views() == before  # a reader at the crash
        started = time.monotonic()
        _changelake(*compact)
        compacted, _ = wait_reconciled(60)
        compaction_recovered = time.monotonic() - started
        assert _views() == before
        swapped = len(rewritten_partitions())
        assert swapped >= 2

        boto3.resource("dynamodb").Table(TABLE).delete_item(Key={"pk": "erase-history"})
        wait_reconciled(60)
        before = _views()
        assert kill_at_second_swap(erase) == -9
        started = time.monotonic()
        _changelake(*erase)
        erased, _ = wait_reconciled(60, erased_items=frozenset({item_key}))
        erase_recovered = time.monotonic() - started
        after = _without(before, item_key)
        assert _views() == after
        assert after != before

        _changelake(*compact, "--grace", "0s")  # the grace is over
        final = reconcile(views=False, erased_items=frozenset({item_key}))  # S3 as read
        assert final.clean, final.summary()
        assert _views() == after
    finally:
        catalogs.stop_all()
    print(
        f"compaction killed at its 2nd swap, rerun: {compacted.summary()}; {swapped} partitions "
        f"rewritten; clean {compaction_recovered:.1f} s after the rerun started. Erase killed "
        f"at its 2nd swap, rerun: {erased.summary()}; clean {erase_recovered:.1f} s after the "
        f"rerun started. Trash collected: {final.summary()}"
    )
