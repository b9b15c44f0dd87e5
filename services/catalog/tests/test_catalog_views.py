"""The ``<table>_current`` SQL: transpiled from Athena to DuckDB, run over real Parquet files."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from changelake_lake.athena_view import decode_presto_view
from changelake_lake.columns import Column
from changelake_lake.glue_tables import view_table_input
from changelake_lake.views import current_view_sql

pytestmark = pytest.mark.unit

T0 = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
COLUMNS = ["event_id", "event_name", "event_time", "item_key", "pk", "name", "sequence_number"]


@pytest.fixture
def lake_dir(
    tmp_path: Path, make_row: Callable[..., dict[str, Any]], write_changes: Callable[..., None]
) -> Path:
    """GIVEN a small lake with every ordering case the view must resolve."""
    r = make_row
    t1, t2, t3 = T0, T0 + timedelta(minutes=1), T0 + timedelta(hours=1)
    first = [
        r("a", "INSERT", at=t1, name="a1"),
        r("b", "INSERT", at=t1, name="b1"),
        r("c", "INSERT", at=t1, name="c1", event_id="dup-c", seq="100"),
        # same event_time: sequence "9" vs "10" — numeric order says 10 is later
        r("d", "MODIFY", at=t1, name="d-seq-9", seq="9"),
        r("d", "MODIFY", at=t1, name="d-seq-10", seq="10"),
        r("e", "REMOVE", at=t1, name="e1"),
        r("g", "INSERT", at=t1, name="g1"),
    ]
    second = [
        r("a", "MODIFY", at=t2, name="a2"),
        r("b", "REMOVE", at=t2, name="b1"),
        r("c", "INSERT", at=t1, name="c1", event_id="dup-c", seq="100"),  # redelivered
        r("e", "INSERT", at=t2, name="e2"),
        {**r("g", "REMOVE", at=t2, name="g1"), "is_ttl_delete": True},
    ]
    # f: the older change is written last; event time, not arrival, decides
    late = [r("f", "MODIFY", at=t3, name="f-late-but-newest")]
    early = [r("f", "INSERT", at=t1, name="f-early")]
    write_changes(tmp_path, "s-1-7.parquet", first)
    write_changes(tmp_path, "s-8-12.parquet", second)
    write_changes(tmp_path, "s-13-13.parquet", late)
    write_changes(tmp_path, "s-14-14.parquet", early)
    return tmp_path


def test_current_view_sql_keeps_latest_live_image_when_run_on_duckdb(
    lake_dir: Path, run_duckdb: Callable[..., list[dict[str, Any]]]
) -> None:
    rows = run_duckdb(lake_dir, current_view_sql("persons", COLUMNS, "changelake"))
    by_pk = {row["pk"]: row for row in rows}
    # THEN: one row per live item, the last change wins, REMOVE (and TTL) hides
    assert sorted(by_pk) == ["a", "c", "d", "e", "f"]
    assert by_pk["a"]["name"] == "a2"
    assert by_pk["c"]["event_id"] == "dup-c"
    assert by_pk["d"]["name"] == "d-seq-10"
    assert by_pk["e"]["name"] == "e2"
    assert by_pk["f"]["name"] == "f-late-but-newest"
    assert len(rows) == 5
    assert list(rows[0]) == COLUMNS


def test_current_view_sql_from_glue_view_text_runs_the_same_on_duckdb(
    lake_dir: Path, run_duckdb: Callable[..., list[dict[str, Any]]]
) -> None:
    columns = [Column(c, "string") for c in COLUMNS]
    view = decode_presto_view(
        view_table_input("persons", columns, "changelake")["ViewOriginalText"]
    )
    rows = run_duckdb(lake_dir, view.sql)
    assert sorted(r["pk"] for r in rows) == ["a", "c", "d", "e", "f"]


def test_current_view_sql_quotes_identifiers_when_names_are_reserved_words() -> None:
    sql = current_view_sql("my-table.v2", ["select", 'we"ird'], "changelake")
    assert '"select"' in sql
    assert '"we""ird"' in sql
    assert '"changelake"."my_table_v2_changes"' in sql
    parsed = sqlglot.parse_one(sql, read="athena")
    assert parsed is not None
    assert json.dumps(sql)  # plain text, storable as-is


def test_current_view_sql_rejects_empty_column_list() -> None:
    with pytest.raises(ValueError, match="at least one column"):
        current_view_sql("persons", [], "changelake")
