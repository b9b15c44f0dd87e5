"""The fast decode path is exactly as strict as the shared codec, and yields the same events."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from changelake.events import ChangeEvent, DecodeFailure, Position, decode_record
from changelake.testing import golden
from changelake.testing.records import encode, kinesis_dynamodb_record
from changelake_consumer.decode import decode_fast
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.unit
POS = Position("shardId-000000000001", "1", 1)


@pytest.mark.parametrize("fixture", golden.load_valid(), ids=lambda f: f.name)
def test_decode_fast_equals_codec_on_valid_fixture(fixture: golden.ValidFixture) -> None:
    fast = decode_fast(fixture.raw, fixture.position)
    assert isinstance(fast, ChangeEvent)
    assert fast == decode_record(fixture.raw, fixture.position)
    assert fast.event_id == fixture.event_id
    assert fast.event_time_us == fixture.event_time_us


@pytest.mark.parametrize("fixture", golden.load_malformed(), ids=lambda f: f.name)
def test_decode_fast_equals_codec_on_malformed_fixture(fixture: golden.MalformedFixture) -> None:
    fast = decode_fast(fixture.raw, fixture.position)
    assert isinstance(fast, DecodeFailure)
    assert fast == decode_record(fixture.raw, fixture.position)
    assert fixture.reason in fast.reason


def test_decode_fast_rejects_other_table_when_expected() -> None:
    raw = golden.load_valid()[0].raw
    fast = decode_fast(raw, POS, expected_table="orders")
    assert isinstance(fast, DecodeFailure)
    assert fast == decode_record(raw, POS, expected_table="orders")


_scalars = st.one_of(
    st.text(max_size=8),
    st.decimals(
        allow_nan=False, allow_infinity=False, places=3, min_value=-(10**6), max_value=10**6
    ),
    st.booleans(),
    st.none(),
    st.binary(max_size=6),
    st.frozensets(st.text(min_size=1, max_size=4), min_size=1, max_size=3).map(set),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(min_size=1, max_size=4), inner, max_size=3),
    ),
    max_leaves=8,
)
_images = st.dictionaries(st.text(min_size=1, max_size=6), _values, max_size=5)


def _mutate(record: dict[str, Any], rnd: random.Random) -> dict[str, Any]:
    # Small envelope mutations that pydantic may accept, coerce or reject.
    choice = rnd.randrange(12)
    ddb = record["dynamodb"]
    if choice == 0:
        ddb["ApproximateCreationDateTime"] = str(ddb["ApproximateCreationDateTime"])
    elif choice == 1:
        record["eventName"] = "modify"
    elif choice == 2:
        record.pop("recordFormat")
    elif choice == 3:
        record["userIdentity"] = {"type": "Service"}
    elif choice == 4:
        ddb["SizeBytes"] = True
    elif choice == 5:
        record["awsRegion"] = 7
    elif choice == 6:
        ddb["ApproximateCreationDateTimePrecision"] = "SECOND"
    elif choice == 7:
        ddb["NewImage"] = []
    elif choice == 8:
        record["extra"] = {"x": 1}
    elif choice == 9:
        record["userIdentity"] = {
            "type": "Service",
            "principalId": "dynamodb.amazonaws.com",
            "x": 1,
        }
    return record


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    new=_images,
    old=_images,
    name=st.sampled_from(["INSERT", "MODIFY", "REMOVE"]),
    key=st.one_of(st.text(max_size=5), st.decimals(places=0, min_value=0, max_value=99)),
    seed=st.integers(0, 10**6),
)
def test_decode_fast_equals_codec_on_random_records(
    new: dict[str, Any], old: dict[str, Any], name: str, key: Any, seed: int
) -> None:
    new = {**new, "id": key}
    old = {**old, "id": key}
    record = kinesis_dynamodb_record(
        event_name=name,
        keys={"id": key},
        new_image=new if name != "REMOVE" else None,
        old_image=old if name != "INSERT" else None,
        event_time_us=1_795_773_600_000_000 + seed,
    )
    rnd = random.Random(seed)
    if rnd.random() < 0.5:
        record = _mutate(record, rnd)
    raw = encode(record)
    assert decode_fast(raw, POS) == decode_record(raw, POS)


def test_decode_fast_equals_codec_on_number_edge_cases() -> None:
    for text in ["0", "-0", "1e5", "5.", ".5", "1E-130", "9" * 38, "1" + "0" * 40, "1e126"]:
        record = kinesis_dynamodb_record(
            event_name="INSERT", keys={"id": "k"}, new_image={"id": "k"}, event_time_us=10**15
        )
        record["dynamodb"]["NewImage"]["n"] = {"N": text}
        raw = orjson.dumps(record)
        assert decode_fast(raw, POS) == decode_record(raw, POS), text
