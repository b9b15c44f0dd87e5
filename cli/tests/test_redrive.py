"""``changelake redrive`` on the embedded stack: records quarantined by a deliberately broken
setting land exactly once after the fix; a record that still fails stays, with its reason; a
second re-drive writes nothing; catalog dead letters go back to work (docs/adr/0031)."""

from __future__ import annotations

import io
import json

import boto3
import pyarrow.parquet as pq
import pytest
from changelake.adapters.s3_store import S3ObjectStore
from changelake_cli.local_stack import LocalStack
from changelake_cli.main import app
from changelake_cli.ops import lake
from changelake_cli.ops.reconcile import ReconcileReport, reconcile_from_settings
from changelake_cli.ops.redrive import redrive_from_settings
from changelake_lake import layout
from changelake_testsupport.waiting import wait_until
from changelake_transform import handler
from typer.testing import CliRunner

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

TABLE = "persons"
BROKEN_LIMIT = "400"  # bytes: one record's Ok entry no longer fits the Lambda's response


def _report() -> ReconcileReport:
    return reconcile_from_settings(TABLE)


def _raw_ids(store: S3ObjectStore) -> list[str]:
    keys = lake.partitioned_keys(store, layout.raw_prefix(TABLE))
    return [i for ks in keys.values() for k in ks for i in lake.raw_event_ids(store, k)]


def test_firehose_errors_of_a_broken_size_bound_land_exactly_once_after_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHANGELAKE_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("CHANGELAKE_TRANSFORM_MAX_RESPONSE_BYTES", BROKEN_LIMIT)
    handler._settings.cache_clear()  # the Lambda reads its settings once per container
    try:
        with LocalStack(0, firehose_buffer_seconds=0.5) as stack:
            ddb = boto3.client("dynamodb")
            for i in range(20):
                ddb.put_item(TableName=TABLE, Item={"pk": {"S": f"p{i:02d}"}, "v": {"N": str(i)}})
            boto3.client("kinesis").put_record(
                StreamName=stack.settings.stream_name, Data=b"still not json", PartitionKey="x"
            )
            wait_until(
                "the broken transform's errors",
                lambda: (
                    _report().tables[0].events.missing_in_raw.count == 20
                    and _report().unattributed_quarantine.by_source.get("firehose") == 1
                ),
            )
            store = S3ObjectStore(stack.settings.lake_bucket)
            assert _raw_ids(store) == []
            before = _report()
            assert before.tables[0].quarantine.by_source == {"firehose": 20}
            assert before.exit_code == 1

            # The fix: the setting back to its default (the next Lambda container reads it).
            monkeypatch.delenv("CHANGELAKE_TRANSFORM_MAX_RESPONSE_BYTES")
            handler._settings.cache_clear()
            dry = CliRunner().invoke(
                app, ["redrive", "--source", "firehose-errors", "--dry-run", "--format", "json"]
            )
            assert dry.exit_code == 0, dry.output
            planned = json.loads(dry.stdout)
            assert (planned["records"], planned["landed"], planned["still_failing"]) == (21, 20, 1)
            assert _raw_ids(store) == []  # a dry run writes nothing

            done = redrive_from_settings("firehose-errors")
            assert (done.landed, done.still_failing) == (20, 1)
            assert next(iter(done.reasons)).startswith("invalid JSON")
            ids = _raw_ids(store)
            assert len(ids) == len(set(ids)) == 20

            after = _report()
            (t,) = after.tables
            assert t.events.missing_in_raw.count == 0
            assert t.events.missing_in_curated.count == 0
            assert t.quarantine.records == 0
            assert t.items.missing.count + t.items.different.count + t.items.extra.count == 0
            # Only the record that is still bad stays quarantined, with its new reason.
            left = after.unattributed_quarantine
            assert left.by_source == {"consumer": 1, "firehose": 1}
            assert any(r.startswith("Lambda.ProcessingFailedStatus") for r in left.by_reason)

            again = redrive_from_settings("firehose-errors")
            assert (again.records, again.landed, again.objects_written) == (1, 0, [])
            assert sorted(_raw_ids(store)) == sorted(ids)

            # Catalog dead letters: one message moved back to work, none left.
            sqs = boto3.client("sqs")
            dlq = sqs.get_queue_url(QueueName=stack.settings.catalog_queue + "-dlq")["QueueUrl"]
            sqs.send_message(QueueUrl=dlq, MessageBody='{"Records": []}')
            assert _report().catalog_dlq_messages == 1
            moved = CliRunner().invoke(app, ["redrive", "--source", "catalog-dlq"])
            assert moved.exit_code == 0, moved.output
            assert "1 message(s) moved back" in moved.stdout
            assert _report().catalog_dlq_messages == 0
            bad = CliRunner().invoke(app, ["redrive", "--source", "elsewhere"])
            assert bad.exit_code == 2
    finally:
        handler._settings.cache_clear()


BROKEN_POLICY = '{"persons": {"pk": "mask", "secret": "hash"}}'  # keys can only be hashed
FIXED_POLICY = '{"persons": {"pk": "hash", "secret": "hash"}}'


def test_consumer_errors_of_a_broken_privacy_policy_land_exactly_once_after_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHANGELAKE_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("CHANGELAKE_PRIVACY_KEY", "redrive-test-key-0123456789abcdef-0123")
    # Set through monkeypatch first, so its teardown leaves the policy as it found it (the stack
    # sets it, the fix below changes it: else the broken policy outlives the test, keyless).
    monkeypatch.setenv("CHANGELAKE_PRIVACY_POLICY", BROKEN_POLICY)
    with LocalStack(0, firehose_buffer_seconds=0.5, privacy_policy=BROKEN_POLICY) as stack:
        ddb = boto3.client("dynamodb")
        for i in range(12):
            ddb.put_item(
                TableName=TABLE,
                Item={
                    "pk": {"S": f"p{i:02d}"},
                    "secret": {"S": f"secret-value-{i}"},
                    "v": {"N": str(i)},
                },
            )
        ddb.delete_item(TableName=TABLE, Key={"pk": {"S": "p00"}})
        store = S3ObjectStore(stack.settings.lake_bucket)
        wait_until(
            "13 quarantined records",
            lambda: _report().tables[0].quarantine.by_source.get("consumer") == 13,
        )
        assert not lake.partitioned_keys(store, layout.changes_prefix(TABLE))
        (reason,) = _report().tables[0].quarantine.by_reason
        assert "privacy policy would mask key attribute 'pk'" in reason
        # The Firehose path must have seen them under the broken policy too before the fix
        # (else, on a slow machine, the transform would read the fixed policy and keep them).
        firehose = stack.emulator.firehose
        assert firehose is not None
        wait_until("the transform dropped the 13 records", lambda: firehose.records_dropped >= 13)
        assert firehose.records_dropped == 13

        # The fix: a policy that hashes the key. The quarantine holds only redacted bytes,
        # so the re-drive reads each record back from the stream by shard and sequence number.
        monkeypatch.setenv("CHANGELAKE_PRIVACY_POLICY", FIXED_POLICY)
        done = redrive_from_settings("consumer-errors")
        assert (done.records, done.landed, done.still_failing) == (13, 13, 0)
        first = {k: store.get(k) for k in done.objects_written}
        again = redrive_from_settings("consumer-errors")
        assert (again.records, again.landed, again.objects_written) == (0, 0, [])

        wait_until("the re-driven partition in Glue", lambda: _report().tables[0].items.view_items)
        report = _report()
        (t,) = report.tables
        # _current equals a Scan with the fixed policy applied (keys hashed, never clear).
        assert (t.items.source_items, t.items.view_items) == (11, 11)
        assert t.items.missing.count + t.items.extra.count + t.items.different.count == 0
        assert t.quarantine.records == 0
        assert t.events.curated_events == 13
        assert t.events.missing_in_curated.count == 0
        # The transform Dropped them (their covered key could not be masked): the raw path
        # has no copy, and reconcile says so rather than calling the lake complete.
        assert t.events.missing_in_raw.count == 13
        assert {k: store.get(k) for k in done.objects_written} == first
        rows = [r for data in first.values() for r in pq.read_table(io.BytesIO(data)).to_pylist()]
        assert len(rows) == 13
        text = json.dumps(rows, default=str)
        assert "secret-value-" not in text  # hashed by the fixed policy, never in clear
        assert '"p01"' not in text
        assert all(len(json.loads(r["item_key"])["pk"]) == 64 for r in rows)
