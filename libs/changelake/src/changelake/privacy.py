"""The privacy policy: hash, mask or drop chosen attributes before anything reaches the lake.

One implementation, applied by every writer on the *wire record* (the Kinesis-for-DynamoDB
JSON, before it is decoded), so the consumer's rows and images, the Firehose raw lines and the
quarantined records all hold the same redacted values (docs/adr/0027-privacy-policy.md):

* ``hash``: keyed HMAC-SHA256. The type is kept: S → 64 hex characters, N → a 96-bit integer,
  B → the 32-byte digest; sets, lists and maps are hashed member by member (map keys kept).
  Equal values give equal hashes with the same key (joinable across tables and time), nobody
  without the key can test a guess. BOOL and NULL carry one bit and are left as they are.
* ``mask``: a fixed token of the same type (``"***"``, ``0``, ``b"*"``, ``false``); sets keep
  their size (distinct tokens), lists their length, maps their keys.
* ``drop``: the attribute is removed.

Paths are attribute names joined by ``.`` (``email``, ``address.street``); a path through a
list applies to every map in it. A value of another type where the path expects a map gets the
most protective action of the rules below it (drop > mask > hash). Key attributes (``Keys``
and the image's copy) follow the same rules, so ``item_key`` stays consistent; they can only
be hashed. ``changed_attributes`` is computed from the clear values: a masked or dropped
attribute that changed is still reported as changed.

The core stays pure: the key comes in as bytes (an environment variable locally, a Secrets
Manager secret on AWS, resolved by ``changelake.adapters.aws.privacy_policy``).
"""

from __future__ import annotations

import decimal
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Literal, cast

import orjson

from changelake import ddb_json
from changelake.events import (
    ChangeEvent,
    DecodeFailure,
    Position,
    decode_record,
    duplicate_key_error,
)

Action = Literal["hash", "mask", "drop"]
ACTIONS: tuple[Action, ...] = ("hash", "mask", "drop")
_STRENGTH = {"hash": 0, "mask": 1, "drop": 2}
MIN_KEY_BYTES = 32
MASK_TEXT = "***"
MASK_BINARY = b"*"
# Parquet key-value metadata and Glue table parameters naming the policy that wrote an object.
VERSION_PARAMETER = "changelake.privacy.version"
RULES_PARAMETER = "changelake.privacy.rules"
VERSIONS_PARAMETER = "changelake.privacy.versions"
NO_POLICY = "none"
# Top-level field a redacted record carries in raw/ and errors/ (which policy version applied).
RECORD_MARKER = "changelakePrivacy"
_IMAGES = ("Keys", "NewImage", "OldImage")


def sample_policy(*tables: str) -> str:
    """The policy the demo and the local stack run with (the producer's fake persons), the
    same rules for each table (default: ``persons``)."""
    rules = {"emails": "hash", "phone": "hash", "birthday": "mask"}
    return orjson.dumps(dict.fromkeys(tables or ("persons",), rules)).decode()


_CANON = decimal.Context(prec=80)
_MEMO_LIMIT = 65536


class PrivacyPolicyError(ValueError):
    """The policy is unusable (bad JSON, path, action, or a hash rule without a key)."""


Node = dict[str, "Action | Node"]


@dataclass(frozen=True, slots=True)
class Redaction:
    """What redacting one record did: attributes the policy touches, which of them changed."""

    touched: frozenset[str]
    changed: frozenset[str]
    error: str | None = None
    duplicate: str | None = None  # the original text repeats a key (re-encoding would hide it)

    def changed_attributes(self, redacted: Iterable[str]) -> tuple[str, ...]:
        """Changed attributes: the redacted images' answer, corrected by the clear values."""
        return tuple(sorted({a for a in redacted if a not in self.touched} | self.changed))


def parse_rules(config: object) -> dict[str, dict[str, Action]]:
    """Validate ``{table: {path: action}}`` (a mapping or its JSON text); clear errors."""
    if isinstance(config, str | bytes):
        try:
            config = orjson.loads(config)
        except orjson.JSONDecodeError as exc:
            raise PrivacyPolicyError(f"privacy policy is not valid JSON: {exc}") from exc
    if not isinstance(config, Mapping):
        raise PrivacyPolicyError('privacy policy must be an object {"<table>": {"<path>": action}}')
    rules: dict[str, dict[str, Action]] = {}
    for table, paths in config.items():
        if not isinstance(table, str) or not table:
            raise PrivacyPolicyError(f"privacy policy: bad table name {table!r}")
        if not isinstance(paths, Mapping) or not paths:
            raise PrivacyPolicyError(
                f"privacy policy of table {table!r} must be a non-empty object of path → action"
            )
        table_rules: dict[str, Action] = {}
        for path, action in paths.items():
            _check_path(table, path)
            if action not in ACTIONS:
                raise PrivacyPolicyError(
                    f"privacy policy {table}.{path}: unknown action {action!r}"
                    f" (use one of {', '.join(ACTIONS)})"
                )
            table_rules[path] = cast(Action, action)
        _check_overlaps(table, table_rules)
        rules[table] = dict(sorted(table_rules.items()))
    return dict(sorted(rules.items()))


def _check_path(table: str, path: object) -> None:
    if not isinstance(path, str) or not path:
        raise PrivacyPolicyError(f"privacy policy of table {table!r}: empty attribute path")
    if path != path.strip() or any(not part for part in path.split(".")):
        raise PrivacyPolicyError(
            f"privacy policy of table {table!r}: bad attribute path {path!r}"
            " (attribute names joined by '.', e.g. 'address.street')"
        )


def _check_overlaps(table: str, rules: Mapping[str, Action]) -> None:
    for path in rules:
        parts = path.split(".")
        for i in range(1, len(parts)):
            prefix = ".".join(parts[:i])
            if prefix in rules:
                raise PrivacyPolicyError(
                    f"privacy policy of table {table!r}: {path!r} lies inside {prefix!r},"
                    " which already has an action"
                )


def _tree(rules: Mapping[str, Action]) -> Node:
    root: Node = {}
    for path, action in rules.items():
        *parents, leaf = path.split(".")
        node = root
        for part in parents:
            node = cast(Node, node.setdefault(part, {}))
        node[leaf] = action
    return root


def _strongest(node: Action | Node) -> Action:
    if isinstance(node, str):
        return node
    return max((_strongest(n) for n in node.values()), key=_STRENGTH.__getitem__)


class PrivacyPolicy:
    """Rules per table plus the hashing key; immutable, shareable between threads."""

    def __init__(self, rules: object, key: bytes | None = None) -> None:
        self.rules = parse_rules(rules)
        needs_key = any(a == "hash" for t in self.rules.values() for a in t.values())
        if needs_key and key is None:
            raise PrivacyPolicyError(
                "privacy policy hashes attributes but no key is configured: set"
                " CHANGELAKE_PRIVACY_KEY (locally) or CHANGELAKE_PRIVACY_KEY_SECRET"
                " (a Secrets Manager secret id)"
            )
        if key is not None and len(key) < MIN_KEY_BYTES:
            raise PrivacyPolicyError(
                f"privacy key is {len(key)} bytes: use at least {MIN_KEY_BYTES} random bytes"
            )
        self._mac = hmac.new(key, digestmod=hashlib.sha256) if key is not None else None
        key_id = self._digest(b"changelake/key-id").hex()[:16] if self._mac is not None else ""
        self._trees = {t: _tree(r) for t, r in self.rules.items()}
        self._text_hashes: dict[str, str] = {}
        self._versions = {
            table: hashlib.sha256(orjson.dumps([table_rules, key_id])).hexdigest()[:16]
            for table, table_rules in self.rules.items()
        }

    @classmethod
    def from_text(cls, text: str | None, key: bytes | None) -> PrivacyPolicy | None:
        """The policy of a setting's JSON text; ``None`` when the text is empty."""
        if text is None or not text.strip():
            return None
        return cls(text, key)

    def covers(self, table: str) -> bool:
        """Whether the table has rules."""
        return table in self._trees

    def version(self, table: str) -> str:
        """Short fingerprint of the table's rules and the key's identity (never the key)."""
        return self._versions.get(table, NO_POLICY)

    def metadata(self, table: str) -> dict[str, str]:
        """Parquet / object metadata recording which policy wrote data of ``table``."""
        if table not in self.rules:
            return {}
        return {
            VERSION_PARAMETER: self.version(table),
            RULES_PARAMETER: orjson.dumps(self.rules[table]).decode(),
        }

    # -- values ------------------------------------------------------------------------------

    def _digest(self, data: bytes) -> bytes:
        assert self._mac is not None
        mac = self._mac.copy()
        mac.update(data)
        return mac.digest()

    def _hash_text(self, value: str) -> str:
        # Strings repeat (a MODIFY carries most values twice): a bounded memo of their hashes.
        digest = self._text_hashes.get(value)
        if digest is None:
            digest = self._digest(b"S\x00" + value.encode()).hex()
            if len(self._text_hashes) >= _MEMO_LIMIT:
                self._text_hashes.clear()
            self._text_hashes[value] = digest
        return digest

    def hash_value(self, value: Any) -> Any:
        """The keyed hash of a decoded value, of the same DynamoDB type (see module doc)."""
        if isinstance(value, str):
            return self._hash_text(value)
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, Decimal):
            digest = self._digest(b"N\x00" + _canonical_number(value).encode())
            return Decimal(int.from_bytes(digest[:12], "big"))
        if isinstance(value, bytes):
            return self._digest(b"B\x00" + value)
        if isinstance(value, dict):
            return {k: self.hash_value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.hash_value(v) for v in value]
        return {self.hash_value(v) for v in value}

    def _apply(self, action: Action, value: Any) -> Any:
        return self.hash_value(value) if action == "hash" else mask_value(value)

    # -- records -----------------------------------------------------------------------------

    def redact_record(self, record: Any) -> Redaction | None:
        """Apply the policy to a parsed wire record, in place; ``None`` if it has no rules.

        Only ``dynamodb.Keys``/``NewImage``/``OldImage`` hold item data. A record whose
        structure is too broken to find them is the caller's to mask whole
        (:meth:`redact_bytes`); a value under a rule that is not valid DynamoDB JSON makes
        ``error`` (the record must be quarantined) and is masked.
        """
        if not isinstance(record, dict):
            raise UnreadableRecordError
        table = record.get("tableName")
        if not isinstance(table, str):
            raise UnreadableRecordError
        tree = self._trees.get(table)
        if tree is None:
            return None
        ddb = record.get("dynamodb")
        if not isinstance(ddb, dict) or any(
            ddb.get(name) is not None and not isinstance(ddb.get(name), dict) for name in _IMAGES
        ):
            raise UnreadableRecordError
        new, old = ddb.get("NewImage") or {}, ddb.get("OldImage") or {}
        changed = frozenset(a for a in tree if _differs(old.get(a), new.get(a)))
        errors: list[str] = []
        keys = ddb.get("Keys")
        if keys:
            for attr in tree.keys() & keys.keys():
                action = _strongest(tree[attr])
                if action != "hash":
                    errors.append(
                        f"privacy policy would {action} key attribute {attr!r}: keys can only be"
                        " hashed (masking or dropping them merges or loses items)"
                    )
            self._redact_map(keys, tree, "$.dynamodb.Keys", errors)
        for name in ("NewImage", "OldImage"):
            image = ddb.get(name)
            if image:
                self._redact_map(image, tree, f"$.dynamodb.{name}", errors)
        record[RECORD_MARKER] = self.version(table)
        return Redaction(frozenset(tree), changed, errors[0] if errors else None)

    def _redact_map(self, avs: dict[str, Any], tree: Node, path: str, errors: list[str]) -> None:
        for attr, node in tree.items():
            if attr in avs:
                new = self._redact_av(avs[attr], node, f"{path}.{attr}", errors)
                if new is None:
                    del avs[attr]
                else:
                    avs[attr] = new

    def _redact_av(
        self, av: Any, node: Action | Node, path: str, errors: list[str]
    ) -> dict[str, Any] | None:
        """The redacted attribute value, or ``None`` to remove it."""
        if isinstance(node, dict):
            if isinstance(av, dict) and len(av) == 1:
                ((tag, inner),) = av.items()
                if tag == "M" and isinstance(inner, dict):
                    self._redact_map(inner, node, path, errors)
                    return av
                if tag == "L" and isinstance(inner, list):
                    items = []
                    for i, item in enumerate(inner):
                        kept = self._redact_av(item, node, f"{path}[{i}]", errors)
                        if kept is not None:
                            items.append(kept)
                    return {"L": items}
            node = _strongest(node)  # not a map where the rules expect one
        if node != "drop" and type(av) is dict and len(av) == 1:
            # The common cases (S, a string set, a list of strings) without the codec's round trip.
            text = av.get("S")
            if type(text) is str:
                return {"S": self.hash_value(text) if node == "hash" else MASK_TEXT}
            members = av.get("SS")
            if (
                type(members) is list
                and members
                and all(type(m) is str for m in members)
                and len(set(members)) == len(members)
            ):
                return {"SS": sorted(self._apply(node, set(members)))}
            strings = av.get("L")
            if type(strings) is list and all(
                type(i) is dict and len(i) == 1 and type(i.get("S")) is str for i in strings
            ):
                return {"L": [{"S": self._apply(node, i["S"])} for i in strings]}
        try:
            # Validated even when dropped: a record the codec rejects stays rejected.
            value = ddb_json.deserialize_value(av, path)
        except ddb_json.DdbJsonError:
            # The codec's reason may quote the value: only the path goes into the error.
            errors.append(f"{path}: not a valid DynamoDB value (privacy policy: {node})")
            return {"S": MASK_TEXT}
        if node == "drop":
            return None
        return ddb_json.serialize_value(self._apply(node, value), path)

    def redact_bytes(
        self, raw: bytes, expected_table: str | None = None
    ) -> tuple[bytes, Redaction | None]:
        """The record's bytes with the policy applied (compact JSON), and what it did.

        Bytes that cannot be read as a record (not JSON, no table name, broken images) are
        replaced whole by :meth:`masked_placeholder`, unless they come from the stream of an
        ``expected_table`` the policy does not cover.
        """
        try:
            record = orjson.loads(raw)
            duplicate = duplicate_key_error(raw, record)  # on the original text, before redaction
            redaction = self.redact_record(record)
        except (orjson.JSONDecodeError, UnreadableRecordError):
            if expected_table is not None and not self.covers(expected_table):
                return raw, None
            return self.masked_placeholder(raw), None
        if redaction is None:
            return raw, None
        if duplicate is not None:
            redaction = replace(redaction, duplicate=duplicate)
        return orjson.dumps(record), redaction

    def masked_placeholder(self, raw: bytes) -> bytes:
        """What stands in for unreadable bytes: their length and keyed digest, no content."""
        digest = self._digest(b"raw\x00" + raw).hex() if self._mac is not None else None
        return orjson.dumps(
            {RECORD_MARKER: "masked: unreadable record", "length": len(raw), "hmac": digest}
        )

    def redact_image(self, table: str, image: dict[str, Any]) -> dict[str, Any]:
        """A DynamoDB-JSON item (a Scan result) with the table's rules applied (a copy)."""
        tree = self._trees.get(table)
        if tree is None:
            return image
        copy = orjson.loads(orjson.dumps(image))
        errors: list[str] = []
        self._redact_map(copy, tree, "$", errors)
        if errors:
            raise ValueError(errors[0])
        return cast(dict[str, Any], copy)

    def decode(
        self, raw: bytes, position: Position, *, expected_table: str | None = None
    ) -> ChangeEvent | DecodeFailure:
        """The strict codec's decode of the redacted record (the reference path)."""
        redacted, redaction = self.redact_bytes(raw, expected_table)
        return decode_redacted(redacted, redaction, position, expected_table)


class UnreadableRecordError(Exception):
    """The record's structure hides where its item data is: it must be masked whole."""


def decode_redacted(
    redacted: bytes,
    redaction: Redaction | None,
    position: Position,
    expected_table: str | None = None,
) -> ChangeEvent | DecodeFailure:
    """Decode an already redacted record; ``changed_attributes`` from the clear values."""
    if redaction is not None and redaction.duplicate is not None:
        return DecodeFailure(redaction.duplicate, redacted, position)  # as the codec decides
    decoded = decode_record(redacted, position, expected_table=expected_table)
    if redaction is None:
        return decoded
    if isinstance(decoded, DecodeFailure):
        return decoded
    if redaction.error is not None:
        return DecodeFailure(redaction.error, redacted, position, decoded.table)
    return replace(
        decoded, changed_attributes=redaction.changed_attributes(decoded.changed_attributes)
    )


def mask_value(value: Any) -> Any:
    """The fixed token of a decoded value's type, keeping set size, list length and map keys."""
    if isinstance(value, str):
        return MASK_TEXT
    if value is None:
        return None
    if isinstance(value, bool):
        return False
    if isinstance(value, Decimal):
        return Decimal(0)
    if isinstance(value, bytes):
        return MASK_BINARY
    if isinstance(value, dict):
        return {k: mask_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v) for v in value]
    first = next(iter(value))
    if isinstance(first, str):
        return {f"{MASK_TEXT}{i}" for i in range(len(value))}
    if isinstance(first, Decimal):
        return {Decimal(i) for i in range(len(value))}
    return {MASK_BINARY + str(i).encode() for i in range(len(value))}


def _canonical_number(value: Decimal) -> str:
    """One text per DynamoDB number value ("1.0" and "1" hash alike, as they compare equal)."""
    if value.is_zero():
        return "0"
    return str(value.normalize(_CANON))


def _differs(old: Any, new: Any) -> bool:
    """Whether a top-level attribute changed, with the codec's equality (clear values)."""
    if old is None or new is None:
        return (old is None) != (new is None)
    if old == new:
        return False
    try:
        return bool(ddb_json.deserialize_value(old) != ddb_json.deserialize_value(new))
    except ddb_json.DdbJsonError:
        return True
