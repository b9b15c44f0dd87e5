"""Each packaged named query, as shipped, gives the hand-computed rows on a lake the product
wrote (tests/changelake_product_lake.py: the events and where they were stored)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from changelake_lake.query.local_engine import LocalEngine
from changelake_lake.query.model import QueryResult
from changelake_lake.query.named import load, load_all
from changelake_product_lake import moment

pytestmark = pytest.mark.aws


def run_named(engine: LocalEngine, name: str, **params: str) -> QueryResult:
    """Render the packaged SQL for table persons and run it with Athena-style parameters."""
    query = load(name)
    return engine.run(query.sql("persons"), query.execution_parameters(params))


def test_named_queries_are_the_eight_promised() -> None:
    assert sorted(load_all()) == [
        "attribute_changes",
        "changes_per_hour",
        "current_state",
        "deletes_ttl_vs_user",
        "duplicates_seen",
        "item_as_of",
        "item_history",
        "table_as_of",
    ]


def test_named_current_state_lists_live_items_once(engine: LocalEngine) -> None:
    result = run_named(engine, "current_state")
    rows = result.records()
    assert [(r["pk"], r["name"], r["email"], r["age__n"], r["address__city"]) for r in rows] == [
        ("p1", "Anna", "anna@x", Decimal(30), "Oslo"),
        ("p4", "Dee", "dee@d", Decimal(51), None),
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
        (moment("12:30:00"), "MODIFY", "e08", ["address", "email", "name"]),
    ]


def test_history_view_one_row_per_event_with_validity(engine: LocalEngine) -> None:
    rows = engine.run(
        "SELECT item_key, event_id, valid_from, valid_to, is_removed FROM persons_history "
        "ORDER BY event_id"
    ).rows
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        ("e01", moment("10:00:00"), moment("10:30:00"), False),
        ("e02", moment("10:05:00"), moment("11:10:00"), False),
        ("e03", moment("10:30:00"), moment("12:30:00"), False),  # stored twice, once here
        ("e04", moment("11:00:00"), moment("11:20:00"), False),
        ("e05", moment("11:10:00"), None, True),
        ("e06", moment("11:20:00"), moment("12:00:00"), False),
        ("e07", moment("12:00:00"), None, True),
        ("e08", moment("12:30:00"), None, False),
        # same event time: the sequence number orders them, e09 lasted no time at all
        ("e09", moment("12:40:00.5"), moment("12:40:00.5"), False),
        ("e10", moment("12:40:00.5"), None, False),
    ]


@pytest.mark.parametrize(
    ("pk", "as_of", "expected"),
    [
        ("p1", "2024-05-01T09:59:59", None),  # before it existed: no row
        ("p1", "2024-05-01T10:00:00", ("e01", "ann@a", False)),  # from valid_from on
        ("p1", "2024-05-01 10:29:59.999", ("e01", "ann@a", False)),
        ("p1", "2024-05-01T10:30:00Z", ("e03", "ann@new", False)),  # up to valid_to, excluded
        ("p1", "2024-05-02T00:00:00", ("e08", "anna@x", False)),
        ("p2", "2024-05-01T11:15:00", ("e05", None, True)),  # deleted then
        ("p4", "2024-05-01T12:40:00.5", ("e10", "dee@d", False)),
    ],
)
def test_named_item_as_of_gives_the_image_then(
    engine: LocalEngine, pk: str, as_of: str, expected: tuple[str, str | None, bool] | None
) -> None:
    rows = run_named(engine, "item_as_of", item_key=f'{{"pk":"{pk}"}}', as_of=as_of).records()
    got = [
        (
            r["event_id"],
            None if r["new_image"] is None else _image(r)["email"],
            r["is_removed"],
        )
        for r in rows
    ]
    assert got == ([] if expected is None else [expected])


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        ("2024-05-01T09:00:00", {}),
        ("2024-05-01T10:05:00", {"p1": "e01", "p2": "e02"}),
        ("2024-05-01T11:15:00", {"p1": "e03", "p3": "e04"}),  # p2 deleted at 11:10
        ("2024-05-01T12:00:00", {"p1": "e03"}),  # p3's TTL delete at 12:00 counts
        ("2024-05-01T12:45:00", {"p1": "e08", "p4": "e10"}),  # p5's partition: unregistered
    ],
)
def test_named_table_as_of_lists_the_items_that_existed(
    engine: LocalEngine, as_of: str, expected: dict[str, str]
) -> None:
    rows = run_named(engine, "table_as_of", as_of=as_of).records()
    assert {_image(r)["pk"]: r["event_id"] for r in rows} == expected
    assert [r["item_key"] for r in rows] == sorted(r["item_key"] for r in rows)


def _image(row: dict[str, Any]) -> dict[str, Any]:
    import json

    image: dict[str, Any] = json.loads(row["new_image"])
    return image


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
