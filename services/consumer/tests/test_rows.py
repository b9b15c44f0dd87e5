"""The fast row path yields exactly the rows (and failures) of the shared codec's path."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import orjson
import pytest
from changelake.events import ChangeEvent, DecodeFailure, Position, decode_record
from changelake_consumer.rows import prepare, prepare_event
from changelake_lake.column_policy import PreparedRow
from changelake_testsupport import golden
from changelake_testsupport.records import encode, kinesis_dynamodb_record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.unit
POS = Position("shardId-000000000001", "17", 1_795_773_600_000_000)


def _reference(raw: bytes, pos: Position) -> PreparedRow | DecodeFailure:
    decoded = decode_record(raw, pos)
    return prepare_event(decoded) if isinstance(decoded, ChangeEvent) else decoded


def _same(raw: bytes, pos: Position = POS) -> None:
    fast = prepare(raw, pos)
    slow = _reference(raw, pos)
    assert type(fast) is type(slow)
    if isinstance(fast, DecodeFailure):
        assert fast == slow
    else:
        assert isinstance(slow, PreparedRow)
        assert fast.system == slow.system
        assert fast.cells == slow.cells
        assert (fast.table, fast.event_time_us, fast.number_text_values) == (
            slow.table,
            slow.event_time_us,
            slow.number_text_values,
        )


@pytest.mark.parametrize("fixture", golden.load_valid(), ids=lambda f: f.name)
def test_prepare_equals_codec_path_on_valid_fixture(fixture: golden.ValidFixture) -> None:
    _same(fixture.raw, fixture.position)


@pytest.mark.parametrize("fixture", golden.load_malformed(), ids=lambda f: f.name)
def test_prepare_equals_codec_path_on_malformed_fixture(fixture: golden.MalformedFixture) -> None:
    result = prepare(fixture.raw, fixture.position)
    assert isinstance(result, DecodeFailure)
    assert fixture.reason in result.reason
    _same(fixture.raw, fixture.position)


_numbers = st.one_of(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=2, min_value=-(10**6), max_value=10**6
    ),
    st.sampled_from([Decimal("0.0000001"), Decimal("1E+40"), Decimal("-0"), Decimal("1.50")]),
    st.integers(-(10**30), 10**30).map(Decimal),
)
_scalars = st.one_of(
    st.text(max_size=6),
    _numbers,
    st.booleans(),
    st.none(),
    st.binary(max_size=4),
    st.frozensets(st.text(min_size=1, max_size=3), min_size=1, max_size=3).map(set),
    st.frozensets(_numbers, min_size=1, max_size=3).map(set),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(max_size=4), inner, max_size=3),
    ),
    max_leaves=10,
)
_names = st.sampled_from(["a", "b", "A", "a_b", "event_id", "dt", "x y", "ü", "_", "n"])
_images = st.dictionaries(_names, _values, max_size=6)


def _wire_mutation(record: dict[str, Any], rnd: random.Random) -> dict[str, Any]:
    # Raw DynamoDB-JSON edits the encoder never makes: odd numbers, set order, bad values.
    image = record["dynamodb"].get("NewImage") or record["dynamodb"]["OldImage"]
    choice = rnd.randrange(8)
    if choice == 0:
        image["n"] = {"N": rnd.choice(["1.0", "01", "1e2", ".5", "-0.0000001", "9" * 39, "x"])}
    elif choice == 1:
        image["s"] = {"SS": ["b", "a", "b"]}
    elif choice == 2:
        image["m"] = {"M": {"": {"S": "empty key"}, "k": {"L": [{"N": "1"}, {"M": {}}]}}}
    elif choice == 3:
        image["bad"] = {"S": 1}
    elif choice == 4:
        image["two"] = {"S": "a", "N": "1"}
    elif choice == 5:
        record["dynamodb"]["Keys"]["id"] = {"S": "other"}
    elif choice == 6:
        image[""] = {"S": "empty name"}
    else:
        image["ss"] = {"SS": ["z", "y"]}
    return record


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    new=_images,
    old=_images,
    name=st.sampled_from(["INSERT", "MODIFY", "REMOVE"]),
    shared=st.booleans(),
    seed=st.integers(0, 10**6),
)
def test_prepare_equals_codec_path_on_random_records(
    new: dict[str, Any], old: dict[str, Any], name: str, shared: bool, seed: int
) -> None:
    if shared:  # MODIFY images that share most attributes (the fast path reuses them)
        old = {**new, **old}
    new = {**new, "id": "k"}
    old = {**old, "id": "k"}
    record = kinesis_dynamodb_record(
        event_name=name,
        keys={"id": "k"},
        new_image=new if name != "REMOVE" else None,
        old_image=old if name != "INSERT" else None,
        event_time_us=1_795_773_600_000_000 + seed,
    )
    rnd = random.Random(seed)
    if rnd.random() < 0.4:
        record = _wire_mutation(record, rnd)
    _same(orjson.dumps(record))


def test_prepare_number_keys_and_ttl() -> None:
    record = kinesis_dynamodb_record(
        event_name="REMOVE",
        keys={"pk": Decimal("12"), "sk": "x"},
        old_image={"pk": Decimal("12"), "sk": "x", "v": Decimal("1.5")},
        event_time_us=1_795_773_600_000_000,
        ttl_delete=True,
    )
    _same(encode(record))
    row = prepare(encode(record), POS)
    assert isinstance(row, PreparedRow)
    assert row.system[3] == '{"pk":12,"sk":"x"}'
    assert row.system[7] is True


def test_prepare_typical_change_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from changelake_consumer import rows
    from changelake_testsupport.person_changes import change, person

    def forbidden(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("fell back to the codec's path")

    monkeypatch.setattr(rows, "decode_record", forbidden)
    item = person(1, tags={"a", "b"}, phones=["1", "2"], note=None)
    for event_name in ("INSERT", "MODIFY", "REMOVE"):
        raw, pos = change(1, event_name=event_name, item=item)
        assert isinstance(rows.prepare(raw, pos), PreparedRow)
