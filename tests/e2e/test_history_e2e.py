"""``<table>_history`` and the "as of" named queries on a lake the real pipeline wrote.

GIVEN the local stack with the stream's faults (duplicates, reordering, TTL deletes, ms/µs mix)
and the producer writing seeded inserts, updates and deletes, WHEN the lake has caught up,
THEN the history view has exactly the rows a Python oracle computes from the stored changes,
and ``table_as_of`` / ``item_as_of`` at several moments give what a replay of the producer's
own writes up to that moment gives (ADR 0032).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from changelake import ddb_json
from changelake.events import item_key
from changelake.settings import ChangelakeSettings
from changelake_cli.local_stack import LocalStack, free_port
from changelake_lake.query.local_engine import LocalEngine
from changelake_lake.query.model import QueryError
from changelake_lake.query.named import load
from changelake_testsupport.history import history_oracle

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CHANGES = 240
KIND = {"insert": "INSERT", "update": "MODIFY", "delete": "REMOVE"}


def _plain(text: str | None) -> Any:
    """An image's JSON as values (numbers exact, compared by value)."""
    return None if text is None else json.loads(text, parse_float=Decimal, parse_int=Decimal)


def _named(engine: LocalEngine, name: str, **params: str) -> list[dict[str, Any]]:
    query = load(name)
    return engine.run(query.sql("persons"), query.execution_parameters(params)).records()


def test_history_and_as_of_match_a_replay_of_the_producers_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from changelake_emulator.faults import FaultConfig
    from changelake_producer.bootstrap import produce
    from changelake_producer.generator import Mix

    monkeypatch.setenv("CHANGELAKE_LOG_LEVEL", "WARNING")
    settings = ChangelakeSettings()
    faults = FaultConfig(
        seed=5, duplicate_rate=0.1, reorder_window=8, ttl_rate=0.3, precision_mix=True
    )
    with LocalStack(free_port(), settings=settings, faults=faults, precision="MICROSECOND"):
        summary = produce(
            table="persons",
            settings=settings,
            count=CHANGES,
            mix=Mix(0.4, 0.45, 0.15),
            seed=21,
            keep_operations=True,
        )
        engine = LocalEngine(settings.database, region=settings.region)
        deadline = time.monotonic() + 120
        while True:
            try:
                seen = engine.run("SELECT count(DISTINCT event_id) FROM persons_changes").rows
                if int(seen[0][0]) >= summary.total:
                    break
            except QueryError:
                pass  # the catalog has not created the table yet
            assert time.monotonic() < deadline, "the lake never caught up"
            time.sleep(1)
        stored = engine.run(
            "SELECT event_id, item_key, event_name, event_time, sequence_number, shard_id "
            "FROM persons_changes"
        ).records()
        history = engine.run(
            "SELECT item_key, pk, event_id, event_name, new_image, valid_from, valid_to, "
            "is_removed, sequence_number FROM persons_history"
        ).records()

        # THEN the view = the oracle: one row per event id, each with its interval
        assert len(stored) > summary.total  # the stream really duplicated some changes
        assert len(history) == summary.total
        assert {
            r["event_id"]: (r["valid_from"], r["valid_to"], r["is_removed"]) for r in history
        } == history_oracle(stored)

        # AND each item's versions are the producer's operations on it, in order
        versions: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in history:
            versions[row["pk"]].append(row)
        for rows in versions.values():
            rows.sort(key=lambda r: (r["valid_from"], int(r["sequence_number"])))
        ops = defaultdict(list)
        for op in summary.operations:
            ops[op.pk].append(op)
        assert set(versions) == set(ops)
        timeline: list[tuple[datetime, str, Any]] = []  # (valid_from, pk, image or None)
        for pk, item_ops in ops.items():
            assert [KIND[op.kind] for op in item_ops] == [r["event_name"] for r in versions[pk]]
            for op, row in zip(item_ops, versions[pk], strict=True):
                image = None if op.item is None else _plain(ddb_json.image_to_json(op.item))
                assert _plain(row["new_image"]) == image
                timeline.append((row["valid_from"], pk, image))
        timeline.sort(key=lambda t: t[0])

        # AND as of several moments, the table is the replay of the writes up to then
        starts = sorted({t for t, _, _ in timeline})
        moments = [
            starts[0] - timedelta(seconds=1),  # before anything
            starts[len(starts) // 4],  # exactly at a change: valid_from is inclusive
            starts[len(starts) // 2] + timedelta(microseconds=500),
            starts[(3 * len(starts)) // 4] - timedelta(microseconds=500),
            starts[-1] + timedelta(seconds=1),  # after everything
        ]
        for moment in moments:
            replay: dict[str, Any] = {}
            for at, pk, image in timeline:
                if at > moment:
                    break
                replay[pk] = image
            expected = {pk: image for pk, image in replay.items() if image is not None}
            got = _named(engine, "table_as_of", as_of=moment.isoformat(), limit="100000")
            assert {json.loads(r["item_key"])["pk"]: _plain(r["new_image"]) for r in got} == (
                expected
            ), moment
            # item_as_of agrees for an item that lived, one that was deleted, one not yet born
            for pk in sorted(ops)[:5]:
                rows = _named(
                    engine,
                    "item_as_of",
                    item_key=item_key({"pk": pk}),
                    as_of=moment.isoformat(),
                )
                if pk not in replay:
                    assert rows == [], (pk, moment)
                else:
                    (row,) = rows
                    assert row["is_removed"] == (replay[pk] is None)
                    assert _plain(row["new_image"]) == replay[pk]
        assert any(image is None for _, _, image in timeline)  # deletes were replayed
