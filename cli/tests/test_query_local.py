"""The local engine over a lake the product wrote (tests/changelake_product_lake.py) in moto."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from changelake_lake.query.local_engine import LocalEngine
from changelake_lake.query.model import QueryError
from changelake_product_lake import SHARD, moment, seq

pytestmark = pytest.mark.aws


def test_local_engine_current_view_equals_hand_computed_state(engine: LocalEngine) -> None:
    # p2 deleted by the user, p3 by TTL, p5 only in an unregistered partition; p4's two events
    # share one µs timestamp and the sequence number decides; e03 is stored twice.
    result = engine.run(
        "SELECT pk, name, email, age__n, address__city FROM persons_current ORDER BY pk"
    )
    assert result.rows == [
        ("p1", "Anna", "anna@x", Decimal("30.000000000"), "Oslo"),
        ("p4", "Dee", "dee@d", Decimal("51.000000000"), None),
    ]
    assert result.types[3] == "DECIMAL(38,9)"


def test_local_engine_view_runs_the_sql_stored_in_glue(engine: LocalEngine) -> None:
    result = engine.run("SELECT count(*) AS n FROM changelake.persons_current")
    assert result.rows == [(2,)]
    assert "__cl_" in engine.last_sql
    assert "ROW_NUMBER()" in engine.last_sql.upper()


def test_local_engine_unregistered_partition_is_invisible(engine: LocalEngine) -> None:
    result = engine.run("SELECT DISTINCT hour FROM persons_changes ORDER BY hour")
    assert result.rows == [("10",), ("11",), ("12",)]
    assert result.stats.partitions == 3


def test_local_engine_dt_hour_predicate_reads_only_matching_partitions(engine: LocalEngine) -> None:
    result = engine.run(
        "SELECT event_id FROM persons_changes WHERE dt = '2024-05-01' AND hour IN ('11') "
        "ORDER BY event_id"
    )
    assert result.rows == [("e04",), ("e05",), ("e06",)]
    assert (result.stats.partitions, result.stats.partitions_pruned, result.stats.files) == (
        1,
        2,
        1,
    )


def test_local_engine_event_time_predicate_prunes_partitions(engine: LocalEngine) -> None:
    result = engine.run(
        "SELECT event_id FROM persons_changes "
        "WHERE event_time BETWEEN TIMESTAMP '2024-05-01 10:20:00' "
        "AND TIMESTAMP '2024-05-01 10:59:59' "
        "ORDER BY event_id"
    )
    assert result.rows == [("e03",), ("e03",)]
    assert result.stats.partitions == 1


def test_local_engine_or_predicate_does_not_prune(engine: LocalEngine) -> None:
    result = engine.run(
        "SELECT count(DISTINCT event_id) FROM persons_changes WHERE hour = '10' OR pk = 'p4'"
    )
    assert result.rows == [(5,)]
    assert result.stats.partitions == 3


def test_local_engine_raw_table_honours_partition_projection(engine: LocalEngine) -> None:
    # Raw is projected (from 2020-01-01): hour 13 is read although never registered;
    # dt=2019-12-31 is outside the projection range and the non-Hive path outside the
    # template: both are ignored. Firehose stored e03 twice, as the stream delivered it.
    result = engine.run(
        "SELECT eventid, useridentity.type AS who, dynamodb.approximatecreationdatetime AS t, hour "
        "FROM persons_raw ORDER BY eventid"
    )
    ids = [r[0] for r in result.rows]
    assert ids == ["e01", "e02", "e03", "e03"] + [f"e{i:02d}" for i in range(4, 12)]
    assert result.rows[7] == ("e07", "Service", 1714564800000000, "12")  # µs precision
    assert {r[1] for r in result.rows if r[0] != "e07"} == {None}
    pruned = engine.run("SELECT count(*) FROM persons_raw WHERE hour >= '12'")
    assert pruned.rows == [(5,)]
    assert (pruned.stats.partitions, pruned.stats.partitions_pruned) == (2, 2)


def test_local_engine_raw_nested_object_declared_string_reads_json_text(
    engine: LocalEngine,
) -> None:
    result = engine.run("SELECT dynamodb.keys FROM persons_raw WHERE eventid = 'e01'")
    assert result.rows == [('{"pk":{"S":"p1"}}',)]


def test_local_engine_column_missing_from_old_files_reads_null(engine: LocalEngine) -> None:
    # address.city first appears in e08: the hour-10 objects have no address__city column.
    result = engine.run(
        "SELECT event_id, address__city FROM persons_changes WHERE pk = 'p1' ORDER BY event_id"
    )
    assert result.rows == [("e01", None), ("e03", None), ("e03", None), ("e08", "Oslo")]


def test_local_engine_path_column_names_the_object(engine: LocalEngine) -> None:
    result = engine.run(
        "SELECT DISTINCT \"$path\" FROM persons_changes WHERE event_id = 'e03' ORDER BY 1"
    )
    # The consumer names an object after its shard and the sequence range it holds.
    hour_10 = "s3://product-lake/changes/persons/dt=2024-05-01/hour=10"
    assert result.rows == [
        (f"{hour_10}/{SHARD}-{seq(3)}-{seq(3)}.parquet",),
        (f"{hour_10}/{SHARD}-{seq(7)}-{seq(7)}.parquet",),
    ]


def test_local_engine_timestamps_are_utc_milliseconds_as_athena_reads_them(
    engine: LocalEngine,
) -> None:
    # The Parquet value is 12:40:00.500001; Athena (Trino) reads a Hive timestamp rounded to
    # the millisecond, and so does the local engine (tests/trino compares it with Trino).
    result = engine.run("SELECT event_time FROM persons_changes WHERE event_id = 'e09'")
    assert result.rows == [(moment("12:40:00.500"),)]
    assert isinstance(result.rows[0][0], datetime)


def test_local_engine_parameters_bind_as_sql_literals(engine: LocalEngine) -> None:
    result = engine.run(
        "SELECT event_id FROM persons_changes WHERE pk = ? AND event_name = ? ORDER BY 1",
        ["'p3'", "'MODIFY'"],
    )
    assert result.rows == [("e06",)]


def test_local_engine_unnamed_columns_get_athena_names(engine: LocalEngine) -> None:
    result = engine.run(
        "SELECT count(*), max(age__n) AS oldest, pk FROM persons_changes GROUP BY pk"
    )
    assert result.columns == ["_col0", "oldest", "pk"]


def test_local_engine_cte_names_are_not_catalog_tables(engine: LocalEngine) -> None:
    result = engine.run("WITH persons_changes AS (SELECT 1 AS x) SELECT x FROM persons_changes")
    assert result.rows == [(1,)]


def test_local_engine_unknown_table_raises_athena_error(engine: LocalEngine) -> None:
    with pytest.raises(QueryError, match="TABLE_NOT_FOUND"):
        engine.run("SELECT * FROM nope")


def test_local_engine_ddl_is_refused(engine: LocalEngine) -> None:
    with pytest.raises(QueryError, match="only queries"):
        engine.run("DROP TABLE persons_changes")


def test_local_engine_wrong_parameter_count_raises(engine: LocalEngine) -> None:
    with pytest.raises(QueryError, match="1 parameter"):
        engine.run("SELECT * FROM persons_changes WHERE pk = ?")
