"""records_to_parquet / decode_into equal the reference strict path, batch by batch.

The reference is the shared codec (``changelake.events.decode_record``) followed by the row
builder of the codec's path (``ChangeColumns.append``); the path under test is the consumer's
optimized one (docs/adr/0014). Same rows, columns, types, values and order; same failures with
the same reasons; same Parquet bytes. With a privacy policy the reference is the policy's own
decode (``PrivacyPolicy.decode``: redact the bytes, then the codec), so both paths must apply
it identically (docs/adr/0027).
"""

from __future__ import annotations

import gc
import random
from decimal import Decimal
from typing import Any

import orjson
import pytest
from changelake.events import ChangeEvent, DecodeFailure, Position, decode_record
from changelake.privacy import PrivacyPolicy
from changelake_consumer.parquet import decode_into, gc_paused, records_to_parquet, table_to_parquet
from changelake_consumer.rows import prepare_event
from changelake_lake.column_policy import ChangeColumns
from changelake_testsupport import golden
from changelake_testsupport.records import kinesis_dynamodb_record

pytestmark = pytest.mark.unit
Records = list[tuple[bytes, Position]]


# Keys hashed (so item_key too), hash/mask/drop at the top level, inside maps and through lists.
POLICY = PrivacyPolicy(
    {
        "persons": {
            "id": "hash",
            "pk": "hash",
            "a": "hash",
            "name": "mask",
            "email": "hash",
            "n": "drop",
            "addr.b": "hash",
            "addr.a_b": "mask",
            "addr.n": "drop",
            "address.street": "mask",
            "colors": "mask",
            "scores": "hash",
            "blobs": "hash",
            "history": "mask",
        }
    },
    b"differential-test-key-0123456789abcdef",
)


def _reference(
    records: Records, table: str | None, privacy: PrivacyPolicy | None = None
) -> tuple[ChangeColumns, list[DecodeFailure]]:
    columns = ChangeColumns()
    failures: list[DecodeFailure] = []
    for raw, position in records:
        decoded = (
            privacy.decode(raw, position, expected_table=table)
            if privacy is not None
            else decode_record(raw, position, expected_table=table)
        )
        if isinstance(decoded, ChangeEvent):
            columns.add(prepare_event(decoded))
        else:
            failures.append(decoded)
    return columns, failures


def _assert_same(records: Records, table: str | None, privacy: PrivacyPolicy | None = None) -> None:
    fast, fast_failures = decode_into(records, table, privacy)
    slow, slow_failures = _reference(records, table, privacy)
    assert fast_failures == slow_failures
    fast_table, slow_table = fast.to_table(), slow.to_table()
    assert fast_table.schema == slow_table.schema
    assert fast_table.to_pylist() == slow_table.to_pylist()
    assert (fast.number_text_values, fast.collisions) == (slow.number_text_values, slow.collisions)
    if table is not None:
        metadata = privacy.metadata(table) if privacy is not None else None
        assert records_to_parquet(records, table, privacy) == table_to_parquet(slow_table, metadata)


def test_decode_into_equals_reference_on_all_golden_fixtures_in_one_batch() -> None:
    valid = golden.load_valid()
    malformed = golden.load_malformed()
    records = [(f.raw, f.position) for f in valid] + [(f.raw, f.position) for f in malformed]
    random.Random(5).shuffle(records)
    _assert_same(records, None)
    fast, failures = decode_into(records, None)
    assert fast.rows == len(valid)
    assert len(failures) == len(malformed)


@pytest.mark.parametrize("table", sorted({f.table for f in golden.load_valid()}))
def test_records_to_parquet_equals_reference_on_golden_fixtures_per_table(table: str) -> None:
    records = [(f.raw, f.position) for f in golden.load_valid()]
    records += [(f.raw, f.position) for f in golden.load_malformed()]
    _assert_same(records, table)


# -- seeded random records ---------------------------------------------------------------------

_TEXTS = [
    "",
    "a",
    "2024-01-01",
    "2024-01-01T10:00:00Z",
    "Kraków",
    "日本語",
    "🙂",
    'q"\\\n\t',
    "\x00",
]
_NUMBERS = [
    "0",
    "-0",
    "1.50",
    "24",
    "-1186.68",
    "0.000000001",
    "0.0000000001",
    "12345678901234567890123456789",
    "123456789012345678901234567890",
    "9" * 38,
    "-" + "9" * 38,
    "1E+40",
    "1.2345678901234567890123456789012345678E-100",
]


def _scalar(rnd: random.Random) -> Any:
    kind = rnd.randrange(8)
    if kind == 0:
        return rnd.choice(_TEXTS) + str(rnd.randrange(100))
    if kind == 1:
        return Decimal(rnd.choice(_NUMBERS))
    if kind == 2:
        return rnd.random() < 0.5
    if kind == 3:
        return None
    if kind == 4:
        return bytes(rnd.randrange(256) for _ in range(rnd.randrange(6)))
    if kind == 5:
        return {rnd.choice(_TEXTS) + "s" for _ in range(rnd.randrange(1, 4))}
    if kind == 6:
        return {Decimal(rnd.choice(_NUMBERS)) for _ in range(rnd.randrange(1, 4))}
    return {bytes([rnd.randrange(256)]) for _ in range(rnd.randrange(1, 3))}


def _value(rnd: random.Random, depth: int) -> Any:
    kind = rnd.randrange(10)
    if depth < 6 and kind == 0:
        return [_value(rnd, depth + 1) for _ in range(rnd.randrange(4))]
    if depth < 6 and kind in (1, 2):
        return {rnd.choice(_NAMES): _value(rnd, depth + 1) for _ in range(rnd.randrange(4))}
    return _scalar(rnd)


# Few names, so the same attribute meets several types across records (drift) and collisions.
_NAMES = ["a", "b", "a_b", "n", "name", "age", "addr", "x y", "ü", "_", "event_id", "dt"]


def _image(rnd: random.Random) -> dict[str, Any]:
    image = {rnd.choice(_NAMES): _value(rnd, 0) for _ in range(rnd.randrange(6))}
    image["id"] = "k"
    return image


def _mutate(record: dict[str, Any], rnd: random.Random) -> bytes:
    ddb = record["dynamodb"]
    image = ddb.get("NewImage") or ddb["OldImage"]
    choice = rnd.randrange(14)
    if choice == 0:
        image["n"] = {"N": rnd.choice(["1.0", "01", "1e2", ".5", "-0.0000001", "9" * 39, "x", ""])}
    elif choice == 1:
        image["s"] = {"SS": rnd.choice([["b", "a", "b"], [], ["a", 1]])}
    elif choice == 2:
        image["m"] = {"M": {"": {"S": "empty key"}, "k": {"L": [{"N": "1"}, {"M": {}}]}}}
    elif choice == 3:
        image["bad"] = rnd.choice([{"S": 1}, {"BOOL": "true"}, {"NULL": False}, {"B": "!!"}])
    elif choice == 4:
        image["two"] = {"S": "a", "N": "1"}
    elif choice == 5:
        ddb["Keys"]["id"] = {"S": "other"}
    elif choice == 6:
        image[""] = {"S": "empty name"}
    elif choice == 7:
        image["ns"] = {"NS": rnd.choice([["2", "1"], ["1", "1.0"], ["1e2", "3"]])}
    elif choice == 8:
        image["bs"] = {"BS": rnd.choice([["AQ==", "AA=="], ["AQ==", "AQ=="], ["AQ"]])}
    elif choice == 9:
        record["eventName"] = rnd.choice(["UPDATE", "", None])
    elif choice == 10:
        ddb["ApproximateCreationDateTime"] = rnd.choice([-1, "1", 1.5, None])
    elif choice == 11:
        record["unexpected"] = True
    elif choice == 12:
        return orjson.dumps(record)[: rnd.randrange(1, 60)]
    else:
        image["deep"] = {"M": {"a": {"M": {"b": {"M": {"c": {"M": {"d": {"S": "x"}}}}}}}}}
    return orjson.dumps(record)


def _random_records(seed: int, count: int) -> Records:
    rnd = random.Random(seed)
    out: Records = []
    for i in range(count):
        name = rnd.choice(["INSERT", "MODIFY", "MODIFY", "REMOVE"])
        new = _image(rnd)
        old = {**new, **_image(rnd)} if rnd.random() < 0.7 else _image(rnd)
        record = kinesis_dynamodb_record(
            event_name=name,
            keys={"id": "k"},
            new_image=new if name != "REMOVE" else None,
            old_image=old if name != "INSERT" else None,
            event_time_us=1_795_773_600_000_000 + rnd.randrange(10**10),
            precision=rnd.choice(["MILLISECOND", "MICROSECOND", None]),
            event_id=f"e{i}",
            ttl_delete=name == "REMOVE" and rnd.random() < 0.3,
        )
        raw = _mutate(record, rnd) if rnd.random() < 0.3 else orjson.dumps(record)
        out.append((raw, Position("shardId-000000000001", str(10**20 + i), 1_795_773_600_000_000)))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_records_to_parquet_equals_reference_on_seeded_random_records(seed: int) -> None:
    records = _random_records(seed, 1000)
    _assert_same(records, "persons")
    fast, failures = decode_into(records, "persons")
    assert fast.rows > 500  # both outcomes are exercised
    assert failures


def test_decode_into_equals_reference_with_a_privacy_policy_on_golden_fixtures() -> None:
    records = [(f.raw, f.position) for f in golden.load_valid()]
    records += [(f.raw, f.position) for f in golden.load_malformed()]
    _assert_same(records, None, POLICY)
    _assert_same(records, "persons", POLICY)
    fast, _ = decode_into(records, "persons", POLICY)
    clear, _ = decode_into(records, "persons")
    assert fast.to_table().column("item_key") != clear.to_table().column("item_key")


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_records_to_parquet_equals_reference_with_a_privacy_policy(seed: int) -> None:
    records = _random_records(seed, 1000)
    _assert_same(records, "persons", POLICY)
    fast, failures = decode_into(records, "persons", POLICY)
    clear, clear_failures = decode_into(records, "persons")
    assert fast.rows > 500
    assert failures
    # The policy changes values, never which records are rows nor what changed.
    assert fast.rows == clear.rows
    assert len(failures) == len(clear_failures)
    redacted, plain = fast.to_table(), clear.to_table()
    assert redacted.column("changed_attributes") == plain.column("changed_attributes")
    assert redacted.column("item_key") != plain.column("item_key")


def test_gc_paused_restores_collector_state_when_nested() -> None:
    assert gc.isenabled()
    with gc_paused():
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
