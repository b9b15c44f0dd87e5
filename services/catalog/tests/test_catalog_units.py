"""Pure units of the catalog: type mapping, column merge, footer reads, notifications, inputs."""

from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from changelake_catalog.exceptions import InvalidNotificationError, InvalidParquetError
from changelake_catalog.footer import read_parquet_schema
from changelake_catalog.notifications import ObjectRef, parse_notification
from changelake_lake.athena_view import decode_presto_view
from changelake_lake.columns import Column, merge_columns
from changelake_lake.glue_schema import columns_of, glue_type, presto_type
from changelake_lake.glue_tables import (
    partition_input,
    raw_table_input,
    view_table_input,
)
from changelake_lake.layout import Partition
from changelake_testsupport.fakes import InMemoryObjectStore

pytestmark = pytest.mark.unit


class CountingStore(InMemoryObjectStore):
    """Records every ranged GET."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: list[tuple[str, tuple[int, int] | None]] = []

    def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """Record and read."""
        self.gets.append((key, byte_range))
        return super().get(key, byte_range)


@pytest.mark.parametrize(
    ("arrow", "glue", "presto"),
    [
        (pa.string(), "string", "varchar"),
        (pa.large_string(), "string", "varchar"),
        (pa.bool_(), "boolean", "boolean"),
        (pa.int32(), "int", "integer"),
        (pa.int64(), "bigint", "bigint"),
        (pa.uint64(), "decimal(20,0)", "decimal(20,0)"),
        (pa.float32(), "float", "real"),
        (pa.float64(), "double", "double"),
        (pa.decimal128(38, 9), "decimal(38,9)", "decimal(38,9)"),
        (pa.binary(), "binary", "varbinary"),
        (pa.timestamp("us", tz="UTC"), "timestamp", "timestamp"),
        (pa.timestamp("ms"), "timestamp", "timestamp"),
        (pa.date32(), "date", "date"),
        (pa.list_(pa.string()), "array<string>", "array(varchar)"),
        (pa.dictionary(pa.int32(), pa.string()), "string", "varchar"),
        (
            pa.struct([("a", pa.int64()), ("b", pa.list_(pa.decimal128(10, 2)))]),
            "struct<a:bigint,b:array<decimal(10,2)>>",
            "row(a bigint, b array(decimal(10,2)))",
        ),
        (
            pa.map_(pa.string(), pa.decimal128(38, 0)),
            "map<string,decimal(38,0)>",
            "map(varchar, decimal(38,0))",
        ),
    ],
)
def test_glue_type_maps_arrow_to_glue_and_presto_when_supported(
    arrow: pa.DataType, glue: str, presto: str
) -> None:
    assert glue_type(arrow) == glue
    assert presto_type(glue) == presto


@pytest.mark.parametrize("arrow", [pa.null(), pa.duration("s"), pa.list_(pa.null())])
def test_glue_type_returns_none_when_type_has_no_glue_equivalent(arrow: pa.DataType) -> None:
    assert glue_type(arrow) is None


def test_columns_of_skips_partition_keys_and_null_columns() -> None:
    schema = pa.schema([("a", pa.string()), ("dt", pa.string()), ("n", pa.null())])
    assert columns_of(schema) == (Column("a", "string"),)


def test_merge_columns_appends_new_keeps_order_and_reports_conflicts() -> None:
    existing = [Column("a", "string"), Column("b", "bigint")]
    result = merge_columns(
        existing, [Column("B", "string"), Column("c", "boolean"), Column("a", "string")]
    )
    assert result.columns == (Column("a", "string"), Column("b", "bigint"), Column("c", "boolean"))
    assert result.added == (Column("c", "boolean"),)
    assert result.conflicts == ((Column("b", "bigint"), Column("B", "string")),)


def test_merge_columns_adds_nothing_when_incoming_is_known() -> None:
    result = merge_columns([Column("a", "string")], [Column("A", "string")])
    assert result.added == ()
    assert result.columns == (Column("a", "string"),)


def _parquet(columns: int) -> bytes:
    table = pa.table({f"attribute_{i}": pa.array(["x"] * 3) for i in range(columns)})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def test_read_parquet_schema_reads_only_the_tail_when_footer_fits() -> None:
    store = CountingStore()
    data = _parquet(3)
    store.objects["k.parquet"] = data
    schema = read_parquet_schema(store, "k.parquet", len(data), tail_bytes=65536)
    assert schema.names == ["attribute_0", "attribute_1", "attribute_2"]
    assert store.gets == [("k.parquet", (0, len(data) - 1))]


def test_read_parquet_schema_fetches_exact_footer_when_tail_too_small() -> None:
    store = CountingStore()
    data = _parquet(200)
    store.objects["k.parquet"] = data
    schema = read_parquet_schema(store, "k.parquet", None, tail_bytes=1024)
    assert len(schema.names) == 200
    assert len(store.gets) == 2
    assert store.gets[0][1] == (len(data) - 1024, len(data) - 1)
    first, last = store.gets[1][1] or (0, 0)
    assert last == len(data) - 1
    assert 1024 < last - first + 1 < len(data)


def test_read_parquet_schema_retries_with_head_when_event_size_is_stale() -> None:
    store = CountingStore()
    data = _parquet(2)
    store.objects["k.parquet"] = data
    schema = read_parquet_schema(store, "k.parquet", len(data) - 7)
    assert schema.names == ["attribute_0", "attribute_1"]


@pytest.mark.parametrize(
    "data", [b"", b"PAR1", b"not parquet at all, really", b"x" * 100 + b"PAR1"]
)
def test_read_parquet_schema_raises_invalid_when_bytes_are_not_parquet(data: bytes) -> None:
    store = InMemoryObjectStore()
    store.objects["bad.parquet"] = data
    with pytest.raises(InvalidParquetError):
        read_parquet_schema(store, "bad.parquet")


def test_read_parquet_schema_raises_keyerror_when_object_missing() -> None:
    with pytest.raises(KeyError):
        read_parquet_schema(InMemoryObjectStore(), "gone.parquet")


def _event(key: str, bucket: str = "lake", name: str = "ObjectCreated:Put") -> str:
    record: dict[str, Any] = {
        "eventSource": "aws:s3",
        "eventName": name,
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 42}},
    }
    return json.dumps({"Records": [record]})


def test_parse_notification_decodes_url_encoded_change_key() -> None:
    refs = parse_notification(
        _event("changes%2Fpersons%2Fdt%3D2024-05-01%2Fhour%3D10%2Fshard+1-1-2.parquet"), "lake"
    )
    assert refs == [
        ObjectRef(
            "persons",
            Partition("2024-05-01", "10"),
            "changes/persons/dt=2024-05-01/hour=10/shard 1-1-2.parquet",
            42,
        )
    ]


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "lake"}),
        _event("raw/persons/dt=2024-05-01/hour=10/x.json"),
        _event("changes/persons/dt=2024-05-01/hour=10/x.parquet", bucket="other"),
        _event("changes/persons/dt=2024-05-01/hour=10/x.parquet", name="ObjectRemoved:Delete"),
        _event("changes/persons/readme.txt"),
    ],
)
def test_parse_notification_ignores_when_not_a_new_change_object(body: str) -> None:
    assert parse_notification(body, "lake") == []


@pytest.mark.parametrize(
    "body", ["not json", "[1]", json.dumps({"hello": 1}), json.dumps({"Records": [{"x": 1}]})]
)
def test_parse_notification_raises_when_body_is_not_an_s3_event(body: str) -> None:
    with pytest.raises(InvalidNotificationError):
        parse_notification(body, "lake")


def test_partition_input_carries_exact_columns_and_hive_location() -> None:
    columns = [Column("a", "string"), Column("b", "bigint")]
    doc = partition_input("persons", "lake", Partition("2024-05-01", "07"), columns)
    assert doc["Values"] == ["2024-05-01", "07"]
    assert (
        doc["StorageDescriptor"]["Location"] == "s3://lake/changes/persons/dt=2024-05-01/hour=07/"
    )
    assert doc["StorageDescriptor"]["Columns"] == [
        {"Name": "a", "Type": "string"},
        {"Name": "b", "Type": "bigint"},
    ]


def test_raw_table_input_projects_dt_and_hour_with_location_template() -> None:
    doc = raw_table_input("persons", "lake")
    params = doc["Parameters"]
    assert doc["Name"] == "persons_raw"
    assert params["projection.enabled"] == "true"
    assert (params["projection.dt.type"], params["projection.dt.format"]) == ("date", "yyyy-MM-dd")
    assert (params["projection.hour.type"], params["projection.hour.range"]) == ("integer", "0,23")
    assert params["projection.hour.digits"] == "2"
    assert params["storage.location.template"] == "s3://lake/raw/persons/dt=${dt}/hour=${hour}/"
    assert [k["Name"] for k in doc["PartitionKeys"]] == ["dt", "hour"]


def test_view_table_input_is_an_athena_presto_view() -> None:
    columns = [Column("event_id", "string"), Column("tags", "array<string>")]
    doc = view_table_input("persons", columns, "changelake")
    assert doc["TableType"] == "VIRTUAL_VIEW"
    assert doc["ViewExpandedText"] == "/* Presto View */"
    view = decode_presto_view(doc["ViewOriginalText"])
    assert view.columns == (("event_id", "varchar"), ("tags", "array(varchar)"))
    assert '"changelake"."persons_changes"' in view.sql
    # Trino (Athena's engine) takes a table for a view only when its "comment" parameter is
    # "Presto View", and copies a Glue Description over that parameter: no Description.
    assert doc["Parameters"]["presto_view"] == "true"
    assert doc["Parameters"]["comment"] == "Presto View"
    assert "Description" not in doc
    assert view.comment == "Latest live image of each item of DynamoDB table persons (changelake)"
    assert doc["StorageDescriptor"]["Columns"] == [
        {"Name": "event_id", "Type": "string"},
        {"Name": "tags", "Type": "array<string>"},
    ]
