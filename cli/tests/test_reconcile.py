"""``changelake reconcile`` on the embedded stack: clean after real traffic, then each injected
gap found exactly (a deleted change object, an unregistered partition, a dropped raw record,
quarantined records), with the CLI's exit codes 0, 1 and 2 (docs/adr/0031)."""

from __future__ import annotations

import json
import time
import uuid

import boto3
import orjson
import pytest
from changelake.adapters.s3_store import S3ObjectStore
from changelake_cli.local_stack import LocalStack
from changelake_cli.main import app
from changelake_cli.ops import lake
from changelake_cli.ops.reconcile import ReconcileReport, reconcile_from_settings
from changelake_lake import layout
from changelake_lake.adapters.glue_catalog import GlueCatalog
from changelake_testsupport.waiting import wait_until
from typer.testing import CliRunner

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

TABLE = "persons"


def _record(pk: str, event_ms: int, *, number: str = "1", event_id: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "awsRegion": "us-east-1",
            "eventID": event_id or str(uuid.uuid4()),
            "eventName": "INSERT",
            "recordFormat": "application/json",
            "tableName": TABLE,
            "eventSource": "aws:dynamodb",
            "userIdentity": None,
            "dynamodb": {
                "ApproximateCreationDateTime": event_ms,
                "Keys": {"pk": {"S": pk}},
                "NewImage": {"pk": {"S": pk}, "n": {"N": number}},
                "SizeBytes": 20,
            },
        }
    )


def _put(stack: LocalStack, data: bytes) -> None:
    boto3.client("kinesis").put_record(
        StreamName=stack.settings.stream_name, Data=data, PartitionKey=str(uuid.uuid4())
    )


def _report() -> ReconcileReport:
    return reconcile_from_settings(TABLE)


def test_reconcile_is_clean_then_finds_every_injected_gap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHANGELAKE_LOG_LEVEL", "WARNING")
    with LocalStack(0, firehose_buffer_seconds=0.5) as stack:
        ddb = boto3.client("dynamodb")
        for i in range(40):
            ddb.put_item(TableName=TABLE, Item={"pk": {"S": f"p{i:03d}"}, "v": {"N": str(i)}})
        for i in range(0, 40, 4):
            ddb.update_item(
                TableName=TABLE,
                Key={"pk": {"S": f"p{i:03d}"}},
                UpdateExpression="SET v = :v",
                ExpressionAttributeValues={":v": {"N": "100"}},
            )
        for i in range(1, 40, 10):
            ddb.delete_item(TableName=TABLE, Key={"pk": {"S": f"p{i:03d}"}})
        # One change two hours back: its own partition, so one can be unregistered alone.
        old_ms = int(time.time() * 1000) - 2 * 3_600_000
        old_id = str(uuid.uuid4())
        _put(stack, _record("old-item", old_ms, event_id=old_id))
        old_partition = layout.partition_for_us(old_ms * 1000)
        # And one three hours back, for a compaction (reconcile reads what Glue points at).
        older_ms = old_ms - 3_600_000
        _put(stack, _record("older-item", older_ms))
        ddb.put_item(TableName=TABLE, Item={"pk": {"S": "older-item"}, "n": {"N": "1"}})

        # The item's current image comes from DynamoDB (the same image: _current = Scan).
        ddb.put_item(TableName=TABLE, Item={"pk": {"S": "old-item"}, "n": {"N": "1"}})
        wait_until("a clean report", lambda: _report().clean)
        report = _report()
        (t,) = report.tables
        assert report.exit_code == 0
        assert report.gaps() == 0
        assert t.items.mode == "full"
        assert t.items.source_items == t.items.view_items == 38
        assert t.events.raw_events == t.events.curated_events == 40 + 10 + 4 + 2 + 2
        assert t.catalog.partitions == 3 == t.catalog.registered_partitions
        sampled = reconcile_from_settings(TABLE, full_scan_max_items=10, sample_items=10)
        assert sampled.clean
        assert sampled.tables[0].items.mode == "sample"
        assert "Scan segment" in sampled.tables[0].items.detail
        assert 0 < sampled.tables[0].items.source_items < 38  # one segment of about 10 items
        compacted = CliRunner().invoke(
            app, ["compact", "--table", TABLE, "--older-than", "2h", "--grace", "0s", "--json"]
        )
        assert compacted.exit_code == 0, compacted.output
        locations = GlueCatalog(stack.settings.lake_bucket, stack.settings.database).locations(
            TABLE
        )
        older = layout.partition_for_us(older_ms * 1000)
        assert "/compacted/" in locations[older]
        assert not list(
            S3ObjectStore(stack.settings.lake_bucket).list(
                layout.changes_partition_prefix(TABLE, older)
            )
        )  # the consumer's objects are gone: only the generation holds its events
        assert reconcile_from_settings(TABLE).clean
        result = CliRunner().invoke(app, ["reconcile", "--table", TABLE, "--format", "json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["clean"] is True

        store = S3ObjectStore(stack.settings.lake_bucket)
        # Gap 1: a change object deleted (the newest one of the current partition).
        changes = lake.partitioned_keys(store, layout.changes_prefix(TABLE))
        current = max(p for p in changes if p != old_partition)
        victim = sorted(changes[current])[-1]
        lost = set(lake.curated_event_ids(store, victim).changes)
        store.delete(victim)
        # Gap 2: the old partition unregistered from Glue.
        boto3.client("glue").delete_partition(
            DatabaseName=stack.settings.database,
            TableName=layout.changes_table_name(TABLE),
            PartitionValues=old_partition.values,
        )
        # Gap 3: one record dropped from a raw object (one that is still in changes/).
        raw = lake.partitioned_keys(store, layout.raw_prefix(TABLE))
        raw_key, dropped, kept = next(
            (key, orjson.loads(line)["eventID"], [x for x in lines if x is not line])
            for key in sorted(k for keys in raw.values() for k in keys)
            for lines in [store.get(key).splitlines(keepends=True)]
            for line in lines
            if orjson.loads(line)["eventID"] not in lost
        )
        store.put(raw_key, b"".join(kept))
        # Gap 4: records both paths quarantine (one of the table, one of no table).
        _put(stack, _record("bad-item", int(time.time() * 1000), number="not-a-number"))
        _put(stack, b"this is not json")
        wait_until(
            "quarantined records",
            lambda: (
                _report().unattributed_quarantine.records == 2
                and _report().tables[0].quarantine.records == 2
            ),
        )

        report = _report()
        (t,) = report.tables
        assert t.events.missing_in_curated.count == len(lost) > 0
        assert set(t.events.missing_in_curated.examples) <= lost
        assert t.events.missing_in_raw.examples == (dropped,)
        assert t.catalog.unregistered_partitions.examples == (old_partition.path.rstrip("/"),)
        assert t.quarantine.by_source == {"consumer": 1, "firehose": 1}
        assert any("not-a-number" in reason for reason in t.quarantine.by_reason)
        assert report.unattributed_quarantine.by_source == {"consumer": 1, "firehose": 1}
        assert t.items.missing.count + t.items.different.count >= 1
        assert '{"pk":"old-item"}' in t.items.missing.examples  # unregistered: invisible
        assert report.exit_code == 1

        # The quarantined records are queryable (the Glue tables over errors/, ADR 0031).
        queried = CliRunner().invoke(
            app,
            [
                "query",
                "--sql",
                "SELECT reason, sequence_number FROM persons_errors",
                "--format",
                "json",
            ],
        )
        assert queried.exit_code == 0, queried.output
        (row,) = json.loads(queried.stdout)
        assert "not-a-number" in row["reason"]
        queried = CliRunner().invoke(
            app,
            ["query", "--sql", "SELECT errorcode FROM firehose_error_records", "--format", "json"],
        )
        assert queried.exit_code == 0, queried.output
        assert [r["errorcode"] for r in json.loads(queried.stdout)] == [
            "Lambda.ProcessingFailedStatus"
        ] * 2

        result = CliRunner().invoke(app, ["reconcile", "--format", "json"])
        assert result.exit_code == 1
        doc = json.loads(result.stdout)
        assert doc["version"] == 1
        assert doc["clean"] is False
        assert doc["gaps"] == report.gaps()
        assert doc["tables"][0]["catalog"]["unregistered_partitions"]["count"] == 1
        text = CliRunner().invoke(app, ["reconcile"])
        assert text.exit_code == 1
        assert "GAPS:" in text.stdout

        # Usage and infrastructure errors: exit 2, one line.
        bad = CliRunner().invoke(app, ["reconcile", "--since", "yesterday-ish"])
        assert bad.exit_code == 2
        assert "--since takes an ISO" in bad.stderr
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    down = CliRunner().invoke(app, ["reconcile"])
    assert down.exit_code == 2
    assert "cannot reach" in down.stderr
