"""Erasure (ADR 0036): after `changelake erase`, no row of the item is in any table, view or
object of the lake, and every other row is exactly as before — also when the erasure crashed at
any step and was run again. A lake written as the pipeline writes it, in moto over HTTP."""

from __future__ import annotations

import base64
import io
import json
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import orjson
import pyarrow.parquet as pq
import pytest
from changelake.adapters.aws import privacy_policy
from changelake.privacy import PrivacyPolicy
from changelake.settings import ChangelakeSettings
from changelake_bench import history_lake
from changelake_bench.history_lake import HistorySpec, hour_of
from changelake_catalog.snapshot import Lake, take_snapshot
from changelake_cli.erase import EraseError, erase, key_schema, lake_item_key, line_item
from changelake_cli.main import app
from changelake_lake.layout import error_object_key
from changelake_lake.query.local_engine import LocalEngine
from typer.testing import CliRunner

pytestmark = pytest.mark.aws

TABLE = "persons"
SPEC = HistorySpec(items=12, hours=4, changes_per_hour=30, records_per_object=10)
Dump = dict[str, Counter[str]]


def _error_objects(lake: Lake, spec: HistorySpec, victims: list[str]) -> None:
    """Quarantined records as the consumer and Firehose write them: one of each item."""
    first: dict[str, bytes] = {}
    for _, _, batch in history_lake.workload(spec):
        for raw, _ in batch:
            first.setdefault(orjson.loads(raw)["dynamodb"]["Keys"]["pk"]["S"], raw)
    consumer = [
        orjson.dumps(
            {"reason": "injected", "data_base64": base64.b64encode(r).decode(), "table": TABLE}
        )
        for r in first.values()
    ]
    key = error_object_key("consumer", TABLE, hour_of(spec, 1), "shardId-000000000000", "1", "9")
    lake.store.put(key, b"\n".join(consumer) + b"\n")
    only_victim = orjson.dumps(
        {"rawData": base64.b64encode(first[victims[0]]).decode(), "errorCode": "X"}
    )
    lake.store.put("errors/firehose/processing-failed/2026-01-05/one", only_victim + b"\n")


def _lake(lake: Lake, spec: HistorySpec, cut: int) -> tuple[Lake, list[str]]:
    """History in changes/ and raw/, error objects, a snapshot; the items in all of them,
    those with most changes first."""
    history_lake.write(spec, lake.store, lake.catalog)
    history_lake.write_raw(spec, lake.store)
    lake.catalog.ensure_raw_table(TABLE)
    counts = Counter(
        orjson.loads(raw)["dynamodb"]["Keys"]["pk"]["S"]
        for _, _, batch in history_lake.workload(spec)
        for raw, _ in batch
    )
    _error_objects(lake, spec, list(counts))
    take_snapshot(lake, TABLE, cut=hour_of(spec, cut), late_check_delay_s=0)
    snapshotted = {
        str(r[0]) for r in LocalEngine().run("SELECT item_key FROM persons_snapshot").rows
    }
    return lake, [pk for pk, _ in counts.most_common() if _key(pk) in snapshotted]


@pytest.fixture
def written(lake: Lake) -> tuple[Lake, list[str]]:
    """The lake of the main test."""
    return _lake(lake, SPEC, 2)


@pytest.fixture
def small(lake: Lake) -> tuple[Lake, list[str]]:
    """A smaller lake for the crash test: one victim per step."""
    return _lake(
        lake, HistorySpec(items=18, hours=3, changes_per_hour=24, records_per_object=12), 2
    )


def _key(pk: str) -> str:
    return json.dumps({"pk": pk}, separators=(",", ":"))


def _rows(engine: LocalEngine, sql: str) -> Counter[str]:
    result = engine.run(sql)
    return Counter(
        orjson.dumps(dict(zip(result.columns, r, strict=True)), default=str).decode()
        for r in result.rows
    )


def dump(lake: Lake) -> Dump:
    """Every row of every table and view (changes, current, history, raw, the snapshot), and
    every line/row of every object in the bucket."""
    engine = LocalEngine()
    days = ", ".join(f"'{d}'" for d in sorted({hour_of(SPEC, h).dt for h in range(SPEC.hours)}))
    found: Dump = {
        "changes": _rows(engine, "SELECT * FROM persons_changes"),
        "current": _rows(engine, "SELECT * FROM persons_current"),
        "history": _rows(engine, "SELECT * FROM persons_history"),
        "raw": _rows(engine, f"SELECT * FROM persons_raw WHERE dt IN ({days})"),
    }
    state = lake.catalog.snapshot_state(TABLE)
    assert state is not None
    found["snapshot"] = _rows(
        engine,
        "SELECT item_key, event_id, event_time, new_image FROM persons_snapshot "
        f"WHERE snapshot_at = '{state.at}'",
    )
    objects: Counter[str] = Counter()
    for key in lake.store.list(""):
        data = lake.store.get(key)
        if key.endswith(".parquet"):
            for value in pq.read_table(io.BytesIO(data), columns=["item_key"])["item_key"]:
                objects[f"{key.split('/')[0]} item {value}"] += 1
        elif not key.endswith(".json") or key.startswith(("raw/", "errors/")):
            for line in data.splitlines():
                item = line_item(line)
                label = item[1] if item else repr(line)
                objects[f"{key.split('/')[0]} line {label}"] += 1
    found["objects"] = objects
    return found


def _needles(pk: str) -> list[str]:
    """How the item's key appears in a dumped row: item_key JSON or DynamoDB JSON, plain or
    escaped inside a string column."""
    return [f'"pk":"{pk}"', f'\\"pk\\":\\"{pk}\\"', f'"S":"{pk}"', f'\\"S\\":\\"{pk}\\"']


def _without(before: Dump, pks: list[str]) -> Dump:
    """``before`` minus every row/line that names one of the items."""
    needles = [n for pk in pks for n in _needles(pk)]
    return {
        name: Counter({k: n for k, n in rows.items() if not any(s in k for s in needles)})
        for name, rows in before.items()
    }


def _assert_gone(after: Dump, pk: str) -> None:
    for name, rows in after.items():
        for row in rows:
            for needle in _needles(pk):
                assert needle not in row, (name, row)


def test_erase_removes_every_row_of_the_item_and_nothing_else(
    written: tuple[Lake, list[str]],
) -> None:
    lake, victims = written
    pk = victims[0]
    before = dump(lake)
    item = lake_item_key(TABLE, _key(pk), key_schema(lake, TABLE), None)
    assert item == _key(pk)
    held = [k for k in before["objects"] if k.endswith(f"item {item}") and k.startswith("changes")]
    assert held  # the victim has rows in changes/, raw/, errors/ and the snapshot
    report = erase(lake, TABLE, item, grace=timedelta(0))
    after = dump(lake)
    _assert_gone(after, pk)
    assert after == _without(before, [pk])
    assert report.change_rows_removed == before["objects"][f"changes item {item}"]
    assert report.change_rows_removed > len(report.partitions) > 1
    assert report.snapshot_rows_removed == 1
    assert report.raw_lines_removed == before["objects"][f"raw line {item}"]
    assert report.error_lines_removed == before["objects"][f"errors line {item}"] > 0
    assert report.error_objects_rewritten  # the consumer's object keeps the other records
    assert report.trash_deleted > 0
    assert report.trash_pending == 0
    # Idempotent: a second run finds nothing and rewrites nothing.
    again = erase(lake, TABLE, item, grace=timedelta(0))
    assert not again.changed
    assert dump(lake) == after


def test_erase_crash_at_every_step_then_rerun(small: tuple[Lake, list[str]]) -> None:
    lake, victims = small
    before = dump(lake)
    steps: list[str] = []
    erase(lake, TABLE, _key(victims[0]), grace=timedelta(0), crash=steps.append)
    names = list(dict.fromkeys(steps))  # every distinct step, in order
    assert {"part-written", "manifest-written", "swapped", "partition-rewritten"} <= set(names)
    assert {"snapshot-written", "snapshot-switched", "raw-object", "errors-object"} <= set(names)
    assert {"trash-deleted", "trash-record-removed"} <= set(names)
    assert len(victims) > len(names)
    for step, pk in zip(names, victims[1:], strict=False):
        with pytest.raises(_CrashError):
            erase(lake, TABLE, _key(pk), grace=timedelta(0), crash=_crash_at(step))
        erase(lake, TABLE, _key(pk), grace=timedelta(0))
    erased = victims[: len(names) + 1]
    after = dump(lake)
    for pk in erased:
        _assert_gone(after, pk)
    assert after == _without(before, erased)


class _CrashError(Exception):
    pass


def _crash_at(step: str) -> Callable[[str], None]:
    def crash(name: str) -> None:
        if name == step:
            raise _CrashError(step)

    return crash


def test_erase_key_must_match_the_key_schema(lake: Lake) -> None:
    history_lake.write(HistorySpec(items=3, hours=1, changes_per_hour=5), lake.store, lake.catalog)
    schema = key_schema(lake, TABLE)
    assert schema == {"pk": "string"}
    with pytest.raises(
        EraseError, match=r"does not match the key schema of table persons \(pk: string\)"
    ):
        lake_item_key(TABLE, '{"id": "p0001"}', schema, None)
    with pytest.raises(EraseError, match="got \\(pk: number\\)"):
        lake_item_key(TABLE, '{"pk": 1}', schema, None)
    with pytest.raises(EraseError, match="not JSON"):
        lake_item_key(TABLE, "pk=p0001", schema, None)
    result = CliRunner().invoke(app, ["erase", "--table", TABLE, "--key", '{"pk": "a", "sk": 1}'])
    assert result.exit_code == 2
    assert "does not match the key schema" in result.stderr


def test_erase_finds_an_item_whose_key_the_privacy_policy_hashes(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHANGELAKE_PRIVACY_POLICY", json.dumps({TABLE: {"pk": "hash"}}))
    monkeypatch.setenv("CHANGELAKE_PRIVACY_KEY", "k" * 40)
    policy = privacy_policy(ChangelakeSettings())
    assert isinstance(policy, PrivacyPolicy)
    spec = HistorySpec(items=4, hours=2, changes_per_hour=10)
    history_lake.write(spec, lake.store, lake.catalog, policy)
    stored = {str(k) for k in LocalEngine().run("SELECT item_key FROM persons_changes").rows}
    pk = "p0001"
    assert _key(pk) not in {s.strip("(),'") for s in stored}  # the lake holds only the hash
    result = CliRunner().invoke(
        app, ["erase", "--table", TABLE, "--key", json.dumps({"pk": pk}), "--grace", "0", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["item_key"] != _key(pk)
    assert report["change_rows_removed"] > 0
    left = LocalEngine().run(
        "SELECT count(*) FROM persons_changes WHERE item_key = ?", [f"'{report['item_key']}'"]
    )
    assert left.rows == [(0,)]
