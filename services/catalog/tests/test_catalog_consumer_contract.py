"""Contract with the consumer: its real Parquet output → catalog columns → the view on DuckDB."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import sqlglot
from changelake.events import Position
from changelake_catalog.footer import read_parquet_schema
from changelake_consumer.parquet import records_to_parquet
from changelake_lake import glue_schema
from changelake_lake.glue_schema import columns_of
from changelake_lake.glue_tables import columns_from_glue, glue_columns
from changelake_lake.layout import change_object_key, partition_for_us
from changelake_lake.views import current_view_sql
from changelake_testsupport.fakes import InMemoryObjectStore
from changelake_testsupport.records import encode, kinesis_dynamodb_record

pytestmark = pytest.mark.unit

T0_US = 1_714_557_600_000_000  # 2024-05-01T10:00:00Z


def _records() -> list[tuple[bytes, Position]]:
    full = {
        "pk": "a",
        "name": "Ada",
        "age": Decimal(36),
        "huge": Decimal("1" * 38),
        "active": True,
        "photo": b"\x00\x01",
        "tags": {"x", "y"},
        "scores": {Decimal(1), Decimal(2)},
        "history": ["a", Decimal(1)],
        "address": {"city": "Paris", "zip": Decimal(75001)},
        "UPPER": "LOW",
        "a.b": "dot",
    }
    specs = [
        ("INSERT", {"pk": "a"}, full, None, 0),
        ("MODIFY", {"pk": "a"}, {**full, "name": "Ada L"}, full, 1_000),
        ("INSERT", {"pk": "b"}, {"pk": "b", "name": "Bob"}, None, 2_000),
        ("REMOVE", {"pk": "b"}, None, {"pk": "b", "name": "Bob"}, 3_000),
    ]
    out = []
    for i, (name, keys, new, old, offset_ms) in enumerate(specs):
        record = kinesis_dynamodb_record(
            event_name=name,
            keys=keys,
            new_image=new,
            old_image=old,
            event_time_us=T0_US + offset_ms * 1000,
            event_id=f"00000000-0000-0000-0000-00000000000{i}",
        )
        out.append((encode(record), Position("shardId-000000000000", f"4960000000000000000{i}")))
    return out


def test_columns_of_consumer_output_match_the_consumer_type_policy() -> None:
    data = records_to_parquet(_records(), "persons")
    store = InMemoryObjectStore()
    store.objects["k.parquet"] = data

    footer_schema = read_parquet_schema(store, "k.parquet")
    columns = {c.name: c.type for c in columns_of(footer_schema)}

    expected = {f.name: glue_schema.glue_type(f.type) for f in pq.read_schema(io.BytesIO(data))}
    assert columns == expected
    assert columns["age__n"] == "decimal(38,9)"
    assert columns["tags__ss"] == "array<string>"
    assert columns["address__city"] == "string"
    assert columns["event_time"] == "timestamp"


def test_glue_columns_name_the_attribute_path_of_each_column() -> None:
    # issue 18, finding 5: a disambiguated column is findable from Glue by its attribute
    store = InMemoryObjectStore()
    store.objects["k.parquet"] = records_to_parquet(_records(), "persons")
    columns = columns_of(read_parquet_schema(store, "k.parquet"))
    glue = {c["Name"]: c for c in glue_columns(columns)}
    upper = glue["upper__h9d5175e0"]
    assert upper["Comment"] == 'DynamoDB attribute ["UPPER"]'
    assert upper["Parameters"] == {"changelake.attribute_path": '["UPPER"]'}
    assert glue["a_b__h68a4364b"]["Parameters"] == {"changelake.attribute_path": '["a.b"]'}
    assert glue["address__zip__n"]["Comment"] == 'DynamoDB attribute ["address", "zip"]'
    assert "Comment" not in glue["event_id"]
    # and it survives the round trip through Glue
    assert [c.attribute_path for c in columns_from_glue(list(glue.values()))] == [
        c.attribute_path for c in columns
    ]


def test_current_view_sql_runs_on_consumer_output_with_duckdb(tmp_path: Path) -> None:
    data = records_to_parquet(_records(), "persons")
    key = change_object_key("persons", partition_for_us(T0_US), "shardId-000000000000", "1", "4")
    target = tmp_path / key
    target.parent.mkdir(parents=True)
    target.write_bytes(data)
    store = InMemoryObjectStore()
    store.objects[key] = data
    names = [c.name for c in columns_of(read_parquet_schema(store, key))]

    sql = sqlglot.transpile(
        current_view_sql("persons", names, "changelake"), read="athena", write="duckdb"
    )[0]
    con = duckdb.connect()
    try:
        con.execute("CREATE SCHEMA changelake")
        con.execute(
            "CREATE VIEW changelake.persons_changes AS SELECT * FROM read_parquet("
            f"'{tmp_path}/changes/persons/*/*/*.parquet', hive_partitioning = true)"
        )
        rows = con.execute(sql).fetchall()
        header = [d[0] for d in con.description or []]
    finally:
        con.close()

    assert len(rows) == 1
    row = dict(zip(header, rows[0], strict=True))
    assert (row["pk"], row["name"], row["event_name"]) == ("a", "Ada L", "MODIFY")
    assert row["age__n"] == Decimal("36.000000000")
