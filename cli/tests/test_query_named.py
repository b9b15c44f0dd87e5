"""Each packaged named query, as shipped, gives the hand-computed rows on the fixture lake."""

from __future__ import annotations

from typing import Any

import changelake_fixture_lake as fixture_lake
import pytest
from changelake_fixture_lake import moment
from changelake_lake.query.local_engine import LocalEngine
from changelake_lake.query.model import QueryResult
from changelake_lake.query.named import load, load_all

pytestmark = pytest.mark.aws


@pytest.fixture
def engine(aws_endpoint: str) -> LocalEngine:
    """A local engine over a freshly built fixture lake."""
    del aws_endpoint
    fixture_lake.build()
    return LocalEngine()


def run_named(engine: LocalEngine, name: str, **params: str) -> QueryResult:
    """Render the packaged SQL for table persons and run it with Athena-style parameters."""
    query = load(name)
    return engine.run(query.sql("persons"), query.execution_parameters(params))


def test_named_queries_are_the_six_promised() -> None:
    assert sorted(load_all()) == [
        "attribute_changes",
        "changes_per_hour",
        "current_state",
        "deletes_ttl_vs_user",
        "duplicates_seen",
        "item_history",
    ]


def test_named_current_state_lists_live_items_once(engine: LocalEngine) -> None:
    result = run_named(engine, "current_state")
    rows = result.records()
    assert [(r["pk"], r["name"], r["email"], r["age"], r["city"]) for r in rows] == [
        ("p1", "Anna", "anna@x", 30, "Oslo"),
        ("p4", "Dee", "dee@d", 51, None),
    ]
    assert [r["event_id"] for r in rows] == ["e08", "e10"]


def test_named_current_state_limit_parameter(engine: LocalEngine) -> None:
    assert len(run_named(engine, "current_state", limit="1").rows) == 1


def test_named_item_history_dedupes_and_orders(engine: LocalEngine) -> None:
    result = run_named(engine, "item_history", item_key='{"pk":"p1"}')
    got = [
        (r["event_time"], r["event_name"], r["event_id"], r["changed_attributes"])
        for r in result.records()
    ]
    assert got == [
        (moment("10:00:00"), "INSERT", "e01", ["age", "email", "name", "pk"]),
        (moment("10:30:00"), "MODIFY", "e03", ["email"]),
        (moment("12:30:00"), "MODIFY", "e08", ["city", "email", "name"]),
    ]


def test_named_changes_per_hour_counts_distinct_events(engine: LocalEngine) -> None:
    result = run_named(engine, "changes_per_hour")
    assert result.rows == [
        # dt, hour, changes, inserts, modifies, removes, rows stored (e03 twice)
        ("2024-05-01", "10", 3, 2, 1, 0, 4),
        ("2024-05-01", "11", 3, 1, 1, 1, 3),
        ("2024-05-01", "12", 4, 1, 2, 1, 4),
    ]


def test_named_changes_per_hour_since_prunes(engine: LocalEngine) -> None:
    result = run_named(engine, "changes_per_hour", since_dt="2024-05-02")
    assert result.rows == []
    assert result.stats.files == 0


def test_named_deletes_split_ttl_from_user(engine: LocalEngine) -> None:
    result = run_named(engine, "deletes_ttl_vs_user")
    assert result.rows == [
        ("ttl", 1, 1, moment("12:00:00"), moment("12:00:00")),
        ("user", 1, 1, moment("11:10:00"), moment("11:10:00")),
    ]


def test_named_attribute_changes_who_and_when(engine: LocalEngine) -> None:
    result = run_named(engine, "attribute_changes", attribute="email")
    got: list[tuple[Any, ...]] = [
        (
            r["event_id"],
            r["item_key"],
            r["event_name"],
            r["changed_by"],
            r["old_value"],
            r["new_value"],
        )
        for r in result.records()
    ]
    assert got == [
        ("e01", '{"pk":"p1"}', "INSERT", "application", None, "ann@a"),
        ("e02", '{"pk":"p2"}', "INSERT", "application", None, "bob@b"),
        ("e03", '{"pk":"p1"}', "MODIFY", "application", "ann@a", "ann@new"),
        ("e04", '{"pk":"p3"}', "INSERT", "application", None, "cy@c"),
        ("e05", '{"pk":"p2"}', "REMOVE", "application", "bob@b", None),
        ("e07", '{"pk":"p3"}', "REMOVE", "dynamodb-ttl", "cy@c", None),
        ("e08", '{"pk":"p1"}', "MODIFY", "application", "ann@new", "anna@x"),
        ("e09", '{"pk":"p4"}', "INSERT", "application", None, "dee@d"),
    ]


def test_named_attribute_changes_number_attribute(engine: LocalEngine) -> None:
    result = run_named(engine, "attribute_changes", attribute="age", limit="2")
    got = [(r["event_id"], r["old_value"], r["new_value"]) for r in result.records()]
    assert got == [("e01", None, "30"), ("e02", None, "40")]


def test_named_duplicates_seen_rows_versus_events(engine: LocalEngine) -> None:
    result = run_named(engine, "duplicates_seen")
    assert result.records() == [
        {"rows_stored": 11, "distinct_events": 10, "duplicate_rows": 1, "files": 6}
    ]
