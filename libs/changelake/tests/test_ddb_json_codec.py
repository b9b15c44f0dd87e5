"""The strict DynamoDB-JSON codec against boto3/botocore's real wire format, and its edges."""

from __future__ import annotations

import base64
import json
import math
from decimal import Decimal
from typing import Any

import botocore.session
import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from botocore import parsers, serialize
from changelake import ddb_json
from changelake.ddb_json import DdbJsonError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.unit

_MODEL = botocore.session.get_session().get_service_model("dynamodb")
_PUT = _MODEL.operation_model("PutItem")
_GET = _MODEL.operation_model("GetItem")


def wire_item(item: dict[str, Any]) -> dict[str, Any]:
    """An item as DynamoDB JSON exactly as on the wire: TypeSerializer, then botocore's JSON."""
    av = {k: TypeSerializer().serialize(v) for k, v in item.items()}
    request = serialize.create_serializer("json").serialize_to_request(
        {"TableName": "t", "Item": av}, _PUT
    )
    body: dict[str, Any] = json.loads(request["body"])
    return body["Item"]  # type: ignore[no-any-return]


def boto3_read(wire: dict[str, Any]) -> dict[str, Any]:
    """What boto3 makes of a wire item: botocore's JSON parser, then TypeDeserializer."""
    body = json.dumps({"Item": wire}).encode()
    shape = _GET.output_shape
    assert shape is not None
    parsed = parsers.create_parser("json").parse(
        {"body": body, "headers": {}, "status_code": 200}, shape
    )
    return {k: _unwrap(TypeDeserializer().deserialize(v)) for k, v in parsed["Item"].items()}


def _unwrap(value: Any) -> Any:
    """boto3 wraps binary in ``Binary``; compare its bytes."""
    if isinstance(value, Binary):
        return value.__bytes__()
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, set):
        return {_unwrap(v) for v in value}
    return value


def same(a: Any, b: Any) -> bool:
    """Deep equality that also compares kinds (a bool is not the number 1, bytes not str)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | Decimal) and isinstance(b, int | Decimal):
        return Decimal(a) == Decimal(b)
    if isinstance(a, bytes | bytearray) or isinstance(b, bytes | bytearray):
        return isinstance(a, bytes | bytearray) and isinstance(b, bytes | bytearray) and a == b
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, set | frozenset):
        if not isinstance(b, set | frozenset) or len(a) != len(b):
            return False
        kinds = {type(x) for x in a} | {type(x) for x in b}
        if kinds <= {int, Decimal}:
            return {Decimal(x) for x in a} == {Decimal(x) for x in b}
        return set(a) == set(b) and kinds <= {str} | {bytes}
    return type(a) is type(b) and a == b


def normalize_sets(av: Any) -> Any:
    """DynamoDB JSON with set members in a canonical order (sets are unordered)."""
    if isinstance(av, dict):
        return {
            k: sorted(v) if k in ("SS", "NS", "BS") else normalize_sets(v) for k, v in av.items()
        }
    if isinstance(av, list):
        return [normalize_sets(v) for v in av]
    return av


# --- strategies: every type DynamoDB stores, within DynamoDB's limits -----------------------


@st.composite
def decimals38(draw: st.DrawFn) -> Decimal:
    """A number of 1..38 significant digits whose magnitude is inside boto3's context."""
    ndigits = draw(st.integers(1, 38))
    coefficient = draw(st.integers(10 ** (ndigits - 1), 10**ndigits - 1))
    adjusted = draw(st.integers(-128, 125))
    sign = draw(st.sampled_from([0, 1]))
    digits = tuple(int(c) for c in str(coefficient))
    return Decimal((sign, digits, adjusted - (ndigits - 1)))


integers38 = st.integers(-(10**38) + 1, 10**38 - 1)
numbers = st.one_of(decimals38(), integers38, st.sampled_from([0, Decimal("0"), Decimal("-0")]))
text = st.text(max_size=12)
scalars = st.one_of(text, numbers, st.binary(max_size=12), st.booleans(), st.none())
sets = st.one_of(
    st.sets(text, min_size=1, max_size=5),
    st.sets(st.one_of(decimals38(), integers38), min_size=1, max_size=5),
    st.sets(st.binary(max_size=8), min_size=1, max_size=5),
)
values = st.recursive(
    st.one_of(scalars, sets),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(text, children, max_size=4)
    ),
    max_leaves=25,
)
items = st.dictionaries(st.text(min_size=1, max_size=10), values, min_size=1, max_size=8)

_HYPOTHESIS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@_HYPOTHESIS
@given(items)
def test_codec_decodes_boto3_wire_items_exactly_for_random_items(item: dict[str, Any]) -> None:
    wire = wire_item(item)

    decoded = ddb_json.deserialize_image(wire)

    assert same(decoded, item)


@_HYPOTHESIS
@given(items)
def test_codec_encodes_to_the_boto3_wire_format_for_random_items(item: dict[str, Any]) -> None:
    wire = wire_item(item)
    decoded = ddb_json.deserialize_image(wire)

    encoded = ddb_json.serialize_image(decoded)

    assert normalize_sets(encoded) == normalize_sets(wire)
    assert same(ddb_json.deserialize_image(encoded), item)
    assert same(boto3_read(encoded), item)


@_HYPOTHESIS
@given(items)
def test_image_to_json_parses_back_to_plain_values_for_random_items(item: dict[str, Any]) -> None:
    decoded = ddb_json.deserialize_image(wire_item(item))

    text_out = ddb_json.image_to_json(decoded)

    assert text_out is not None
    assert same(strict_loads(text_out), _plain(decoded))


def strict_loads(text_in: str) -> Any:
    """json.loads with exact decimals that fails on NaN/Infinity tokens (not JSON)."""

    def reject(token: str) -> Any:
        raise AssertionError(f"non-JSON number {token}")

    return json.loads(text_in, parse_float=Decimal, parse_constant=reject)


def _plain(value: Any) -> Any:
    """The expected plain-JSON value: sets as sorted lists, bytes as base64 text."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return [_plain(v) for v in sorted(value)]
    return value


# --- numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "-0",
        "12",
        "-0.5",
        "5.",
        ".5",
        "1e5",
        "1E-130",
        "-1E-130",
        "1.2345678901234567890123456789012345678E-130",  # 38 digits at the bottom of the range
        "9.9999999999999999999999999999999999999E+125",
        "99999999999999999999999999999999999999",
        "-12345678901234567890123456789012345678",
        "1" + "0" * 125,  # 126 characters, 1 significant digit: DynamoDB's largest power of ten
        "0.000000000000000000000000000000000000000000000012",
    ],
)
def test_parse_number_accepts_exact_value_for_dynamodb_forms(text: str) -> None:
    value = ddb_json.parse_number(text)

    assert value == Decimal(text)
    assert value.is_finite()
    assert str(value) == str(Decimal(text))  # exact text kept: no rounding, no float


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("NaN", "malformed number"),
        ("nan", "malformed number"),
        ("sNaN", "malformed number"),
        ("Infinity", "malformed number"),
        ("-Inf", "malformed number"),
        ("1.2.3", "malformed number"),
        ("", "malformed number"),
        ("+5", "malformed number"),
        (" 5", "malformed number"),
        ("1_000", "malformed number"),
        ("\u0661", "malformed number"),
        ("1e", "malformed number"),
        ("-", "malformed number"),
        (".", "malformed number"),
        ("0x1F", "malformed number"),
        ("1" * 39, "39 significant digits"),
        ("-0.1234567890123456789012345678901234567891", "40 significant digits"),
        ("1E+126", "out of DynamoDB range"),
        ("1E-131", "out of DynamoDB range"),
        ("9" * 500, "malformed number"),
    ],
)
def test_parse_number_rejects_with_reason_for_non_dynamodb_numbers(text: str, reason: str) -> None:
    with pytest.raises(DdbJsonError) as info:
        ddb_json.parse_number(text, "$.x")

    assert reason in info.value.reason
    assert info.value.path == "$.x"


def test_parse_number_rejects_non_string_input() -> None:
    with pytest.raises(DdbJsonError, match="N must be a string"):
        ddb_json.parse_number(1.5)


# --- decoding edges --------------------------------------------------------------------------


def test_deserialize_value_maps_every_type_for_one_value_each() -> None:
    image = {
        "s": {"S": "é🚀"},
        "n": {"N": "1.50"},
        "b": {"B": "AAE="},
        "t": {"BOOL": True},
        "z": {"NULL": True},
        "m": {"M": {"": {"S": "empty nested key is kept"}}},
        "l": {"L": [{"N": "1"}, {"SS": ["b", "a"]}]},
        "ss": {"SS": ["x"]},
        "ns": {"NS": ["2", "1"]},
        "bs": {"BS": ["AA=="]},
    }

    out = ddb_json.deserialize_image(image)

    assert out == {
        "s": "é🚀",
        "n": Decimal("1.50"),
        "b": b"\x00\x01",
        "t": True,
        "z": None,
        "m": {"": "empty nested key is kept"},
        "l": [Decimal(1), {"a", "b"}],
        "ss": {"x"},
        "ns": {Decimal(1), Decimal(2)},
        "bs": {b"\x00"},
    }
    assert str(out["n"]) == "1.50"


@pytest.mark.parametrize(
    ("av", "path", "reason"),
    [
        ({"M": {"a": {"L": [{"S": "x"}, {"X": 1}]}}}, "$.v.a[1]", "unknown type key 'X'"),
        ({"L": [{"NULL": False}]}, "$.v[0]", "NULL must be true"),
        ({"S": "a", "N": "1"}, "$.v", "exactly one type key"),
        ({}, "$.v", "no type key"),
        ({"BS": ["AA==", "AA=="]}, "$.v[1]", "duplicate member in BS"),
        ({"NS": []}, "$.v", "NS must not be empty"),
        ({"B": "AA=\n="}, "$.v", "invalid base64"),
        ({"B": 5}, "$.v", "B must be a base64 string"),
        ({"SS": "abc"}, "$.v", "SS must be an array"),
        (["S", "x"], "$.v", "attribute value must be an object"),
    ],
)
def test_deserialize_value_reports_path_and_reason_for_bad_values(
    av: object, path: str, reason: str
) -> None:
    with pytest.raises(DdbJsonError) as info:
        ddb_json.deserialize_value(av, "$.v")

    assert info.value.path == path
    assert reason in info.value.reason
    assert str(info.value).startswith(path + ": ")


def test_deserialize_value_raises_error_not_recursion_for_hostile_nesting() -> None:
    value: dict[str, Any] = {"S": "x"}
    for _ in range(5000):
        value = {"L": [value]}

    with pytest.raises(DdbJsonError, match="nested deeper than"):
        ddb_json.deserialize_value(value)


def test_deserialize_value_accepts_nesting_dynamodb_allows() -> None:
    value: dict[str, Any] = {"S": "x"}
    for _ in range(32):
        value = {"M": {"a": value}}

    out = ddb_json.deserialize_value(value)

    for _ in range(32):
        out = out["a"]
    assert out == "x"


def test_deserialize_image_rejects_empty_top_level_attribute_name() -> None:
    with pytest.raises(DdbJsonError, match="empty attribute name"):
        ddb_json.deserialize_image({"": {"S": "x"}})


def test_deserialize_image_rejects_non_object_image() -> None:
    with pytest.raises(DdbJsonError, match="image must be an object"):
        ddb_json.deserialize_image([{"S": "x"}])


# --- encoding edges --------------------------------------------------------------------------


def test_serialize_value_sorts_set_members_for_stable_output() -> None:
    assert ddb_json.serialize_value({"b", "a"}) == {"SS": ["a", "b"]}
    assert ddb_json.serialize_value({b"\x01", b"\x00"}) == {"BS": ["AA==", "AQ=="]}
    assert ddb_json.serialize_value({Decimal("1.5"), 7}) == {"NS": ["1.5", "7"]}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (1.5, "floats are not exact"),
        (Decimal("NaN"), "not finite"),
        (Decimal("Infinity"), "not finite"),
        (set(), "cannot be empty"),
        ({1, "a"}, "set members must all be"),
        ({True}, "set members must all be"),
        (10**38 + 1, "39 significant digits"),
        (object(), "cannot encode object"),
    ],
)
def test_serialize_value_rejects_values_dynamodb_cannot_hold(value: object, reason: str) -> None:
    with pytest.raises(DdbJsonError) as info:
        ddb_json.serialize_value(value)

    assert reason in info.value.reason


def test_serialize_image_rejects_empty_attribute_name() -> None:
    with pytest.raises(DdbJsonError, match="empty attribute name"):
        ddb_json.serialize_image({"": 1})


# --- image_to_json ---------------------------------------------------------------------------


def test_image_to_json_writes_exact_numbers_sorted_sets_base64_and_unicode() -> None:
    n38 = "-12345678901234567890123456789012345678"
    image = ddb_json.deserialize_image(
        {
            "n38": {"N": n38},
            "tiny": {"N": "1E-130"},
            "frac": {"N": "0.10"},
            "ss": {"SS": ["b", "A", "é"]},
            "ns": {"NS": ["10", "9", "-1E+5"]},
            "bs": {"BS": ["/w==", "AA=="]},
            "b": {"B": "3q2+7w=="},
            "u": {"S": 'Zoë 🚀 "quoted" \\ \n'},
            "nested": {"M": {"l": {"L": [{"NULL": True}, {"BOOL": False}]}}},
        }
    )

    out = ddb_json.image_to_json(image)

    assert out == (
        f'{{"n38":{n38},"tiny":1E-130,"frac":0.10,"ss":["A","b","é"],"ns":[-1E+5,9,10],'
        '"bs":["AA==","/w=="],"b":"3q2+7w==","u":"Zoë 🚀 \\"quoted\\" \\\\ \\n",'
        '"nested":{"l":[null,false]}}'
    )
    back = strict_loads(out)
    assert back["n38"] == int(n38)
    assert back["tiny"] == Decimal("1E-130")
    assert back["frac"] == Decimal("0.10")
    assert back["u"] == 'Zoë 🚀 "quoted" \\ \n'


def test_image_to_json_keeps_none_for_absent_image() -> None:
    assert ddb_json.image_to_json(None) is None


def test_value_to_json_renders_a_single_value() -> None:
    assert ddb_json.value_to_json({"k": Decimal("1E+40")}) == '{"k":1E+40}'


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("-Infinity"), float("nan"), math.inf])
def test_image_to_json_refuses_non_finite_numbers_instead_of_writing_invalid_json(
    value: object,
) -> None:
    with pytest.raises(DdbJsonError, match="not finite"):
        ddb_json.image_to_json({"x": value})


def test_serialize_value_rejects_ints_beyond_the_digit_limit_as_codec_error() -> None:
    with pytest.raises(DdbJsonError, match="out of DynamoDB range"):
        ddb_json.serialize_value(10**5000 + 1)
