"""The pure person generator: reproducible, typed, consistent with its own live set."""

from __future__ import annotations

from decimal import Decimal

import pytest
from changelake import ddb_json
from changelake_producer.generator import Mix, PersonGenerator

pytestmark = pytest.mark.unit


def _ops(seed: int, n: int, mix: Mix | None = None) -> list[tuple[str, str, object, object]]:
    gen = PersonGenerator(seed, mix)
    return [(op.kind, op.pk, op.item, op.old) for op in (gen.next() for _ in range(n))]


def test_generator_repeats_everything_when_seed_repeats() -> None:
    assert _ops(7, 200) == _ops(7, 200)
    assert _ops(7, 200) != _ops(8, 200)


def test_person_has_every_attribute_type_when_generated() -> None:
    person = PersonGenerator(1).person()
    assert person["pk"].startswith("person-")
    assert isinstance(person["name"], str)
    assert set(person["address"]) == {"street", "city", "postcode", "country", "geo"}
    assert isinstance(person["address"]["geo"]["lat"], Decimal)
    assert isinstance(person["emails"], set)
    assert person["emails"]
    assert isinstance(person["balance"], Decimal)
    assert len(str(person["account_number"])) == 20
    assert isinstance(person["visits"], int)
    assert isinstance(person["active"], bool)
    assert person["version"] == 1
    # Serialisable as DynamoDB JSON with no float anywhere.
    image = ddb_json.serialize_image(person)
    assert image["emails"]["SS"]
    assert ddb_json.deserialize_image(image) == person


def test_generator_updates_and_deletes_only_live_persons() -> None:
    gen = PersonGenerator(3, Mix(0.4, 0.4, 0.2))
    live: dict[str, dict[str, object]] = {}
    for _ in range(500):
        op = gen.next()
        if op.kind == "insert":
            assert op.pk not in live
            assert op.old is None
            live[op.pk] = dict(op.item or {})
        elif op.kind == "update":
            assert op.old == live[op.pk]
            assert op.item is not None
            assert op.changes is not None
            assert op.item["version"] == int(str(op.old["version"])) + 1
            assert {**op.old, **op.changes} == op.item
            live[op.pk] = dict(op.item)
        else:
            assert op.old == live.pop(op.pk)
            assert op.item is None
    assert gen.live_pks() == sorted(live)


def test_generator_follows_mix_when_weights_given() -> None:
    kinds = [k for k, *_ in _ops(5, 2000, Mix(0.5, 0.3, 0.2))]
    assert 850 <= kinds.count("insert") <= 1150
    assert 450 <= kinds.count("update") <= 750
    assert 250 <= kinds.count("delete") <= 550


def test_generator_inserts_first_when_nobody_is_live() -> None:
    assert _ops(1, 3, Mix(0, 1, 1))[0][0] == "insert"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("insert=0.6,update=0.3,delete=0.1", Mix(0.6, 0.3, 0.1)),
        ("insert=1", Mix(1, 0, 0)),
        (" update = 2 , insert=1 ", Mix(1, 2, 0)),
    ],
)
def test_mix_parse_reads_weights(text: str, expected: Mix) -> None:
    assert Mix.parse(text) == expected


@pytest.mark.parametrize(
    "text", ["insert", "upsert=1", "insert=x", "insert=0", "insert=-1,update=2"]
)
def test_mix_parse_rejects_bad_text(text: str) -> None:
    with pytest.raises(ValueError, match="mix"):
        Mix.parse(text)
