"""decode_record against the golden fixtures: every valid one exact, every malformed one a value."""

from __future__ import annotations

import math
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from changelake import ddb_json
from changelake.events import (
    ChangeEvent,
    DecodeFailure,
    EventName,
    Position,
    changed_attributes,
    decode_record,
    item_key,
)
from changelake_lake import layout
from changelake_testsupport import golden
from changelake_testsupport.records import encode, kinesis_dynamodb_record

pytestmark = pytest.mark.unit

VALID = golden.load_valid()
MALFORMED = golden.load_malformed()


def _walk(value: Any) -> list[Any]:
    """Every leaf of a decoded value."""
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _walk(v)]
    if isinstance(value, list | set | frozenset):
        return [leaf for v in value for leaf in _walk(v)]
    return [value]


def test_golden_manifest_covers_the_required_cases() -> None:
    names = {f.name for f in VALID}
    bad = {f.name for f in MALFORMED}

    assert {"insert_ms", "modify_ms", "remove_ms", "ttl_delete", "all_types"} <= names
    assert {"numbers_38_digits", "time_us_precision", "end_of_day_us"} <= names
    assert {"truncated", "invalid_utf8", "bad_base64", "unknown_type_key", "two_type_keys"} <= bad
    assert {"null_false", "n_dots", "n_nan", "n_infinity", "n_39_digits"} <= bad
    assert {"missing_event_id", "insert_with_old_image", "wrong_event_name"} <= bad


def test_golden_files_are_current_with_their_generator() -> None:
    generator = golden.fixtures_dir() / "generate.py"

    result = subprocess.run(
        [sys.executable, str(generator), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr


def test_golden_invalid_utf8_fixture_really_is_not_utf8() -> None:
    fixture = next(f for f in MALFORMED if f.name == "invalid_utf8")

    with pytest.raises(UnicodeDecodeError):
        fixture.raw.decode("utf-8")


@pytest.mark.parametrize("fixture", VALID, ids=lambda f: f.name)
def test_decode_record_yields_expected_event_for_valid_golden(
    fixture: golden.ValidFixture,
) -> None:
    event = decode_record(fixture.raw, fixture.position)

    assert isinstance(event, ChangeEvent), getattr(event, "reason", "")
    assert event.event_id == fixture.event_id
    assert event.table == fixture.table
    assert event.event_name == EventName(fixture.event_name)
    assert event.event_time_us == fixture.event_time_us
    assert event.item_key == fixture.item_key
    assert event.is_ttl_delete is fixture.is_ttl_delete
    assert event.changed_attributes == fixture.changed_attributes
    assert event.size_bytes == fixture.size_bytes
    assert event.position == fixture.position
    partition = layout.partition_for_us(event.event_time_us)
    assert (partition.dt, partition.hour) == (fixture.dt, fixture.hour)
    assert partition.start() <= event.event_time < partition.end()
    assert event.event_time.utcoffset() is not None
    assert not event.event_time.utcoffset()
    if "new_image_json" in fixture.expected:
        assert ddb_json.image_to_json(event.new_image) == fixture.expected["new_image_json"]
    if "old_image_json" in fixture.expected:
        assert ddb_json.image_to_json(event.old_image) == fixture.expected["old_image_json"]
    for leaf in _walk(event.image):
        assert not (isinstance(leaf, Decimal) and not leaf.is_finite())
        assert not isinstance(leaf, float)


@pytest.mark.parametrize("fixture", MALFORMED, ids=lambda f: f.name)
def test_decode_record_returns_failure_with_reason_for_malformed_golden(
    fixture: golden.MalformedFixture,
) -> None:
    result = decode_record(fixture.raw, fixture.position)

    assert isinstance(result, DecodeFailure)
    assert fixture.reason in result.reason
    assert result.raw == fixture.raw  # the original bytes, untouched, for the error prefix
    assert result.position == fixture.position


def test_decode_record_never_raises_for_truncations_of_a_valid_record() -> None:
    raw = next(f for f in VALID if f.name == "all_types").raw
    position = Position("shardId-000000000000", "1")

    results = [decode_record(raw[:cut], position) for cut in range(len(raw))]

    assert all(isinstance(r, DecodeFailure) for r in results)


def test_decode_record_all_types_decodes_to_python_values() -> None:
    fixture = golden.load_valid_by_name("all_types")

    event = decode_record(fixture.raw, fixture.position)

    assert isinstance(event, ChangeEvent)
    image = event.image
    assert image["name"] == "Zoë Ünïcødé 🚀 名前"
    assert image["empty"] == ""
    assert image["empty_bin"] == b""
    assert image["photo"] == b"\x89PNG\r\n\x1a\n"
    assert image["nickname"] is None
    assert image["deleted"] is False
    assert image["address"]["tags"] == {"home", "billing"}
    assert image["address"]["geo"]["lat"] == Decimal("52.520008")
    assert image["history"][3] == {"k": {Decimal(10), Decimal(-2), Decimal("3.5")}}
    assert image["blobs"] == {b"\xff", b"\x00\x01", b"\x01"}
    assert image["emoji_key_😀"] == "value"


def test_decode_record_numbers_fixture_keeps_38_digits_exactly() -> None:
    fixture = golden.load_valid_by_name("numbers_38_digits")

    event = decode_record(fixture.raw, fixture.position)

    assert isinstance(event, ChangeEvent)
    image = event.image
    assert image["pos38"] == Decimal("99999999999999999999999999999999999999")
    assert str(image["neg38"]) == "-12345678901234567890123456789012345678"
    assert str(image["frac38"]) == "0.12345678901234567890123456789012345678"
    assert image["tiny"] == Decimal("1E-130")
    assert image["huge"] == Decimal("9.9999999999999999999999999999999999999E+125")
    assert event.keys == {"id": Decimal("12345678901234567890123456789012345678")}
    assert all(not math.isnan(v) for v in image.values() if isinstance(v, Decimal))


def test_decode_record_same_instant_for_ms_us_and_precision_inputs() -> None:
    by_name = {f.name: f for f in VALID}

    times = {
        name: decode_record(by_name[name].raw, by_name[name].position)
        for name in ("time_ms", "time_us_precision", "time_us_no_precision")
    }

    values = {n: e.event_time_us for n, e in times.items() if isinstance(e, ChangeEvent)}
    assert values == dict.fromkeys(times, 1795778553444000)


def test_decode_record_end_of_day_lands_in_that_day_hour_23() -> None:
    fixture = golden.load_valid_by_name("end_of_day_us")

    event = decode_record(fixture.raw, fixture.position)

    assert isinstance(event, ChangeEvent)
    assert event.event_time.isoformat() == "2024-02-29T23:59:59.999999+00:00"
    assert layout.partition_for_us(event.event_time_us) == layout.Partition("2024-02-29", "23")
    assert layout.partition_for_us(event.event_time_us + 1) == layout.Partition("2024-03-01", "00")


def test_decode_record_rejects_other_table_when_expected_table_given() -> None:
    fixture = golden.load_valid_by_name("insert_ms")

    result = decode_record(fixture.raw, fixture.position, expected_table="orders")

    assert isinstance(result, DecodeFailure)
    assert "'persons'" in result.reason
    assert "'orders'" in result.reason
    assert result.table == "persons"


def test_decode_record_failure_carries_table_when_envelope_is_valid() -> None:
    fixture = next(f for f in MALFORMED if f.name == "null_false")

    result = decode_record(fixture.raw, fixture.position)

    assert isinstance(result, DecodeFailure)
    assert result.table == "persons"


def test_decode_record_accepts_builder_records_round_trip() -> None:
    record = kinesis_dynamodb_record(
        event_name="MODIFY",
        keys={"id": "k1"},
        new_image={"id": "k1", "n": Decimal("2"), "tags": {"a"}},
        old_image={"id": "k1", "n": Decimal("1"), "gone": None},
        event_time_us=1709251199999999,
        precision="MICROSECOND",
        ttl_delete=False,
    )

    event = decode_record(encode(record), Position("shardId-000000000001", "9", 5))

    assert isinstance(event, ChangeEvent)
    assert event.changed_attributes == ("gone", "n", "tags")
    assert event.position.arrival_time_us == 5
    assert orjson.loads(encode(record))["dynamodb"]["ApproximateCreationDateTime"] == (
        1709251199999999
    )


def test_item_key_is_canonical_json_sorted_by_name() -> None:
    assert item_key({"sk": Decimal("7"), "pk": "a"}) == '{"pk":"a","sk":7}'
    assert item_key({"id": b"\x00\x01"}) == '{"id":"AAE="}'
    assert item_key({"id": Decimal("1E+40")}) == '{"id":1E+40}'


def test_changed_attributes_compares_values_per_top_level_name() -> None:
    old = {"a": 1, "b": {"x": 1}, "c": "same"}
    new = {"a": 2, "b": {"x": 1}, "c": "same", "d": None}

    assert changed_attributes(old, new) == ("a", "d")
    assert changed_attributes(None, {"z": 1, "y": 2}) == ("y", "z")
    assert changed_attributes({"z": 1}, None) == ("z",)


def test_golden_loader_finds_fixtures_via_env_var(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = golden.fixtures_dir()
    monkeypatch.setenv(golden.ENV_VAR, str(source))

    assert golden.fixtures_dir() == source
    assert len(golden.load_malformed()) == len(MALFORMED)
    monkeypatch.setenv(golden.ENV_VAR, str(tmp_path))
    with pytest.raises(FileNotFoundError):
        golden.load_valid()
