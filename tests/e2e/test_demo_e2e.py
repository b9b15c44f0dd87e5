"""The embedded pipeline under the emulator's faults, checked through the local query engine.

GIVEN the local stack with the faults Kinesis Data Streams for DynamoDB really has (duplicates,
reordering, ms/µs timestamps mixed, TTL deletes), WHEN persons are written, updated and deleted,
THEN ``<table>_current`` equals a Scan of the DynamoDB table exactly and deleted items are absent
(AWS_BEHAVIOUR.md: at-least-once, out of order; dedupe by event_id, order by event time).
"""

from __future__ import annotations

import json
import os
import time

import pytest
from changelake.layout import changes_table_name
from changelake.settings import ChangelakeSettings
from changelake_cli.demo_cmd import _ensure_consumer, free_port, run_demo
from changelake_cli.main import app
from changelake_cli.query.current_check import compare
from changelake_cli.query.local_engine import LocalEngine
from changelake_cli.query.model import QueryError
from typer.testing import CliRunner

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def _distinct_events(engine: LocalEngine, table: str) -> int:
    try:
        result = engine.run(f"SELECT count(DISTINCT event_id) FROM {changes_table_name(table)}")
    except QueryError:
        return 0  # the catalog has not created the table yet
    return int(result.rows[0][0])


def test_current_view_equals_dynamodb_scan_under_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    from changelake_cli.local_stack import LocalStack
    from changelake_emulator.faults import FaultConfig
    from changelake_producer import produce

    monkeypatch.setenv("CHANGELAKE_LOG_LEVEL", "WARNING")
    settings = ChangelakeSettings()
    faults = FaultConfig(
        seed=11, duplicate_rate=0.1, reorder_window=16, ttl_rate=0.5, precision_mix=True
    )
    with LocalStack(free_port(), settings=settings, faults=faults) as stack:
        _ensure_consumer(stack)
        summary = produce(count=600, seed=5, keep_operations=True, settings=settings)
        engine = LocalEngine(settings.database)
        deadline = time.monotonic() + 120
        while _distinct_events(engine, settings.table_name) < summary.total:
            assert time.monotonic() < deadline, "the lake never caught up with the table"
            time.sleep(1)
        check = compare(engine, settings.table_name)
        view = engine.run("SELECT pk FROM persons_current")
        stats = stack.emulator.stats()
        dupes = engine.run("SELECT count(*) - count(DISTINCT event_id) FROM persons_changes").rows[
            0
        ][0]
    # The faults really happened, so the equality below proves something.
    assert stats.duplicates_injected > 0
    assert stats.out_of_order > 0
    assert stats.ttl_marked > 0
    assert dupes == stats.duplicates_injected
    assert check.missing == []
    assert check.extra == []
    assert check.different == []
    assert check.table_items == len(summary.live_pks) > 0
    deleted = {op.pk for op in summary.operations if op.kind == "delete"} - set(summary.live_pks)
    assert deleted
    assert sorted(r[0] for r in view.rows) == summary.live_pks
    assert not deleted & {r[0] for r in view.rows}


def test_demo_summary_counts_match_what_was_produced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANGELAKE_LOG_LEVEL", "WARNING")
    shown: list[str] = []
    summary = run_demo(count=300, seed=3, show=lambda name, _t, _r: shown.append(name))
    assert summary.caught_up
    assert summary.current_equals_dynamodb
    assert summary.changes_produced == summary.distinct_events == 300
    assert summary.rows_stored == 300 + summary.duplicates_injected
    assert summary.duplicates_removed == summary.duplicates_injected
    assert summary.bad_records_quarantined == summary.bad_records_sent == 3
    assert summary.partitions >= 1
    assert summary.files >= 1
    assert summary.freshness_p50_s is not None
    assert summary.freshness_p95_s is not None
    assert summary.freshness_p50_s <= summary.freshness_p95_s
    assert shown == [
        "changes_per_hour",
        "current_state",
        "item_history",
        "attribute_changes",
        "deletes_ttl_vs_user",
        "duplicates_seen",
    ]
    assert "AWS_ENDPOINT_URL" not in os.environ


def test_demo_cmd_json_prints_only_the_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANGELAKE_LOG_LEVEL", "WARNING")
    result = CliRunner().invoke(app, ["demo", "--count", "120", "--json", "--no-faults"])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["changes_produced"] == summary["distinct_events"] == 120
    assert summary["duplicates_removed"] == 0
    assert summary["current_equals_dynamodb"] is True
