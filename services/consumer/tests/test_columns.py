"""Columns of the change table: exact images, one physical type per column, drift kept."""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from changelake import ddb_json
from changelake.events import ChangeEvent, Position, decode_record
from changelake_consumer.parquet import records_to_parquet
from changelake_consumer.rows import prepare_event
from changelake_lake import glue_schema, schema
from changelake_lake.column_policy import ChangeColumns, image_json, number_fits
from changelake_testsupport import golden
from changelake_testsupport.person_changes import change, event_id_of, person

pytestmark = pytest.mark.unit


def _table(records: list[tuple[bytes, Position]]) -> pa.Table:
    return pq.read_table(io.BytesIO(records_to_parquet(records, "persons")))


def _event(raw: bytes, pos: Position) -> ChangeEvent:
    event = decode_record(raw, pos)
    assert isinstance(event, ChangeEvent)
    return event


@pytest.mark.parametrize("fixture", golden.load_valid(), ids=lambda f: f.name)
def test_image_json_equals_codec_rendering_on_valid_fixture(fixture: golden.ValidFixture) -> None:
    event = _event(fixture.raw, fixture.position)
    assert image_json(event.new_image) == ddb_json.image_to_json(event.new_image)
    assert image_json(event.old_image) == ddb_json.image_to_json(event.old_image)
    if "new_image_json" in fixture.expected:
        assert image_json(event.new_image) == fixture.expected["new_image_json"]


def test_columns_all_types_fixture_types_and_values() -> None:
    fixture = golden.load_valid_by_name("all_types")
    table = _table([(fixture.raw, fixture.position)])
    row = table.to_pylist()[0]
    types = {f.name: f.type for f in table.schema}
    assert row["name"] == "Zoë Ünïcødé 🚀 名前"
    assert types["name"] == pa.string()
    assert row["empty"] == ""
    assert row["age__n"] == Decimal("42")
    assert types["age__n"] == schema.NUMBER_TYPE
    assert row["balance__n"] == Decimal("-1234.5678")
    assert row["photo__b"] == bytes.fromhex("89504e470d0a1a0a")
    assert types["photo__b"] == pa.binary()
    assert row["empty_bin__b"] == b""
    assert row["active__bool"] is True
    assert row["deleted__bool"] is False
    assert not any(name.startswith("nickname") for name in types)  # NULL: no column
    assert row["address__street"] == "1 Main St"
    assert row["address__geo__lat__n"] == Decimal("52.520008")
    assert row["address__tags__ss"] == ["billing", "home"]
    assert row["colors__ss"] == ["Green", "blue", "red", "émeraude"]
    assert row["scores__ns"] == ["-3", "9.5", "10", "100"]
    assert row["blobs__bs"] == ["AAE=", "AQ==", "/w=="]
    assert row["history__l"] == ('[1,"two",[true,null],{"k":[-2,3.5,10]},["AA==","AQI="]]')
    assert row["empty_list__l"] == "[]"
    assert row[schema.column_name(("emoji_key_😀",), "S")] == "value"
    assert schema.column_name(("emoji_key_😀",), "S").startswith("emoji_key_u1f600__h")
    assert row["event_id"] == fixture.event_id
    assert row["new_image"] == fixture.expected["new_image_json"]
    assert row["old_image"] is None
    assert row["changed_attributes"] == list(fixture.changed_attributes)
    assert row["sequence_number"] == fixture.position.sequence_number


def test_columns_38_digit_numbers_exact_in_decimal_or_text() -> None:
    fixture = golden.load_valid_by_name("numbers_38_digits")
    table = _table([(fixture.raw, fixture.position)])
    row = table.to_pylist()[0]
    event = _event(fixture.raw, fixture.position)
    for name, value in event.new_image.items():  # type: ignore[union-attr]
        if not isinstance(value, Decimal):
            continue
        column = schema.base_name((name,))
        if number_fits(value):
            assert row[column + "__n"] == value, name
            assert row.get(column + "__n_text") is None
        else:
            assert Decimal(row[column + "__n_text"]) == value, name
            assert row.get(column + "__n") is None


def test_columns_type_drift_goes_to_type_named_column_and_keeps_both() -> None:
    # GIVEN age as N in one change and as S in the next (type drift)
    records = [
        change(1, item=person(1, age=Decimal(41))),
        change(2, item=person(2, age="forty-two")),
    ]
    table = _table(records)
    rows = table.to_pylist()
    # THEN each value sits in the column of its own type, the other is null
    assert [r["age__n"] for r in rows] == [Decimal(41), None]
    assert [r["age"] for r in rows] == [None, "forty-two"]
    assert table.schema.field("age__n").type == schema.NUMBER_TYPE
    assert table.schema.field("age").type == pa.string()


def test_columns_type_is_function_of_tag_only_whatever_order() -> None:
    a = change(1, item=person(1, v=Decimal("1.5")))
    b = change(2, item=person(2, v="x"))
    first = _table([a, b]).schema
    second = _table([b, a]).schema
    only_a = _table([a]).schema
    assert first.field("v__n").type == second.field("v__n").type == only_a.field("v__n").type
    assert first.field("v").type == second.field("v").type == pa.string()


def test_columns_number_too_large_goes_to_text_column_and_is_counted() -> None:
    big = Decimal("1" + "0" * 30)
    tiny = Decimal("1E-12")
    cols = ChangeColumns()
    raw, pos = change(1, item=person(1, big=big, tiny=tiny, ok=Decimal("123.456789012")))
    cols.add(prepare_event(_event(raw, pos)))
    row = cols.to_table().to_pylist()[0]
    assert row["big__n_text"] == str(big)
    assert "big__n" not in row
    assert row["tiny__n_text"] == "1E-12"
    assert row["ok__n"] == Decimal("123.456789012")
    assert cols.number_text_values == 2


def test_columns_reserved_and_unsafe_names_are_renamed() -> None:
    item = person(1, event_id="mine", dt="x", **{"First Name": "Ada", "a__b": "c", "_x_": "y"})
    row = _table([change(1, item=item)]).to_pylist()[0]
    assert row["attr__event_id"] == "mine"
    assert row["event_id"] == event_id_of(1)
    assert row["attr__dt"] == "x"
    assert row[f"first_name__{schema.disambiguator(('First Name',))}"] == "Ada"
    assert row[f"a_b__{schema.disambiguator(('a__b',))}"] == "c"
    assert row[f"x__{schema.disambiguator(('_x_',))}"] == "y"


def test_columns_every_attribute_path_has_its_own_typed_column() -> None:
    # issue 18, finding 5: a.b, a_b and a: {b} all mapped to a_b; UPPER and upper to upper
    item = person(
        1,
        **{"a.b": "dot", "a_b": "underscore", "a": {"b": "nested"}, "UPPER": "LOW", "upper": "low"},
    )
    cols = ChangeColumns()
    raw, pos = change(1, item=item)
    cols.add(prepare_event(_event(raw, pos)))
    table = cols.to_table()
    row = table.to_pylist()[0]
    values = {
        ("a.b",): "dot",
        ("a_b",): "underscore",
        ("a", "b"): "nested",
        ("UPPER",): "LOW",
        ("upper",): "low",
    }
    for path, value in values.items():
        column = schema.column_name(path, "S")
        assert row[column] == value, path
        # the Parquet field names its attribute path (the catalog copies it to Glue)
        field = table.schema.field(column)
        assert orjson.loads(field.metadata[schema.PATH_METADATA]) == list(path)
    assert len({schema.column_name(p, "S") for p in values}) == len(values)
    assert row["upper"] == "low"
    assert row["a_b"] == "underscore"
    assert cols.collisions == 0


@pytest.mark.parametrize(
    ("path", "column"),
    [
        (("name",), "name"),
        (("first_name",), "first_name"),
        (("address", "city"), "address__city"),
        (("ünïcödé",), "unicode__hb4e4ac89"),
        (("名前",), "u540d_u524d__he255a4ea"),
        (("a\x00b",), "a_u0_b__h8fad204a"),
        (("event_id",), "attr__event_id"),
        (("address", "n"), "address__n__h9fbdb7f7"),
    ],
)
def test_column_names_are_stable_and_keep_meaning(path: tuple[str, ...], column: str) -> None:
    # pinned literals: a column name never changes once data is written under it
    assert schema.column_name(path, "S") == column
    assert schema.column_name(path, "N") == column + "__n"


def test_columns_deep_maps_kept_as_json() -> None:
    deep: dict[str, Any] = {"l1": {"l2": {"l3": {"l4": "deep"}}}}
    row = _table([change(1, item=person(1, m=deep))]).to_pylist()[0]
    assert row["m__l1__l2__l3__m"] == '{"l4":"deep"}'


def test_columns_remove_rows_use_old_image() -> None:
    table = _table([change(3, event_name="REMOVE")])
    row = table.to_pylist()[0]
    assert row["event_name"] == "REMOVE"
    assert row["new_image"] is None
    assert row["name"] == "Person 3"
    assert '"name":"Person 3"' in row["old_image"]


def test_arrow_type_for_column_decided_by_name() -> None:
    assert schema.arrow_type_for_column("x__n") == schema.NUMBER_TYPE
    assert schema.arrow_type_for_column("x__n_text") == pa.string()
    assert schema.arrow_type_for_column("x__ss") == pa.list_(pa.string())
    assert schema.arrow_type_for_column("attr__event_id") == pa.string()
    assert schema.arrow_type_for_column("attr__dt__bool") == pa.bool_()
    assert schema.arrow_type_for_column("event_time") == schema.TIMESTAMP
    assert glue_schema.glue_type(schema.NUMBER_TYPE) == "decimal(38,9)"
    assert glue_schema.glue_type(pa.list_(pa.string())) == "array<string>"
