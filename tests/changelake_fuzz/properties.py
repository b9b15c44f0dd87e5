"""Property-based fuzzing (hypothesis): structured inputs and their mutations → the targets.

Random bytes rarely get past a JSON parser, so these strategies build what really arrives —
DynamoDB-JSON values of every type, real-shaped Kinesis-for-DynamoDB records (through the test
builder), Firehose transformation events, S3 event notifications — then break them the ways a
broken producer does: a node deleted, replaced by other JSON, re-typed, a byte flipped, the text
truncated. Each property runs its target on the result; :func:`run` executes one property for a
number of examples (no pytest needed) and is what both the CI test and ``make fuzz`` call.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote_plus

import hypothesis
import orjson
from changelake_lake import layout
from changelake_testsupport.records import encode, kinesis_dynamodb_record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from changelake_fuzz import targets

# ---- plain JSON and mutations -------------------------------------------------------------

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    _json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _slots(doc: Any) -> list[tuple[Any, Any]]:
    """Every (container, key-or-index) in a JSON document: where a mutation can strike."""
    out: list[tuple[Any, Any]] = []
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            out.extend((node, k) for k in node)
            stack.extend(node.values())
        elif isinstance(node, list):
            out.extend((node, i) for i in range(len(node)))
            stack.extend(node)
    return out


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[Any]) -> bytes:
    """A JSON document from ``base``, broken 0-3 times at the JSON level, then maybe bytes."""
    doc = draw(base)
    for _ in range(draw(st.integers(0, 3))):
        slots = _slots(doc)
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        how = draw(st.sampled_from(["delete", "replace", "stringify", "wrap", "dup-key"]))
        if how == "delete":
            del container[key]
        elif how == "replace":
            container[key] = draw(json_values)
        elif how == "stringify":
            container[key] = orjson.dumps(container[key]).decode()
        elif how == "wrap":
            container[key] = draw(st.sampled_from([[container[key]], {"S": container[key]}]))
        elif isinstance(container, dict):  # a second key that differs only in case
            container[str(key).swapcase()] = container[key]
    raw = orjson.dumps(doc)
    how = draw(st.sampled_from(["keep", "keep", "keep", "truncate", "flip", "duplicate-key"]))
    if how == "truncate" and raw:
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    elif how == "flip" and raw:
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([raw[at] ^ draw(st.integers(1, 255))]) + raw[at + 1 :]
    elif how == "duplicate-key" and raw.startswith(b"{") and len(raw) > 2:
        # The same key twice in one object (a JSON parser keeps the last one silently).
        first_key_end = raw.find(b",")
        if first_key_end > 0:
            raw = raw[:first_key_end] + b"," + raw[1:first_key_end] + raw[first_key_end:]
    return raw


# ---- DynamoDB JSON --------------------------------------------------------------------------

_number_texts = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.integers(-(10**40), 10**40).map(str),
    st.sampled_from(
        [
            "0",
            "-0",
            "1e5",
            ".5",
            "5.",
            "1E-130",
            "1E-131",
            "9.9999999999999999999999999999999999999E+125",
            "1E+126",
            "NaN",
            "Infinity",
            "+1",
            " 1",
            "1_0",
            "٣",
            "0x10",
            "",
            "-",
            "1e",
            "00.100",
        ]
    ),
)
_b64_texts = st.one_of(
    st.binary(max_size=8).map(lambda b: base64.b64encode(b).decode()),
    st.sampled_from(["", "=", "AA", "AA=", "A===", "@@@@", "AAAA\n"]),
)
_wire_scalars = st.one_of(
    st.builds(lambda s: {"S": s}, st.text(max_size=8)),
    st.builds(lambda n: {"N": n}, _number_texts),
    st.builds(lambda b: {"B": b}, _b64_texts),
    st.builds(lambda b: {"BOOL": b}, st.one_of(st.booleans(), _json_scalars)),
    st.builds(lambda n: {"NULL": n}, st.one_of(st.just(True), _json_scalars)),
    st.builds(lambda ss: {"SS": ss}, st.lists(st.text(max_size=4), max_size=3)),
    st.builds(lambda ns: {"NS": ns}, st.lists(_number_texts, max_size=3)),
    st.builds(lambda bs: {"BS": bs}, st.lists(_b64_texts, max_size=3)),
    st.dictionaries(st.sampled_from(["S", "N", "X", "M", "s", ""]), _json_scalars, max_size=2),
)
wire_values = st.recursive(
    _wire_scalars,
    lambda inner: st.one_of(
        st.builds(lambda m: {"M": m}, st.dictionaries(st.text(max_size=5), inner, max_size=3)),
        st.builds(lambda items: {"L": items}, st.lists(inner, max_size=3)),
    ),
    max_leaves=10,
)
wire_images = st.dictionaries(st.text(max_size=6), wire_values, max_size=4)

# ---- plain values → real-shaped records ---------------------------------------------------

_numbers = st.one_of(
    st.integers(-(10**38) + 1, 10**38 - 1),
    st.decimals(
        allow_nan=False, allow_infinity=False, places=4, min_value=-(10**20), max_value=10**20
    ),
    st.sampled_from([Decimal("1E-130"), Decimal("-0"), Decimal("1.50"), Decimal("1E+125")]),
)
_plain_scalars = st.one_of(
    st.text(max_size=8),
    _numbers,
    st.binary(max_size=6),
    st.booleans(),
    st.none(),
    st.sets(st.text(max_size=4), min_size=1, max_size=3),
    st.sets(st.integers(-1000, 1000), min_size=1, max_size=3),
    st.sets(st.binary(max_size=3), min_size=1, max_size=3),
)
plain_values = st.recursive(
    _plain_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_attribute_names = st.one_of(
    st.sampled_from(["name", "age", "emails", "phone", "birthday", "address", "dt", "event_id"]),
    st.text(min_size=1, max_size=6),
)
plain_images = st.dictionaries(_attribute_names, plain_values, max_size=5)
_key_values = st.one_of(
    st.text(min_size=1, max_size=8),
    st.integers(-(10**12), 10**12),
    st.binary(min_size=1, max_size=4),
)
# Event times from 2001 to now (the codec refuses the future, and 13-digit ms start in 2001).
_event_times = st.integers(1_000_000_000_000_000, 1_790_000_000_000_000)


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    """A valid Kinesis-for-DynamoDB record of any kind, with any images."""
    event_name = draw(st.sampled_from(["INSERT", "MODIFY", "REMOVE"]))
    keys = draw(st.dictionaries(st.sampled_from(["id", "sk"]), _key_values, min_size=1))
    new = {**draw(plain_images), **keys} if event_name != "REMOVE" else None
    old = {**draw(plain_images), **keys} if event_name != "INSERT" else None
    precision = draw(st.sampled_from(["MILLISECOND", "MICROSECOND", None]))
    return kinesis_dynamodb_record(
        event_name=event_name,
        keys=keys,
        new_image=new,
        old_image=old,
        event_time_us=draw(_event_times),
        precision=precision,
        event_id=draw(st.sampled_from(["7de3041d-d34e-8c2f-7f4e-2d8f3c1a9b01", "e"])),
        table=draw(st.sampled_from(["persons", "orders", "a.b-c_d"])),
        ttl_delete=event_name == "REMOVE" and draw(st.booleans()),
    )


def _with_wire_image(record: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    """The record with raw DynamoDB JSON (maybe invalid) merged into one of its images."""
    payload = record["dynamodb"]
    name = "NewImage" if "NewImage" in payload else "OldImage"
    payload[name] = {**payload[name], **image}
    return record


record_docs = st.one_of(
    records(),
    st.builds(_with_wire_image, records(), wire_images),
)

# ---- Firehose events ------------------------------------------------------------------------


def _firehose_record(record_id: str, data: bytes, metadata: Any, arrival: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"recordId": record_id, "data": base64.b64encode(data).decode()}
    if metadata is not None:
        entry["kinesisRecordMetadata"] = metadata
    if arrival is not None:
        entry["approximateArrivalTimestamp"] = arrival
    return entry


_metadata = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"shardId": st.just("shardId-000000000000"), "sequenceNumber": st.just("4965")}
    ),
    json_values,
)
firehose_records = st.builds(
    _firehose_record,
    st.text(min_size=1, max_size=12),
    st.one_of(record_docs.map(encode), mutated(record_docs), st.binary(max_size=40)),
    _metadata,
    st.one_of(st.none(), st.integers(0, 2**62), json_values),
)


@st.composite
def firehose_events(draw: st.DrawFn) -> bytes:
    """A transformation event: unique recordIds, or (sometimes) a broken event."""
    entries = draw(st.lists(firehose_records, max_size=5, unique_by=lambda r: r["recordId"]))
    event = {"invocationId": "inv", "records": entries}
    if draw(st.integers(0, 9)) == 0:
        return draw(mutated(st.just(event)))
    return orjson.dumps(event)


# ---- S3 event notifications -----------------------------------------------------------------

_moments = st.datetimes(
    min_value=datetime(2001, 1, 1),  # noqa: DTZ001 - made aware by timezones= below
    max_value=datetime(2099, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@st.composite
def object_keys(draw: st.DrawFn) -> str:
    """A change-object key, a stray object in a partition, or any other key of the bucket."""
    table = draw(st.sampled_from(["persons", "orders", "a.b-c_d"]))
    partition = layout.partition_for(draw(_moments))
    kind = draw(st.sampled_from(["change", "stray", "hidden", "other"]))
    if kind == "change":
        sequences = draw(st.lists(st.integers(0, 10**40).map(str), min_size=2, max_size=2))
        return layout.change_object_key(table, partition, "shardId-000000000001", *sequences)
    prefix = layout.changes_partition_prefix(table, partition)
    if kind == "stray":
        return prefix + draw(st.sampled_from(["part-0.csv", "x y.json", "ü.parquet.tmp"]))
    if kind == "hidden":
        return prefix + draw(st.sampled_from(["_SUCCESS", ".tmp", "hour=00_$folder$"]))
    return draw(st.text(max_size=30))


def _s3_record(event_name: str, bucket: str, key: str, size: Any) -> dict[str, Any]:
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": event_name,
        "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key), "size": size}},
    }


s3_records = st.builds(
    _s3_record,
    st.sampled_from(
        ["ObjectCreated:Put", "ObjectCreated:CompleteMultipartUpload", "ObjectRemoved:Delete"]
    ),
    st.sampled_from([targets.BUCKET, "other-bucket"]),
    object_keys(),
    st.one_of(st.integers(0, 2**40), json_values),
)
notification_bodies = st.one_of(
    st.builds(lambda rs: orjson.dumps({"Records": rs}), st.lists(s3_records, max_size=4)),
    mutated(st.builds(lambda rs: {"Records": rs}, st.lists(s3_records, min_size=1, max_size=3))),
    st.just(b'{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"lake"}'),
    st.binary(max_size=30),
)

# ---- the properties -------------------------------------------------------------------------

INPUTS: dict[str, tuple[str, st.SearchStrategy[bytes]]] = {
    "codec-values": ("codec", st.one_of(wire_values.map(orjson.dumps), mutated(wire_values))),
    "codec-images": ("codec", st.one_of(wire_images.map(orjson.dumps), mutated(wire_images))),
    "record": ("record", st.one_of(record_docs.map(encode), mutated(record_docs))),
    "transform": ("transform", firehose_events()),
    "notification": ("notification", notification_bodies),
}
"""Each property: the target it drives and the strategy of its inputs."""


def run(name: str, examples: int, *, seed: int | None = None) -> None:
    """Run one property for ``examples`` inputs; raise the (shrunk) falsifying example."""
    target_name, inputs = INPUTS[name]
    target: Callable[[bytes], str] = targets.TARGETS[target_name]

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(inputs)
    def check(data: bytes) -> None:
        target(data)

    if seed is not None:
        check = hypothesis.seed(seed)(check)
    check()
