"""Pure pieces of the operations: --since, gaps, snapshot ids and keys, the report's JSON."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from changelake_cli.ops import lake
from changelake_cli.ops.backfill import snapshot_event_id, snapshot_object_key
from changelake_cli.ops.reconcile import (
    EXAMPLES,
    CatalogCheck,
    EventsCheck,
    Gap,
    ItemsCheck,
    QuarantineCheck,
    ReconcileReport,
    TableReport,
)
from changelake_lake.layout import Partition

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 30, 12, 30, tzinfo=UTC)


def test_since_takes_durations_and_iso_times_in_utc() -> None:
    assert lake.parse_since("90m", NOW) == datetime(2026, 11, 30, 11, 0, tzinfo=UTC)
    assert lake.parse_since("2d", NOW) == datetime(2026, 11, 28, 12, 30, tzinfo=UTC)
    assert lake.parse_since("2026-11-29T10:00", NOW) == datetime(2026, 11, 29, 10, tzinfo=UTC)
    assert lake.parse_since("2026-11-29T10:00+02:00", NOW) == datetime(2026, 11, 29, 8, tzinfo=UTC)
    assert lake.parse_since(None, NOW) is None
    with pytest.raises(ValueError, match="ISO date/time"):
        lake.parse_since("last tuesday", NOW)


def test_a_partition_is_wanted_while_its_hour_ends_after_since() -> None:
    since = datetime(2026, 11, 30, 10, 15, tzinfo=UTC)
    assert lake.partition_wanted(Partition("2026-11-30", "10"), since)
    assert not lake.partition_wanted(Partition("2026-11-30", "09"), since)
    assert lake.partition_of("raw/t/dt=2026-11-30/hour=10/x", "raw/t/") == (
        Partition("2026-11-30", "10"),
        "x",
    )
    assert lake.partition_of("raw/t/dt=2026-11-30/hour=10/_SUCCESS", "raw/t/") is None
    assert lake.partition_of("raw/t/compacted/dt=2026-11-30/hour=10/x", "raw/t/") is None


def test_gaps_count_everything_and_show_a_bounded_sorted_sample() -> None:
    gap = Gap.of(f"id-{i:03d}" for i in [*range(50), 3, 4])
    assert gap.count == 50
    assert len(gap.examples) == EXAMPLES
    assert list(gap.examples) == sorted(gap.examples)


def test_snapshot_ids_and_keys_are_deterministic_per_snapshot() -> None:
    one = snapshot_event_id("persons", "arn:export/1", '{"pk":"a"}')
    assert one == snapshot_event_id("persons", "arn:export/1", '{"pk":"a"}')
    assert one != snapshot_event_id("persons", "arn:export/2", '{"pk":"a"}')
    assert one.startswith("snapshot-")
    assert len(one) <= 128  # MAX_EVENT_ID_LENGTH
    at = 1_796_000_000_000_000
    key = snapshot_object_key("persons", "arn:export/1", at, 3)
    assert key == snapshot_object_key("persons", "arn:export/1", at, 3)
    assert key.startswith("changes/persons/dt=")
    assert key.endswith("-000003.parquet")


def test_report_json_is_stable_and_counts_every_gap_kind() -> None:
    table = TableReport(
        "persons",
        ItemsCheck("full", "consistent Scan", 3, 2, missing=Gap.of(['{"pk":"a"}'])),
        EventsCheck(1, 5, 4, 0, missing_in_curated=Gap.of(["e1"])),
        CatalogCheck(2, 1, 0, unregistered_partitions=Gap.of(["dt=2026-11-30/hour=10"])),
        QuarantineCheck(1, {"consumer": 1}, {"invalid JSON": 1}, ("errors/x",)),
    )
    report = ReconcileReport((table,), None, QuarantineCheck(0), 2)
    doc = report.to_dict()
    assert (doc["version"], doc["clean"], doc["gaps"]) == (1, False, 1 + 1 + 1 + 1 + 2)
    assert report.exit_code == 1
    assert list(doc["tables"][0]) == ["table", "gaps", "items", "events", "catalog", "quarantine"]
    assert doc["tables"][0]["items"]["missing"] == {"count": 1, "examples": ['{"pk":"a"}']}
    clean = ReconcileReport((), None, QuarantineCheck(0), 0)
    assert (clean.clean, clean.exit_code) == (True, 0)
