"""The scheduled maintenance task: compact, then snapshot, then expire below the snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from changelake_catalog import maintenance
from changelake_catalog.settings import CatalogSettings
from changelake_lake.layout import Partition
from changelake_lake.query.local_engine import LocalEngine
from changelake_lake.views import current_view_sql
from maintenance_lake import BUCKET, TABLE, LakeFixture

pytestmark = pytest.mark.aws

LATER = datetime(2030, 1, 1, tzinfo=UTC)
HOURS = [Partition("2026-11-27", "10"), Partition("2026-11-27", "11")]


def _full_history(lake: LakeFixture) -> list[tuple[Any, ...]]:
    """ADR 0007's view text over every change the lake holds: the answer without a snapshot."""
    columns = [c.name for c in lake.catalog.table_columns(TABLE) or ()]
    sql = current_view_sql(TABLE, columns)
    return LocalEngine().run(f"SELECT * FROM ({sql}) full_history ORDER BY item_key").rows


def _current() -> list[tuple[Any, ...]]:
    return LocalEngine().run(f"SELECT * FROM {TABLE}_current ORDER BY item_key").rows


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> CatalogSettings:
    monkeypatch.setenv("CHANGELAKE_LAKE_BUCKET", BUCKET)
    monkeypatch.setenv("CHANGELAKE_TABLES", TABLE)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return CatalogSettings()


def test_scheduled_run_snapshots_between_compaction_and_expiry(
    written: LakeFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a consumer-written lake (two partition-hours, stream duplicates, deletes)
    expected = _full_history(written)
    assert len(expected) == 60 - 12  # 60 items, 12 deleted (the view shows live items only)
    # WHEN the scheduled task runs with its defaults, expiry switched on
    settings = _settings(monkeypatch, CHANGELAKE_COMPACT_EXPIRE="true")
    waits: list[float] = []
    [summary] = maintenance.run(
        settings,
        grace=timedelta(0),
        expire_after=timedelta(days=1),
        now=lambda: LATER,
        sleep=waits.append,
    )
    # THEN both hours were compacted, folded into one snapshot of every item, then expired
    assert summary["partitions_compacted"] == 2
    snapshot = summary["snapshot"]
    assert snapshot["partitions_read"] == 2
    assert snapshot["items"] == 60
    assert snapshot["live_items"] == 48
    assert waits == [15.0]  # the late-data re-list waited out the catalog's state cache
    assert summary["expire"]["partitions_expired"] == [p.path for p in HOURS]
    assert written.catalog.locations(TABLE) == {}
    state = written.catalog.snapshot_state(TABLE)
    assert state is not None
    assert state.at == snapshot["snapshot_at"]
    # AND <table>_current, now read from the snapshot alone, is the full-history answer
    assert _current() == expected


def _never(seconds: float) -> None:
    raise AssertionError(f"no snapshot was to be taken, yet it waited {seconds} s")


def test_snapshot_step_can_be_switched_off(
    written: LakeFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(monkeypatch, CHANGELAKE_SNAPSHOT_SCHEDULED="false")
    [summary] = maintenance.run(settings, grace=timedelta(0), now=lambda: LATER, sleep=_never)
    assert summary["partitions_compacted"] == 2
    assert "snapshot" not in summary
    assert written.catalog.snapshot_state(TABLE) is None
    assert set(written.catalog.locations(TABLE)) == set(HOURS)
