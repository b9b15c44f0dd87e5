"""The ``<table>_history`` SQL on DuckDB over real Parquet files, against a Python oracle."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from changelake_lake.athena_view import decode_presto_view, encode_presto_view
from changelake_lake.columns import Column
from changelake_lake.history_view import (
    ADDED_COLUMNS,
    history_view_definition,
    history_view_name,
    history_view_sql,
)
from changelake_testsupport.history import history_oracle

pytestmark = pytest.mark.unit

T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
COLUMNS = ["event_id", "event_name", "event_time", "item_key", "pk", "name", "sequence_number"]


def _random_lake(
    root: Path, seed: int, make_row: Callable[..., dict[str, Any]], write: Callable[..., None]
) -> list[dict[str, Any]]:
    """Items with inserts, updates, deletes and re-inserts; event-time ties broken by sequence
    numbers of different lengths; redelivered copies in other files; files out of order."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for item in range(12):
        at = T0 + timedelta(seconds=rng.randrange(0, 600))
        seq = rng.randrange(5, 200)
        alive = False
        for version in range(rng.randrange(1, 7)):
            kind = "INSERT" if not alive else rng.choice(["MODIFY", "MODIFY", "REMOVE"])
            alive = kind != "REMOVE"
            if rng.random() > 0.3:  # else the previous version's event time: seq decides
                at += timedelta(milliseconds=rng.randrange(1, 90_000))
            seq += rng.choice([1, 7, 900, 99_000])  # crosses digit counts: "9" < "10"
            rows.append(make_row(f"p{item}", kind, at=at, seq=str(seq), name=f"p{item}-v{version}"))
    copies = [
        {**row, "sequence_number": str(int(row["sequence_number"]) + 10**12)}
        for row in rng.sample(rows, 8)
    ]
    files = [rows[i : i + 7] for i in range(0, len(rows), 7)] + [copies]
    rng.shuffle(files)
    for n, chunk in enumerate(files):
        write(root, f"s-{n}.parquet", chunk)
    return [*rows, *copies]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_history_view_sql_equals_the_python_oracle_on_duckdb(
    tmp_path: Path,
    make_row: Callable[..., dict[str, Any]],
    write_changes: Callable[..., None],
    run_duckdb: Callable[..., list[dict[str, Any]]],
    seed: int,
) -> None:
    rows = _random_lake(tmp_path, seed, make_row, write_changes)
    got = run_duckdb(tmp_path, history_view_sql("persons", COLUMNS))
    # One row per event id, every event present.
    assert len(got) == len({r["event_id"] for r in rows})
    expected = history_oracle(rows)
    assert {r["event_id"]: (r["valid_from"], r["valid_to"], r["is_removed"]) for r in got} == (
        expected
    )
    # Each row is its event's change (copies carry the same one).
    assert {r["event_id"]: (r["item_key"], r["name"]) for r in got} == {
        r["event_id"]: (r["item_key"], r["name"]) for r in rows
    }
    # The latest version of each item is open-ended; REMOVE versions are marked.
    assert any(v[2] for v in expected.values())
    assert sum(v[1] is None for v in expected.values()) == len({r["item_key"] for r in rows})


def test_history_view_from_glue_definition_projects_data_columns_then_the_interval(
    tmp_path: Path,
    make_row: Callable[..., dict[str, Any]],
    write_changes: Callable[..., None],
    run_duckdb: Callable[..., list[dict[str, Any]]],
) -> None:
    rows = [
        make_row("a", "INSERT", at=T0, name="a1"),
        make_row("a", "REMOVE", at=T0 + timedelta(minutes=1), name="a1"),
        make_row("a", "INSERT", at=T0 + timedelta(minutes=2), name="a2"),
    ]
    write_changes(tmp_path, "s-1.parquet", rows)
    # An attribute column named like one the view adds stays out of the projection.
    columns = [Column(n, "string") for n in (*COLUMNS, "valid_from")]
    columns[2] = Column("event_time", "timestamp")
    view = history_view_definition("persons", columns)
    decoded = decode_presto_view(encode_presto_view(view))
    assert [n for n, _ in decoded.columns] == [*COLUMNS, *(n for n, _ in ADDED_COLUMNS)]
    assert dict(decoded.columns)["valid_to"] == "timestamp"
    assert dict(decoded.columns)["is_removed"] == "boolean"
    got = sorted(run_duckdb(tmp_path, decoded.sql), key=lambda r: r["valid_from"])
    assert [(r["name"], r["valid_from"], r["valid_to"], r["is_removed"]) for r in got] == [
        ("a1", T0, T0 + timedelta(minutes=1), False),
        ("a1", T0 + timedelta(minutes=1), T0 + timedelta(minutes=2), True),
        ("a2", T0 + timedelta(minutes=2), None, False),
    ]
    assert history_view_name("Persons-V2.prod") == "persons_v2_prod_history"


def test_history_view_sql_rejects_empty_column_list() -> None:
    with pytest.raises(ValueError, match="at least one column"):
        history_view_sql("persons", ["valid_from"])
