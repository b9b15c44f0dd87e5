"""Split and merge during a produce run, a ``kill -9`` in between, under the fault oracle.

The stream carries duplicates (the emulator's streaming destination, 10 %); the local runner
is a real process. Shard 0 is split while changes flow, the runner is killed while the parent
and its children are both in flight and restarted, the children are merged, writes go on.

The crashed runner batches exactly (``EXACT_BATCHES``: 40-row flushes, 10-record reads) and
dies at its first checkpoint write once both children carry changes, that write dropped. With
the checkpoint rule kept, the object that write was to cover is durable and must be skipped on
the replay (a replay written again would double it), while every shard's unflushed rows are
read again; with the rule broken, checkpoints already stand past rows still in its buffers
(lost).
Records lie on the parent, both children and the merged shard; the oracle must find each one
stored once (0 lost, 0 duplicated, views and ``changelake reconcile`` clean) and every item's
history must still chain in the view's order (each change's old image is the previous change's
new image): per-key order kept across the reshard.
"""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import boto3
import pyarrow.parquet as pq
import pytest
from changelake_emulator.faults import FaultConfig
from changelake_faults import (
    EXACT_BATCHES,
    SETTINGS,
    TABLE,
    Pipeline,
    ProduceLoop,
    dropped_checkpoint_write,
    objects,
    stream_records,
    wait_reconciled,
    wait_until,
)
from changelake_lake import layout
from changelake_testsupport.resharding import merge, open_shards, split_in_half
from changelake_testsupport.runners import RunnerProcesses

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.timeout(240)]

FAULTS = FaultConfig(seed=23, duplicate_rate=0.1)
COLUMNS = [
    "event_id",
    "event_name",
    "event_time",
    "item_key",
    "old_image",
    "new_image",
    "shard_id",
    "sequence_number",
]


def _on_shard(shard_id: str) -> int:
    return sum(1 for r in stream_records() if r.shard_id == shard_id)


def _chain_breaks() -> tuple[list[str], int]:
    """Items whose changes, deduplicated and ranked as the views rank them (event time, then
    sequence number), do not chain: a change whose old image is not the previous new image.
    Also how many items have more than one change (what the check had to work on)."""
    by_item: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for _key, data in objects(layout.changes_prefix(TABLE)):
        for row in pq.read_table(io.BytesIO(data), columns=COLUMNS).to_pylist():
            by_item[row["item_key"]].setdefault(row["event_id"], row)
    breaks = []
    for item, events in by_item.items():
        ranked = sorted(
            events.values(),
            key=lambda r: (r["event_time"], len(r["sequence_number"]), r["sequence_number"]),
        )
        previous = None
        for row in ranked:
            if row["old_image"] != previous:
                breaks.append(f"{item}: {row['event_name']} {row['event_id']} after {previous}")
            previous = None if row["event_name"] == "REMOVE" else row["new_image"]
    return breaks, sum(1 for events in by_item.values() if len(events) > 1)


def test_split_and_merge_during_a_run_with_a_kill_between_nothing_lost_or_doubled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CHANGELAKE_LEASE_TIMEOUT_S", "0.8")  # the restart takes the leases soon
    with Pipeline(monkeypatch, consumer=False, faults=FAULTS, proxied=("dynamodb",)) as pipe:
        proxy = pipe.fault_proxy()
        kinesis, stream = boto3.client("kinesis"), SETTINGS.stream_name
        crashed = RunnerProcesses(tmp_path / "crashed", env=EXACT_BATCHES)
        runners = RunnerProcesses(tmp_path / "restarted")
        first = crashed.start()
        crashed.wait_started(first)
        writer = ProduceLoop(chunk=20, rate=50).start()
        try:
            parent = open_shards(kinesis, stream)[0]
            wait_until(lambda: _on_shard(parent["ShardId"]) >= 20, 60, "changes on shard 0")
            low, high = split_in_half(kinesis, stream, parent)
            wait_until(
                lambda: min(_on_shard(low["ShardId"]), _on_shard(high["ShardId"])) >= 5,
                60,
                "changes on both children",
            )
            # parent and children both in flight: killed at its next checkpoint write
            crash = proxy.add(dropped_checkpoint_write(first.kill))
            wait_until(lambda: crash.injected == 1, 60, "the crash point")
            first.wait(timeout=10)
            runners.start()
            merged = merge(kinesis, stream, low, high)
            wait_until(
                lambda: _on_shard(merged["ShardId"]) >= 10, 60, "changes on the merged shard"
            )
            writer.stop()
            verdict, took = wait_reconciled(120)
            by_shard = Counter(r.shard_id for r in stream_records() if r.event is not None)
            breaks, chained = _chain_breaks()
        finally:
            writer.stop()
            codes = crashed.stop_all() + runners.stop_all()
        skipped = runners.logs(tail=10**6).count("duplicate_rows_skipped")
    reshaped = [parent["ShardId"], low["ShardId"], high["ShardId"], merged["ShardId"]]
    assert all(by_shard[s] > 0 for s in reshaped), by_shard  # records on every generation
    assert verdict.distinct_events == writer.produced
    assert verdict.valid_records > verdict.distinct_events  # the stream's duplicates, stored once
    assert codes == [-9, 0], codes
    assert skipped >= 1, "the restart re-read nothing already written: no crash between"
    assert not breaks, breaks[:3]
    assert chained >= 10, chained  # items changed more than once: the order had to be kept
    print(
        f"split + merge with a kill between: {verdict.summary()}; records by shard "
        f"{dict(by_shard)}; {chained} items changed more than once, all in order; "
        f"clean {took:.1f} s after the writes"
    )
