"""The current-state snapshot (ADR 0035): `<table>_current` gives the same answer with a snapshot
as over the full history, on a lake written as the pipeline writes it (moto S3 + Glue over
HTTP), including late data that reaches partitions the snapshot already folded."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import boto3
import pytest
from changelake.events import Position
from changelake.timeutil import datetime_to_us
from changelake_bench import history_lake
from changelake_bench.history_lake import HistorySpec, hour_of, put_change_object
from changelake_catalog.ports import QueueMessage
from changelake_catalog.repair import Repairer
from changelake_catalog.service import CatalogService
from changelake_catalog.snapshot import Lake, take_snapshot
from changelake_cli.main import app
from changelake_lake.query.local_engine import LocalEngine
from changelake_lake.snapshot_view import state_of
from changelake_lake.views import current_view_sql
from changelake_testsupport.fakes import RecordingMetrics
from changelake_testsupport.records import encode, kinesis_dynamodb_record
from typer.testing import CliRunner

pytestmark = pytest.mark.aws

TABLE = "persons"
SPEC = HistorySpec(items=30, hours=6, changes_per_hour=50)


def _full_history(lake: Lake) -> list[tuple[Any, ...]]:
    """The full-history answer: ADR 0007's view text over the same lake, run as a query."""
    columns = [c.name for c in lake.catalog.table_columns(TABLE) or ()]
    sql = current_view_sql(TABLE, columns)
    return LocalEngine().run(f"SELECT * FROM ({sql}) full_history ORDER BY item_key").rows


def _current(engine: LocalEngine) -> list[tuple[Any, ...]]:
    return engine.run("SELECT * FROM persons_current ORDER BY item_key").rows


def _record(pk: str, kind: str, hour: int, minute: int, seq: int, **image: Any) -> Any:
    when = datetime_to_us(SPEC.start + timedelta(hours=hour, minutes=minute))
    record = kinesis_dynamodb_record(
        event_name=kind,
        keys={"pk": pk},
        new_image={"pk": pk, **image} if kind != "REMOVE" else None,
        old_image={"pk": pk} if kind != "INSERT" else None,
        event_time_us=when,
        precision="MICROSECOND",
        event_id=f"late-{pk}-{seq}",
    )
    position = Position("shardId-000000000009", str(history_lake.SEQ_BASE * 10 + seq), when)
    return encode(record), position


def _put_late(lake: Lake, hour: int, records: Sequence[Any]) -> str:
    return put_change_object(lake.store, lake.catalog, TABLE, hour_of(SPEC, hour), list(records))


def test_snapshot_view_equals_full_history_at_every_cut(lake: Lake) -> None:
    history = history_lake.write(SPEC, lake.store, lake.catalog)
    expected = _full_history(lake)
    assert 10 < len(expected) < SPEC.items  # live items; some deleted at the end
    engine = LocalEngine()
    previous = hour_of(SPEC, 0)
    for hour in (0, 3, SPEC.hours):  # nothing folded, half, everything
        cut = hour_of(SPEC, hour)
        report = take_snapshot(lake, TABLE, cut=cut, late_check_delay_s=0)
        assert _current(engine) == expected, f"cut at hour {hour}"
        # Incremental: only the partitions between the previous cut and this one are read.
        folded = [p for p in history.objects if previous <= p < cut]
        assert report.partitions_read == len(folded)
        assert report.objects_read == sum(len(history.objects[p]) for p in folded)
        assert report.late_partitions == []
        # The view reads the snapshot's one partition and only the partitions from the cut on.
        stats = engine.run("SELECT count(*) FROM persons_current").stats
        assert stats.partitions == 1 + len([p for p in history.objects if p >= cut])
        if hour == 3:
            # History the snapshot holds may be expired (compact --expire): drop it from Glue;
            # the next snapshot builds on this one and still gives the same answer.
            glue = boto3.client("glue")
            for p in history.objects:
                if p < cut:
                    glue.delete_partition(
                        DatabaseName="changelake",
                        TableName="persons_changes",
                        PartitionValues=p.values,
                    )
        previous = cut
    # One row per item in the last snapshot, tombstones included, the live ones as the view.
    rows = engine.run(
        "SELECT item_key, event_name FROM persons_snapshot "
        f"WHERE snapshot_at = '{report.snapshot_at}'"
    ).rows
    assert len({k for k, _ in rows}) == len(rows) == report.items
    assert sum(1 for _, kind in rows if kind != "REMOVE") == report.live_items == len(expected)
    assert report.items > report.live_items  # deleted items stay as tombstones
    # Three runs: the current snapshot and the previous one are kept, the first is dropped.
    assert len(report.dropped_snapshots) == 1
    assert len(lake.catalog.snapshot_ids(TABLE)) == 2


def test_late_data_before_the_cut_is_seen_through_the_catalog(lake: Lake) -> None:
    history_lake.write(SPEC, lake.store, lake.catalog)
    take_snapshot(lake, TABLE, cut=hour_of(SPEC, 4), late_check_delay_s=0)
    engine = LocalEngine()
    before = {row[3]: row for row in _current(engine)}  # item_key is the 4th column
    victim = next(k for k in before)  # live in the snapshot: an older late change must not win
    deleted = "p9998"
    keys = [
        _put_late(lake, 5, [_record(deleted, "INSERT", 5, 1, 1, name="gone")]),
        _put_late(lake, 5, [_record(deleted, "REMOVE", 5, 2, 2)]),
        # Late, before the cut: an old change of a live item, a resurrection attempt of the
        # deleted item (older than its delete), a brand-new item, and a new latest change.
        _put_late(
            lake,
            0,
            [
                _record(json.loads(victim)["pk"], "MODIFY", 0, 1, 3, name="stale"),
                _record(deleted, "INSERT", 0, 2, 4, name="zombie"),
                _record("p9999", "INSERT", 0, 3, 5, name="new and late"),
            ],
        ),
        _put_late(lake, 3, [_record("p9997", "INSERT", 3, 59, 6, name="latest")]),
    ]
    bucket = lake.catalog.bucket
    service = CatalogService(_Queue(), lake.store, lake.catalog, RecordingMetrics())
    service.handle([_message(str(i), bucket, key) for i, key in enumerate(keys)])
    state = lake.catalog.snapshot_state(TABLE)
    assert state is not None
    assert state.late == (hour_of(SPEC, 0), hour_of(SPEC, 3))
    current = _current(engine)
    assert current == _full_history(lake)
    names = {json.loads(r[3])["pk"]: r for r in current}
    assert deleted not in names
    assert "p9999" in names
    assert "p9997" in names
    assert names[json.loads(victim)["pk"]] == before[victim]
    # The next snapshot folds the late partitions: the view no longer lists them.
    take_snapshot(lake, TABLE, cut=hour_of(SPEC, 4), late_check_delay_s=0)
    state = lake.catalog.snapshot_state(TABLE)
    assert state is not None
    assert state.late == ()
    assert _current(engine) == current


def test_object_landing_while_the_snapshot_runs_is_marked_by_its_relist(lake: Lake) -> None:
    history_lake.write(SPEC, lake.store, lake.catalog)

    def arrive(seconds: float) -> None:
        assert seconds == 7.0
        # Written after the snapshot read hour 1, never seen by a catalog: only the re-list
        # after the switch can tell the view about it.
        _put_late(lake, 1, [_record("p9996", "INSERT", 1, 30, 7, name="in flight")])

    report = take_snapshot(lake, TABLE, cut=hour_of(SPEC, 4), late_check_delay_s=7.0, sleep=arrive)
    assert report.late_partitions == [hour_of(SPEC, 1).path]
    current = _current(LocalEngine())
    assert current == _full_history(lake)
    assert any(json.loads(r[3])["pk"] == "p9996" for r in current)
    # A partition the catalog never registered (the snapshot could not read it): the repair
    # that registers it also marks it late.
    missed = hour_of(SPEC, -1)
    record = _record("p9995", "INSERT", -1, 30, 8, name="missed")
    put_change_object(lake.store, lake.catalog, TABLE, missed, [record], register=False)
    Repairer(lake.store, lake.catalog).run(TABLE)
    state = lake.catalog.snapshot_state(TABLE)
    assert state is not None
    assert missed in state.late
    current = _current(LocalEngine())
    assert current == _full_history(lake)
    assert any(json.loads(r[3])["pk"] == "p9995" for r in current)


def test_catalog_view_rewrite_keeps_the_snapshot(lake: Lake) -> None:
    history_lake.write(SPEC, lake.store, lake.catalog)
    take_snapshot(lake, TABLE, cut=hour_of(SPEC, 3), late_check_delay_s=0)
    # A new attribute after the snapshot: the catalog adds the column and rewrites the view.
    _put_late(lake, 5, [_record("p0001", "MODIFY", 5, 59, 8, name="x", brand_new="yes")])
    view = boto3.client("glue").get_table(DatabaseName="changelake", Name="persons_current")
    assert state_of(view["Table"]["Parameters"]) is not None
    columns = [c["Name"] for c in view["Table"]["StorageDescriptor"]["Columns"]]
    assert "brand_new" in columns
    current = _current(LocalEngine())
    assert current == _full_history(lake)
    assert any(r[columns.index("brand_new")] == "yes" for r in current)


def test_snapshot_command_reports_json(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    history = history_lake.write(SPEC, lake.store, lake.catalog)
    monkeypatch.setenv("CHANGELAKE_LOG_LEVEL", "WARNING")
    result = CliRunner().invoke(
        app, ["snapshot", "--table", TABLE, "--settle", "0", "--late-check-delay", "0", "--json"]
    )
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)
    assert report["partitions_read"] == len(history.objects)  # all history is hours old
    assert report["live_items"] == len(_full_history(lake))
    assert _current(LocalEngine()) == _full_history(lake)


class _Queue:
    def receive(self, max_messages: int, wait_seconds: int) -> list[QueueMessage]:
        return []

    def delete(self, messages: Sequence[QueueMessage]) -> None:
        del messages

    def retry_later(self, messages: Sequence[QueueMessage], delay_seconds: int) -> None:
        raise AssertionError(f"catalog failed on {messages}")


def _message(mid: str, bucket: str, key: str) -> QueueMessage:
    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": key}},
    }
    return QueueMessage(mid, f"rh-{mid}", json.dumps({"Records": [record]}))
