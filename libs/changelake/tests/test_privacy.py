"""The privacy policy (changelake.privacy): validation at start, hash / mask / drop on the wire
record, keys consistent across tables, changed attributes from the clear values, unreadable
records masked whole (docs/adr/0027-privacy-policy.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from changelake import ddb_json
from changelake.adapters.aws import privacy_policy
from changelake.events import ChangeEvent, DecodeFailure, Position
from changelake.privacy import (
    MASK_TEXT,
    RECORD_MARKER,
    PrivacyPolicy,
    PrivacyPolicyError,
    mask_value,
    sample_policy,
)
from changelake.settings import ChangelakeSettings
from changelake_testsupport.records import kinesis_dynamodb_record
from pydantic import ValidationError

pytestmark = pytest.mark.unit

KEY = b"unit-test-key-0123456789abcdef-0123"
OTHER_KEY = b"another-key-0123456789abcdef-01234"
POS = Position("shardId-000000000000", "100", 1_795_773_600_000_000)


def _record(
    name: str, new: Any = None, old: Any = None, table: str = "persons", **raw_avs: Any
) -> bytes:
    """A record of plain images; ``raw_avs`` go into the image as given (bad values)."""
    image = new if new is not None else old
    record = kinesis_dynamodb_record(
        event_name=name,
        keys={"pk": image["pk"]},
        new_image=new,
        old_image=old,
        event_time_us=1_795_773_600_000_000,
        table=table,
    )
    record["dynamodb"]["NewImage" if new is not None else "OldImage"].update(raw_avs)
    return orjson.dumps(record)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["persons"]', "must be an object"),
        ('{"persons": {}}', "non-empty object"),
        ('{"persons": {"email": "encrypt"}}', "unknown action 'encrypt'"),
        ('{"persons": {"address..street": "mask"}}', "bad attribute path 'address..street'"),
        ('{"persons": {".email": "mask"}}', "bad attribute path"),
        ('{"persons": {"": "mask"}}', "empty attribute path"),
        ('{"persons": {"address": "drop", "address.street": "mask"}}', "lies inside 'address'"),
    ],
)
def test_a_bad_policy_fails_at_start_with_a_clear_error(config: str, message: str) -> None:
    with pytest.raises(PrivacyPolicyError, match=message):
        PrivacyPolicy(config, KEY)
    with pytest.raises(ValidationError, match=message):
        ChangelakeSettings(privacy_policy=config)


def test_a_hash_rule_needs_a_long_enough_key_but_mask_and_drop_do_not() -> None:
    with pytest.raises(PrivacyPolicyError, match="CHANGELAKE_PRIVACY_KEY"):
        PrivacyPolicy({"persons": {"email": "hash"}}, None)
    with pytest.raises(PrivacyPolicyError, match="at least 32"):
        PrivacyPolicy({"persons": {"email": "hash"}}, b"short")
    assert PrivacyPolicy({"persons": {"email": "mask", "x": "drop"}}, None).covers("persons")
    settings = ChangelakeSettings(privacy_policy=sample_policy())
    with pytest.raises(PrivacyPolicyError, match="no key"):
        privacy_policy(settings)
    keyed = ChangelakeSettings(privacy_policy=sample_policy(), privacy_key=KEY.decode())
    resolved = privacy_policy(keyed)
    assert resolved is not None
    assert resolved.rules == {"persons": {"birthday": "mask", "emails": "hash", "phone": "hash"}}
    assert privacy_policy(ChangelakeSettings()) is None


def test_hashes_are_equal_for_equal_values_and_differ_with_another_key() -> None:
    one = PrivacyPolicy({"persons": {"email": "hash"}, "orders": {"email": "hash"}}, KEY)
    again = PrivacyPolicy({"persons": {"email": "hash"}}, KEY)
    other = PrivacyPolicy({"persons": {"email": "hash"}}, OTHER_KEY)
    value = "alice@example.org"
    assert one.hash_value(value) == again.hash_value(value)
    assert one.hash_value(value) != other.hash_value(value)
    assert one.hash_value(value) != one.hash_value("bob@example.org")
    assert len(one.hash_value(value)) == 64
    assert value not in one.hash_value(value)
    # Equal numbers hash alike whatever their text; the type is kept (N stays N, B stays B).
    assert one.hash_value(Decimal("1.50")) == one.hash_value(Decimal("1.5"))
    assert isinstance(one.hash_value(Decimal("7")), Decimal)
    assert one.hash_value(Decimal("7")) < 2**96
    assert len(one.hash_value(b"\x00\x01")) == 32
    assert one.hash_value({"a", "b"}) == {one.hash_value("a"), one.hash_value("b")}
    assert one.hash_value([True, None]) == [True, None]
    # The version names the rules and the key's identity, never the key.
    assert one.version("persons") == again.version("persons") != other.version("persons")
    assert KEY.decode() not in str(one.metadata("persons"))


def test_mask_keeps_type_and_shape() -> None:
    assert mask_value("secret") == MASK_TEXT
    assert mask_value(Decimal("19850314")) == Decimal(0)
    assert mask_value(b"\x01") == b"*"
    assert mask_value(True) is False
    assert mask_value(None) is None
    assert mask_value({"a", "b", "c"}) == {"***0", "***1", "***2"}
    assert mask_value({Decimal(5), Decimal(6)}) == {Decimal(0), Decimal(1)}
    assert mask_value(["x", Decimal(1)]) == [MASK_TEXT, Decimal(0)]
    assert mask_value({"street": "x", "no": Decimal(2)}) == {"street": MASK_TEXT, "no": Decimal(0)}


def test_record_rules_apply_to_keys_images_nested_paths_and_lists() -> None:
    policy = PrivacyPolicy(
        {
            "persons": {
                "pk": "hash",
                "emails": "hash",
                "birthday": "mask",
                "address.street": "drop",
                "contacts.phone": "mask",
            }
        },
        KEY,
    )
    person = {
        "pk": "person-1",
        "emails": {"a@x.org", "b@y.org"},
        "birthday": "1980-01-01",
        "address": {"street": "Main St 1", "city": "Springfield"},
        "contacts": [{"phone": "555-1", "kind": "home"}, "555-2"],
        "other": "kept",
    }
    redacted, redaction = policy.redact_bytes(_record("INSERT", new=person))
    assert redaction is not None
    assert redaction.error is None
    record = orjson.loads(redacted)
    image = ddb_json.deserialize_image(record["dynamodb"]["NewImage"])
    keys = ddb_json.deserialize_image(record["dynamodb"]["Keys"])
    assert keys == {"pk": policy.hash_value("person-1")}
    assert image["pk"] == keys["pk"]
    assert image["emails"] == {policy.hash_value("a@x.org"), policy.hash_value("b@y.org")}
    assert image["birthday"] == MASK_TEXT
    assert image["address"] == {"city": "Springfield"}
    # Through a list: maps get the rule, a non-map where a map was expected gets its action.
    assert image["contacts"] == [{"phone": MASK_TEXT, "kind": "home"}, MASK_TEXT]
    assert image["other"] == "kept"
    assert record[RECORD_MARKER] == policy.version("persons")
    for clear in ("person-1", "a@x.org", "1980-01-01", "Main St 1", "555-1", "555-2"):
        assert clear.encode() not in redacted


def test_keys_hash_the_same_in_every_table_so_joins_and_current_work() -> None:
    policy = PrivacyPolicy({"persons": {"pk": "hash"}, "orders": {"pk": "hash"}}, KEY)
    person = policy.decode(_record("INSERT", new={"pk": "p-1"}), POS)
    order = policy.decode(_record("INSERT", new={"pk": "p-1"}, table="orders"), POS)
    assert isinstance(person, ChangeEvent)
    assert isinstance(order, ChangeEvent)
    assert (
        person.item_key == order.item_key == orjson.dumps({"pk": policy.hash_value("p-1")}).decode()
    )
    scanned = policy.redact_image("persons", {"pk": {"S": "p-1"}})  # a Scan item: DynamoDB JSON
    assert scanned == {"pk": {"S": policy.hash_value("p-1")}}


def test_changed_attributes_come_from_the_clear_values() -> None:
    policy = PrivacyPolicy(
        {
            "persons": {
                "birthday": "mask",
                "address.street": "drop",
                "phone": "hash",
                "gone": "drop",
            }
        },
        KEY,
    )
    old = {
        "pk": "p",
        "birthday": "1980-01-01",
        "address": {"street": "A", "city": "C"},
        "phone": "1",
        "gone": Decimal(1),
        "n": Decimal("1.0"),
    }
    new = {
        **old,
        "birthday": "1980-01-02",
        "address": {"street": "B", "city": "C"},
        "gone": Decimal(2),
        "n": Decimal(1),
    }
    event = policy.decode(_record("MODIFY", new=new, old=old), POS)
    assert isinstance(event, ChangeEvent)
    assert event.changed_attributes == ("address", "birthday", "gone")
    assert event.new_image is not None
    assert "gone" not in event.new_image
    unchanged = policy.decode(_record("MODIFY", new=old, old=old), POS)
    assert isinstance(unchanged, ChangeEvent)
    assert unchanged.changed_attributes == ()
    insert = policy.decode(_record("INSERT", new=new), POS)
    assert isinstance(insert, ChangeEvent)
    assert insert.changed_attributes == ("address", "birthday", "gone", "n", "phone", "pk")


def test_bad_records_are_quarantined_without_their_clear_values() -> None:
    policy = PrivacyPolicy({"persons": {"pk": "hash", "phone": "hash", "id": "mask"}}, KEY)
    # A bad value under a rule: quarantined (not accepted because the policy rewrote it),
    # and the reason names the path only (the codec's reason would quote the value).
    bad = _record("INSERT", new={"pk": "p-9"}, phone={"N": "555-0100"})
    failure = policy.decode(bad, POS)
    assert isinstance(failure, DecodeFailure)
    assert (
        failure.reason
        == "$.dynamodb.NewImage.phone: not a valid DynamoDB value (privacy policy: hash)"
    )
    assert b"555-0100" not in failure.raw
    assert b"p-9" not in failure.raw
    # A bad value elsewhere: the codec's reason, on the redacted bytes.
    other = policy.decode(_record("INSERT", new={"pk": "p-9", "phone": "555"}, x={"N": "x"}), POS)
    assert isinstance(other, DecodeFailure)
    assert b"p-9" not in other.raw
    assert b'"555"' not in other.raw
    # Unreadable bytes of a covered stream: masked whole (length and keyed digest only).
    for raw in (
        b"not json p-9 555-0100",
        b'{"tableName": "persons", "dynamodb": {"NewImage": "p-9"}}',
    ):
        unreadable = policy.decode(raw, POS)
        assert isinstance(unreadable, DecodeFailure)
        assert b"p-9" not in unreadable.raw
        assert orjson.loads(unreadable.raw)["length"] == len(raw)
    # ... unless the stream belongs to a table the policy does not cover.
    assert policy.redact_bytes(b"not json", "orders") == (b"not json", None)
    # Keys can only be hashed: masking one would merge every item into one.
    masked_key = policy.decode(_record("INSERT", new={"pk": "p", "id": "i"}), POS)
    assert isinstance(masked_key, ChangeEvent)
    key_rule = PrivacyPolicy({"persons": {"pk": "mask"}}, None).decode(
        _record("INSERT", new={"pk": "p"}), POS
    )
    assert isinstance(key_rule, DecodeFailure)
    assert "keys can only be hashed" in key_rule.reason
