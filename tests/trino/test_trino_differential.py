"""Differential: the same Athena SQL on real Trino (Athena's engine) and on the local engine.

One lake written by the real pipeline (see conftest.py). Every named query, the three
tables/views and a set of Athena-dialect queries must give the same rows on both engines;
the constructs the local engine cannot match must fail there with a clear "not supported
locally" error (and run on Trino), never answer differently.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from changelake_lake.query.model import QueryError, QueryResult
from changelake_lake.query.named import load, load_all

Lake = Any  # conftest.Lake: the seeded lake, its settings and both engines

pytestmark = [pytest.mark.trino, pytest.mark.timeout(600)]

C = "persons_changes"

# (id, SQL, ordered): ``{dt}``/``{hour}`` are the lake's first partition. ``ordered`` compares
# rows in order (the ORDER BY is total); otherwise as multisets.
ATHENA_QUERIES: list[tuple[str, str, bool]] = [
    (
        "window_row_number",
        f"SELECT item_key, event_id, sequence_number, row_number() OVER (PARTITION BY item_key "
        f"ORDER BY event_time, length(sequence_number), sequence_number) AS n FROM {C}",
        False,
    ),
    (
        "window_lag_running_count",
        f"SELECT event_id, sequence_number, lag(event_name) OVER (PARTITION BY item_key ORDER BY "
        f"event_time, length(sequence_number), sequence_number) AS previous, count(*) OVER "
        f"(PARTITION BY item_key) AS changes FROM {C}",
        False,
    ),
    (
        "window_rank_dense_rank",
        f"SELECT event_name, event_id, rank() OVER (PARTITION BY event_name ORDER BY size_bytes) "
        f"AS r, dense_rank() OVER (ORDER BY event_name) AS d FROM {C}",
        False,
    ),
    (
        "date_trunc_minute",
        f"SELECT date_trunc('minute', event_time) AS minute, count(*) AS n FROM {C} "
        "GROUP BY 1 ORDER BY 1",
        True,
    ),
    (
        "date_trunc_hour_day",
        f"SELECT date_trunc('hour', event_time) AS h, date_trunc('day', arrival_time) AS d, "
        f"count(DISTINCT event_id) AS n FROM {C} GROUP BY 1, 2 ORDER BY 1, 2",
        True,
    ),
    (
        "from_iso8601_timestamp_filter",
        f"SELECT count(*) AS n FROM {C} "
        "WHERE event_time >= from_iso8601_timestamp('2020-01-01T00:00:00Z')",
        True,
    ),
    (
        "from_iso8601_timestamp_value",
        "SELECT to_unixtime(from_iso8601_timestamp('2024-05-01T10:00:00.250+02:00')) AS t",
        True,
    ),
    (
        "json_extract_scalar_image",
        f"SELECT event_id, json_extract_scalar(new_image, '$.name') AS name, "
        f"json_extract_scalar(new_image, '$.address.city') AS city, "
        f"json_extract_scalar(old_image, '$.version') AS old_version FROM {C}",
        False,
    ),
    (
        "json_extract_scalar_key",
        f"SELECT DISTINCT json_extract_scalar(item_key, '$.pk') AS pk FROM {C}",
        False,
    ),
    (
        "decimal_sum_and_arithmetic",
        f"SELECT sum(balance__n) AS total, sum(balance__n * 2) AS doubled, "
        f"sum(balance__n - visits__n) AS diff, max(address__geo__lat__n + address__geo__lon__n) "
        f"AS geo, min(account_number__n) AS smallest FROM {C}",
        True,
    ),
    (
        "decimal_round_cast",
        f"SELECT event_id, round(balance__n, 2) AS r, CAST(visits__n AS bigint) AS v, "
        f"CAST(balance__n AS decimal(38,2)) AS c FROM {C} WHERE balance__n IS NOT NULL",
        False,
    ),
    (
        "unnest_set_column",
        f"SELECT e, count(*) AS n FROM {C} CROSS JOIN UNNEST(emails__ss) AS t(e) GROUP BY e",
        False,
    ),
    (
        "unnest_changed_attributes",
        f"SELECT a, count(DISTINCT event_id) AS n FROM {C} "
        "CROSS JOIN UNNEST(changed_attributes) AS t(a) GROUP BY a",
        False,
    ),
    (
        "max_by_min_by",
        f"SELECT item_key, max_by(event_name, event_time) AS last_kind, "
        f"min_by(event_name, event_time) AS first_kind FROM {C} GROUP BY item_key",
        False,
    ),
    (
        "regexp_like",
        f"SELECT event_id, name FROM {C} WHERE regexp_like(name, '^[A-M][a-z]+ ')",
        False,
    ),
    (
        "regexp_extract_replace",
        f"SELECT event_id, regexp_extract(phone, '[0-9]+') AS first_digits, "
        f"regexp_replace(address__postcode, '[0-9]', '#') AS masked FROM {C}",
        False,
    ),
    (
        "path_hidden_column",
        f'SELECT "$path" AS path, count(*) AS n FROM {C} GROUP BY 1',
        False,
    ),
    (
        "partition_pruning_dt_hour",
        f"SELECT dt, hour, count(*) AS n FROM {C} WHERE dt = '{{dt}}' AND hour = '{{hour}}' "
        "GROUP BY dt, hour",
        True,
    ),
    (
        "partition_pruning_range",
        f"SELECT count(DISTINCT event_id) AS n FROM {C} WHERE dt >= '{{dt}}' AND dt < '2999-01-01'",
        True,
    ),
    (
        "raw_projection_one_partition",
        "SELECT eventname, count(*) AS n FROM persons_raw "
        "WHERE dt = '{dt}' AND hour = '{hour}' GROUP BY eventname",
        False,
    ),
    (
        "raw_projection_nested_fields",
        "SELECT eventid, dynamodb.approximatecreationdatetime AS ms, "
        "dynamodb.approximatecreationdatetimeprecision AS precision, "
        "json_extract_scalar(dynamodb.keys, '$.pk.S') AS pk, dynamodb.sizebytes AS size, "
        "useridentity.type AS who FROM persons_raw WHERE dt >= '{dt}'",
        False,
    ),
    (
        "raw_projection_path",
        'SELECT count(DISTINCT "$path") AS files, count(*) AS n FROM persons_raw '
        "WHERE dt >= '{dt}'",
        True,
    ),
    (
        "date_functions",
        f"SELECT event_id, date(event_time) AS d, hour(event_time) AS h, "
        f"day_of_week(event_time) AS dow, date_add('day', 1, event_time) AS tomorrow, "
        f"date_diff('millisecond', event_time, arrival_time) >= 0 AS arrived_after, "
        f"to_unixtime(event_time) AS unix FROM {C}",
        False,
    ),
    (
        "string_functions",
        f"SELECT event_id, lower(name) AS l, upper(address__city) AS u, substr(name, 2, 3) AS s, "
        f"split_part(name, ' ', 1) AS first, length(address__street) AS len, "
        f"strpos(name, 'a') AS pos, name || '/' || coalesce(nickname, '-') AS both FROM {C}",
        False,
    ),
    (
        "arrays",
        f"SELECT event_id, cardinality(emails__ss) AS n, contains(changed_attributes, 'name') "
        f"AS renamed, element_at(changed_attributes, 1) AS first, array_join(emails__ss, ',') "
        f"AS joined FROM {C}",
        False,
    ),
    (
        "case_having",
        f"SELECT CASE WHEN is_ttl_delete THEN 'ttl' WHEN event_name = 'REMOVE' THEN 'user' "
        f"ELSE lower(event_name) END AS kind, count(DISTINCT item_key) AS items FROM {C} "
        "GROUP BY 1 HAVING count(*) > 1",
        False,
    ),
    (
        "cte_join_view",
        f"WITH last AS (SELECT item_key, max(event_time) AS t FROM {C} GROUP BY item_key) "
        "SELECT c.item_key, c.name, l.t FROM persons_current c JOIN last l "
        "ON c.item_key = l.item_key",
        False,
    ),
    (
        "try_cast_coalesce",
        f"SELECT event_id, try_cast(address__postcode AS integer) AS zip, "
        f"coalesce(nickname, name) AS called FROM {C}",
        False,
    ),
    (
        "from_unixtime",
        f"SELECT event_id, from_unixtime(to_unixtime(event_time)) = event_time AS same FROM {C}",
        False,
    ),
    (
        "count_if_bool_and",
        f"SELECT count_if(active__bool) AS active, bool_or(is_ttl_delete) AS any_ttl, "
        f"count(DISTINCT shard_id) AS shards FROM {C}",
        True,
    ),
    (
        "values_and_literals",
        "SELECT * FROM (VALUES (1, 'a', DECIMAL '1.50'), (2, 'b', DECIMAL '2.25')) AS t(i, s, d)",
        True,
    ),
]

# Constructs the local engine cannot reproduce; Trino runs them (or rejects them itself).
NOT_LOCAL: list[tuple[str, str]] = [
    ("at_time_zone", f"SELECT event_time AT TIME ZONE 'Europe/Paris' AS paris FROM {C}"),
    ("format_datetime", f"SELECT format_datetime(event_time, 'yyyy-MM-dd HH:mm') AS f FROM {C}"),
    (
        "json_extract_scalar_struct",
        "SELECT json_extract_scalar(useridentity, '$.type') AS t FROM persons_raw "
        "WHERE dt >= '{dt}'",
    ),
]


def _norm(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else value
    if isinstance(value, Decimal):
        return value.normalize()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {str(k).lower(): _norm(v) for k, v in value.items()}
    return value


def _rows(result: QueryResult, ordered: bool) -> list[Any]:
    rows = [[_norm(v) for v in row] for row in result.rows]
    return rows if ordered else sorted(rows, key=repr)


def _same(lake: Lake, sql: str, ordered: bool, params: list[str] | None = None) -> QueryResult:
    text = sql.format(dt=lake.dt, hour=lake.hour)
    on_trino: QueryResult = lake.trino.run(text, params or [])
    on_local = lake.local.run(text, params or [])
    assert on_local.columns == on_trino.columns
    assert _rows(on_local, ordered) == _rows(on_trino, ordered)
    return on_trino


@pytest.mark.parametrize(
    ("name", "sql", "ordered"), ATHENA_QUERIES, ids=[q[0] for q in ATHENA_QUERIES]
)
def test_athena_query_same_rows(lake: Lake, name: str, sql: str, ordered: bool) -> None:
    del name
    result = _same(lake, sql, ordered)
    assert result.rows, "a comparison of empty results proves nothing"


def test_at_least_25_athena_queries() -> None:
    assert len(ATHENA_QUERIES) >= 25


@pytest.mark.parametrize("name", sorted(load_all()))
def test_named_query_same_rows(lake: Lake, name: str) -> None:
    query = load(name)
    sample = lake.local.run(
        f"SELECT item_key FROM {C} WHERE contains(changed_attributes, 'name') "
        "ORDER BY item_key LIMIT 1"
    ).rows[0][0]
    # "as of" a second after the last change: every item has a version then.
    (last,) = lake.local.run(f"SELECT max(event_time) FROM {C}").rows[0]
    as_of = (last + timedelta(seconds=1)).isoformat()
    given = {"item_key": sample, "attribute": "name", "limit": "1000", "as_of": as_of}
    params = {p.name: given[p.name] for p in query.params if p.name in given}
    sql = query.sql(lake.settings.tables[0])
    result = _same(lake, sql, ordered=False, params=query.execution_parameters(params))
    assert result.rows


@pytest.mark.parametrize(
    ("table", "where"),
    [
        ("persons_changes", ""),
        ("persons_current", ""),
        ("persons_history", ""),
        ("persons_raw", " WHERE dt >= '{dt}'"),
    ],
)
def test_table_and_view_same_rows(lake: Lake, table: str, where: str) -> None:
    result = _same(lake, f"SELECT * FROM {table}{where}", ordered=False)
    assert len(result.rows) >= 100


def test_approx_distinct_within_tolerance(lake: Lake) -> None:
    sql = f"SELECT approx_distinct(item_key) AS a, count(DISTINCT item_key) AS e FROM {C}"
    (t_approx, exact), (l_approx, l_exact) = (
        lake.trino.run(sql).rows[0],
        lake.local.run(sql).rows[0],
    )
    assert exact == l_exact > 100
    # approx_distinct's standard error is 2.3%; both engines stay within 3 of them.
    assert abs(t_approx - exact) <= 0.07 * exact
    assert abs(l_approx - exact) <= 0.07 * exact


@pytest.mark.parametrize(("name", "sql"), NOT_LOCAL, ids=[q[0] for q in NOT_LOCAL])
def test_not_supported_locally_fails_clearly(lake: Lake, name: str, sql: str) -> None:
    text = sql.format(dt=lake.dt, hour=lake.hour)
    with pytest.raises(
        QueryError, match=r"not supported locally: .*\(use --engine trino or athena\)"
    ):
        lake.local.run(text)
    if name == "json_extract_scalar_struct":
        # Athena/Trino reject it too (a type error), rather than answer NULL.
        with pytest.raises(QueryError, match=r"TYPE_MISMATCH|FUNCTION_NOT_FOUND"):
            lake.trino.run(text)
    else:
        assert lake.trino.run(text).rows


def test_current_view_with_a_snapshot_same_rows_on_trino(lake: Lake) -> None:
    """Last in the module: it switches ``persons_current`` to a snapshot (ADR 0035). The
    snapshot form (UNION ALL, ORs of partition literals) gives the full history's rows on Trino
    and locally, and Trino pushes the partition predicates down to the Hive connector."""
    from changelake_catalog.snapshot import take_snapshot
    from changelake_cli.snapshot_cmd import lake_from_settings
    from changelake_lake.layout import Partition

    before = _rows(lake.trino.run("SELECT * FROM persons_current"), ordered=False)
    parts = lake.local.run("SELECT DISTINCT dt, hour FROM persons_changes ORDER BY 1, 2").rows
    cut = Partition(*map(str, parts[-1]))  # fold all but the last partition
    report = take_snapshot(lake_from_settings(), "persons", cut=cut, late_check_delay_s=0)
    assert report.items > 0 or len(parts) == 1
    after = _same(lake, "SELECT * FROM persons_current", ordered=False)
    assert _rows(after, ordered=False) == before
    # The partition predicates reach Trino's Hive connector (what it prunes on): a domain on
    # `dt` for the changes and on `snapshot_at` for the snapshot.
    (plan,) = lake.trino.run("EXPLAIN (TYPE IO, FORMAT JSON) SELECT * FROM persons_current").rows
    inputs = {
        i["table"]["schemaTable"]["table"]: {
            c["columnName"] for c in i["constraint"].get("columnConstraints", [])
        }
        for i in json.loads(plan[0])["inputTableColumnInfos"]
    }
    assert "dt" in inputs["persons_changes"]
    assert "snapshot_at" in inputs["persons_snapshot"]
