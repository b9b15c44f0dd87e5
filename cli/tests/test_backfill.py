"""``changelake backfill`` then the stream, on the embedded stack: ``<table>_current`` equals a
Scan for items written before the stream was enabled, after it, and changed while the backfill
ran (ADR 0030); the backfill refuses a table whose destination is not ACTIVE; it is idempotent
(a finished backfill is not repeated; a resumed export writes the same objects)."""

from __future__ import annotations

import io
import json
import threading

import boto3
import orjson
import pyarrow.parquet as pq
import pytest
from changelake.adapters.s3_store import S3ObjectStore
from changelake_cli.local_stack import LocalStack
from changelake_cli.main import app
from changelake_cli.ops import lake
from changelake_cli.ops.backfill import backfill_from_settings
from changelake_cli.ops.reconcile import reconcile_from_settings
from changelake_lake import layout
from changelake_testsupport.waiting import wait_until
from typer.testing import CliRunner

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

TABLE = "persons"


class _Writer(threading.Thread):
    """Keeps changing items (updates, inserts, deletes) until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.rounds = 0

    def run(self) -> None:
        ddb = boto3.client("dynamodb")
        while not self.stop.is_set():
            n = self.rounds
            for i in range(10):  # items that existed before the stream
                ddb.update_item(
                    TableName=TABLE,
                    Key={"pk": {"S": f"old{i:03d}"}},
                    UpdateExpression="SET v = :v, touched = :t",
                    ExpressionAttributeValues={":v": {"N": str(1000 + n)}, ":t": {"S": f"r{n}"}},
                )
            ddb.put_item(TableName=TABLE, Item={"pk": {"S": f"new{n:04d}"}, "v": {"N": str(n)}})
            if n < 60:  # old050 … old109: each deleted once
                ddb.delete_item(TableName=TABLE, Key={"pk": {"S": f"old{50 + n:03d}"}})
            self.rounds += 1
            self.stop.wait(0.05)


def _snapshot_objects(store: S3ObjectStore) -> dict[str, bytes]:
    keys = lake.partitioned_keys(store, layout.changes_prefix(TABLE))
    return {k: store.get(k) for ks in keys.values() for k in ks if "/snapshot-" in k}


def test_backfill_then_stream_current_equals_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANGELAKE_LOG_LEVEL", "WARNING")
    with LocalStack(0, firehose_buffer_seconds=0.5, stream_enabled=False) as stack:
        ddb = boto3.client("dynamodb")
        for i in range(120):  # before the stream: no change on it, ever
            ddb.put_item(
                TableName=TABLE,
                Item={"pk": {"S": f"old{i:03d}"}, "v": {"N": str(i)}, "b": {"B": b"\x00\x01"}},
            )
        refused = CliRunner().invoke(app, ["backfill", "--table", TABLE, "--source", "scan"])
        assert refused.exit_code == 2
        assert "is not ACTIVE (none enabled)" in refused.stderr
        store = S3ObjectStore(stack.settings.lake_bucket)
        assert _snapshot_objects(store) == {}

        stack.emulator.enable_stream()
        writer = _Writer()
        writer.start()
        try:
            wait_until("the writer's first round", lambda: writer.rounds >= 1)
            (summary,) = backfill_from_settings(TABLE, source="scan", segments=3)
            before = writer.rounds
            wait_until("changes after the backfill", lambda: writer.rounds >= before + 2)
        finally:
            writer.stop.set()
            writer.join()
        assert summary.source == "scan"
        assert not summary.skipped
        deleted = min(writer.rounds, 60)
        assert 120 - deleted <= summary.items <= 120 + writer.rounds
        assert summary.bytes_written > 0
        # After the stream was enabled: new items and updates of old ones, during the backfill.
        ddb.put_item(TableName=TABLE, Item={"pk": {"S": "after"}, "v": {"N": "1"}})

        wait_until("_current = Scan", lambda: reconcile_from_settings(TABLE).clean)
        report = reconcile_from_settings(TABLE)
        (t,) = report.tables
        assert t.items.source_items == t.items.view_items == 120 - deleted + writer.rounds + 1
        assert t.events.snapshot_rows == summary.items
        first = _snapshot_objects(store)
        assert sorted(first) == sorted(summary.objects)
        # The copy holds older images of the items the writer kept changing; _current (= the
        # Scan) shows the stream's later ones: the snapshot lost to every later change.
        snap = {
            r["item_key"]: json.loads(r["new_image"])
            for data in first.values()
            for r in pq.read_table(io.BytesIO(data)).to_pylist()
        }
        assert {
            r["event_name"]
            for data in first.values()
            for r in pq.read_table(io.BytesIO(data)).to_pylist()
        } == {"SNAPSHOT"}
        final = boto3.client("dynamodb").get_item(
            TableName=TABLE, Key={"pk": {"S": "old000"}}, ConsistentRead=True
        )["Item"]
        assert snap['{"pk":"old000"}']["touched"] != final["touched"]["S"]

        # Idempotent: the finished backfill is not repeated, nothing is written.
        again = CliRunner().invoke(app, ["backfill", "--source", "scan", "--format", "json"])
        assert again.exit_code == 0, again.output
        assert json.loads(again.stdout)[0]["skipped"] is True
        assert _snapshot_objects(store) == first

        # A new snapshot from a DynamoDB export (the AWS path: manifest and data files).
        (exported,) = backfill_from_settings(TABLE, source="export", again=True)
        assert exported.snapshot_id.split("/export/")[0].endswith(f"table/{TABLE}")
        assert exported.items == t.items.source_items
        written = {k: v for k, v in _snapshot_objects(store).items() if k not in first}
        assert sorted(written) == sorted(exported.objects)
        # Resuming that export (its run marked unfinished) writes the very same objects.
        state_key = f"backfill/{TABLE}/state.json"
        state = orjson.loads(store.get(state_key))
        state["status"] = "running"
        store.put(state_key, orjson.dumps(state))
        (resumed,) = backfill_from_settings(TABLE, source="export")
        assert resumed.snapshot_id == exported.snapshot_id
        assert {k: v for k, v in _snapshot_objects(store).items() if k not in first} == written
        wait_until("_current = Scan after the export", lambda: reconcile_from_settings(TABLE).clean)
