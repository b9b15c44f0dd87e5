"""The benchmark record generator: deterministic, realistic size, every type, valid history."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest
from changelake.events import ChangeEvent, decode_record
from changelake_bench.consumer_paths import _Daemon, kcl_messages
from changelake_bench.records import generate, records
from changelake_bench.report import Target, ratio

pytestmark = pytest.mark.unit


def _type_keys(value: object, out: set[str]) -> None:
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, inner),) = value.items()
            if tag in {"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"}:
                out.add(tag)
                _type_keys(inner, out)
                return
        for v in value.values():
            _type_keys(v, out)
    elif isinstance(value, list):
        for v in value:
            _type_keys(v, out)


def test_generate_same_bytes_when_same_seed() -> None:
    assert records(500, seed=3) == records(500, seed=3)
    assert records(500, seed=3) != records(500, seed=4)


def test_generate_mean_size_near_650_bytes_when_many_records() -> None:
    sizes = [len(raw) for raw, _ in records(5000)]
    assert 600 <= sum(sizes) / len(sizes) <= 720


def test_generate_every_ddb_type_and_kind_when_many_records() -> None:
    types: set[str] = set()
    kinds: Counter[str] = Counter()
    ttl = 0
    for raw, _ in records(3000):
        doc = orjson.loads(raw)
        kinds[doc["eventName"]] += 1
        ttl += doc["userIdentity"] is not None
        _type_keys(doc["dynamodb"], types)
    assert types == {"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"}
    assert set(kinds) == {"INSERT", "MODIFY", "REMOVE"}
    assert ttl > 0


def test_generate_decodes_strictly_with_consistent_history() -> None:
    # Every record passes the shared strict decoder; MODIFY/REMOVE only touch live items.
    live: set[str] = set()
    for change in generate(2000, seed=11):
        event = decode_record(change.data, change.position)
        assert isinstance(event, ChangeEvent), event
        pk = event.keys["pk"]
        if event.event_name == "INSERT":
            assert pk not in live
            live.add(pk)
        else:
            assert pk in live
            if event.event_name == "REMOVE":
                live.remove(pk)


def test_generate_event_times_within_span_and_ordered() -> None:
    changes = list(generate(1000, start_us=1_700_000_000_000_000, span_us=60_000_000))
    times = [c.event_time_us for c in changes]
    assert times == sorted(times)
    assert times[0] >= 1_700_000_000_000_000
    assert times[-1] < 1_700_000_060_000_000


def test_daemon_answers_checkpoint_then_feeds_next_message() -> None:
    lines = kcl_messages(records(3), batch=2, shard_id="shardId-1")
    assert [orjson.loads(x)["action"] for x in lines] == [
        "initialize",
        "processRecords",
        "processRecords",
        "shutdownRequested",
    ]
    daemon = _Daemon(lines)
    assert orjson.loads(daemon.readline())["action"] == "initialize"
    daemon.write('\n{"action": "checkpoint", "sequenceNumber": "42"}\n')
    assert orjson.loads(daemon.readline()) == {
        "action": "checkpoint",
        "sequenceNumber": "42",
        "subSequenceNumber": None,
        "error": None,
    }
    assert orjson.loads(daemon.readline())["action"] == "processRecords"
    assert daemon.checkpoints == ["42"]


def test_target_and_ratio_judge_values() -> None:
    assert Target("x", ">=", 10).check(10.0) is True
    assert Target("x", "<=", 2).check(2.5) is False
    assert Target("x", "<=", 2).check(None) is None
    assert ratio(30.0, 3.0) == 10.0
    assert ratio(None, 3.0) is None
    assert ratio(3.0, 0.0) is None
