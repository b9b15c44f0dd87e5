"""Pure parts of the query package: types, parameters, pruning, projection, named-query files."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest
import sqlglot
from changelake_lake.glue_tables import columns_from_glue, raw_table_input
from changelake_lake.query import pruning, transpile
from changelake_lake.query.hive_types import json_value, to_arrow
from changelake_lake.query.model import QueryError, TableDef
from changelake_lake.query.named import load_all, parse_named, sql_literal
from changelake_lake.query.projection import projection_of
from sqlglot import exp

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("hive", "arrow"),
    [
        ("string", pa.string()),
        ("varchar(20)", pa.string()),
        ("decimal(38,9)", pa.decimal128(38, 9)),
        ("timestamp", pa.timestamp("us")),
        ("array<string>", pa.list_(pa.string())),
        ("map<string,bigint>", pa.map_(pa.string(), pa.int64())),
        (
            "struct<a:int,b:array<struct<c:double>>>",
            pa.struct([("a", pa.int32()), ("b", pa.list_(pa.struct([("c", pa.float64())])))]),
        ),
    ],
)
def test_hive_types_to_arrow_maps_glue_types(hive: str, arrow: pa.DataType) -> None:
    assert to_arrow(hive) == arrow


def test_hive_types_unknown_type_raises() -> None:
    with pytest.raises(QueryError, match="unsupported"):
        to_arrow("uniontype<int,string>")


def test_json_value_follows_openx_serde_rules() -> None:
    struct = to_arrow("struct<keys:string,n:bigint,ok:boolean>")
    got = json_value({"Keys": {"pk": {"S": "a"}}, "N": 5, "ok": "yes"}, struct)
    assert got == {"keys": '{"pk":{"S":"a"}}', "n": 5, "ok": None}
    assert json_value("12.50", to_arrow("decimal(10,2)")) == Decimal("12.50")


def test_bind_parameters_replaces_only_real_placeholders() -> None:
    sql = "SELECT '?' AS q FROM t WHERE a = ? -- ?\n AND b = ?"
    assert transpile.bind_parameters(sql, ["'x''y'", "2"]) == (
        "SELECT '?' AS q FROM t WHERE a = 'x''y' -- ?\n AND b = 2"
    )


@pytest.mark.parametrize(
    ("value", "sql_type", "literal"),
    [
        ("o'k", "string", "'o''k'"),
        ("42", "bigint", "42"),
        ("2024-05-01T10:00:00Z", "timestamp", "TIMESTAMP '2024-05-01 10:00:00'"),
        ("2024-05-01", "date", "DATE '2024-05-01'"),
        ("true", "boolean", "TRUE"),
        ("12345678901234567890123456789.5", "decimal", "12345678901234567890123456789.5"),
    ],
)
def test_sql_literal_renders_typed_literals(value: str, sql_type: str, literal: str) -> None:
    assert sql_literal(value, sql_type) == literal


def test_sql_literal_rejects_injection_into_numbers() -> None:
    with pytest.raises(QueryError, match="not a valid bigint"):
        sql_literal("1 OR 1=1", "bigint")


def test_named_query_files_declare_one_param_per_placeholder() -> None:
    for name, query in load_all().items():
        marks = transpile.bind_parameters  # the tokenizer decides what a placeholder is
        sql = query.sql("persons")
        literals = ["NULL"] * len(query.params)
        bound = marks(sql, literals)
        assert "${table}" not in sql, name
        assert query.description, name
        transpile.parse_query(bound)


def test_named_query_missing_parameter_names_it() -> None:
    query = parse_named("q", "-- param: who string\nSELECT ?")
    with pytest.raises(QueryError, match="--param who="):
        query.execution_parameters({})
    with pytest.raises(QueryError, match="no parameter"):
        query.execution_parameters({"who": "a", "what": "b"})


def _table_ref(sql: str) -> exp.Table:
    tree = sqlglot.parse_one(sql, read="athena")
    return next(tree.find_all(exp.Table))


def test_pruning_literals_in_ands_and_ors_only() -> None:
    ref = _table_ref(
        "SELECT * FROM t WHERE dt >= '2024-05-01' AND (hour = '10' OR hour = '11') AND x = 1"
        " AND (hour = '10' OR x = 2)"  # an OR with an unknown branch restricts nothing
    )
    preds = pruning.predicates_for(ref, ["dt", "hour"])
    assert preds[0] == pruning.Predicate("dt", ">=", ("2024-05-01",))
    assert len(preds) == 2
    assert preds[1].op == "or"
    assert pruning.partition_matches(["dt", "hour"], ["2024-05-01", "11"], preds)
    assert not pruning.partition_matches(["dt", "hour"], ["2024-05-01", "23"], preds)
    assert not pruning.partition_matches(["dt", "hour"], ["2024-04-30", "10"], preds)


def test_pruning_or_of_partition_ranges_as_the_snapshot_view_writes_them() -> None:
    ref = _table_ref(
        "SELECT * FROM t c WHERE c.dt > '2026-01-05' OR (c.dt = '2026-01-05' AND c.hour >= '04')"
        " OR (c.dt = '2026-01-04' AND c.hour = '01')"
    )
    preds = pruning.predicates_for(ref, ["dt", "hour"])
    keep = [
        (dt, hour)
        for dt in ("2026-01-04", "2026-01-05", "2026-01-06")
        for hour in ("00", "01", "03", "04", "23")
        if pruning.partition_matches(["dt", "hour"], [dt, hour], preds)
    ]
    assert keep == [
        ("2026-01-04", "01"),
        ("2026-01-05", "04"),
        ("2026-01-05", "23"),
        *[("2026-01-06", h) for h in ("00", "01", "03", "04", "23")],
    ]


def test_pruning_event_time_bounds_partition_span() -> None:
    ref = _table_ref("SELECT * FROM t WHERE TIMESTAMP '2024-05-01 10:30:00' < event_time")
    preds = pruning.predicates_for(ref, ["dt", "hour", "event_time"])
    assert pruning.partition_matches(["dt", "hour"], ["2024-05-01", "10"], preds)
    assert not pruning.partition_matches(["dt", "hour"], ["2024-05-01", "09"], preds)


def test_pruning_ignores_other_tables_in_a_join() -> None:
    ref = _table_ref("SELECT * FROM t JOIN u ON t.k = u.k WHERE u.dt = 'x' AND dt = 'y'")
    assert pruning.predicates_for(ref, ["dt"]) == []


def test_projection_matches_template_within_domain() -> None:
    # The raw table exactly as the catalog defines it (projection from 2020-01-01 to NOW).
    table_input = raw_table_input("persons", "lake")
    table = TableDef(
        database="db",
        name=table_input["Name"],
        table_type=table_input["TableType"],
        columns=columns_from_glue(table_input["StorageDescriptor"]["Columns"]),
        partition_keys=columns_from_glue(table_input["PartitionKeys"]),
        parameters=table_input["Parameters"],
    )
    proj = projection_of(table)
    assert proj.list_prefix == "s3://lake/raw/persons/dt="
    assert proj.match("s3://lake/raw/persons/dt=2024-05-01/hour=07/f.json") == ("2024-05-01", "07")
    assert proj.match("s3://lake/raw/persons/dt=2020-01-01/hour=00/f.json") == ("2020-01-01", "00")
    assert proj.match("s3://lake/raw/persons/dt=2024-05-01/hour=7/f.json") is None
    assert proj.match("s3://lake/raw/persons/dt=2024-05-01/hour=24/f.json") is None
    assert proj.match("s3://lake/raw/persons/dt=2019-12-31/hour=07/f.json") is None
    assert proj.match("s3://lake/raw/persons/other/f.json") is None


def test_render_json_keeps_decimals_exact_and_timestamps_iso() -> None:
    from datetime import UTC, datetime

    from changelake_cli.render import to_csv, to_json
    from changelake_lake.query.model import QueryResult

    result = QueryResult(
        columns=["n", "at", "tags", "missing"],
        types=["DECIMAL(38,9)", "TIMESTAMP", "VARCHAR[]", "VARCHAR"],
        rows=[
            (
                Decimal("12345678901234567890123456789.123456789"),
                datetime(2024, 5, 1, 10, 0, 0, 1, tzinfo=UTC),
                ["a", "b"],
                None,
            )
        ],
        engine="local",
    )
    assert to_json(result) == (
        '[{"n":"12345678901234567890123456789.123456789",'
        '"at":"2024-05-01T10:00:00.000001+00:00","tags":["a","b"],"missing":null}]'
    )
    assert to_csv(result).splitlines() == [
        "n,at,tags,missing",
        '12345678901234567890123456789.123456789,2024-05-01 10:00:00.000001,"[""a"",""b""]",',
    ]


def test_render_shows_a_negative_zero_number_as_zero_not_scientific() -> None:
    # issue 18, finding 8: N "-0" is stored as decimal(38,9) 0, read back as Decimal("0E-9")
    import pyarrow as pa
    import pyarrow.compute as pc
    from changelake_cli.render import cell_text, plain, to_json
    from changelake_lake.query.model import QueryResult

    (zero,) = pc.cast(pa.array(["-0"]), pa.decimal128(38, 9)).to_pylist()
    assert str(zero) == "0E-9"  # what the lake holds
    assert plain(zero) == "0.000000000"
    assert cell_text(zero) == "0.000000000"
    assert plain(Decimal("-1E-9")) == "-0.000000001"
    result = QueryResult(columns=["n"], types=["DECIMAL(38,9)"], rows=[(zero,)], engine="local")
    assert to_json(result) == '[{"n":"0.000000000"}]'
