"""`changelake bench load` for 20 s in CI: the real KCL daemon under steady load, nothing lost.

The documented run (2,000 changes/s for 300 s) is a command (README, docs/benchmarks.md); this
one is short and slow enough for a 2-core CI machine, and asserts on the data that came out:
every change DynamoDB accepted is in the lake exactly once as a distinct event, `changelake
reconcile` is clean (current view = Scan, raw = curated event ids, catalog, quarantine), the lag
series was sampled through the run and went back to zero.
"""

from __future__ import annotations

import json

import pytest
from changelake_cli.main import app
from typer.testing import CliRunner

pytestmark = [pytest.mark.bench, pytest.mark.kcl, pytest.mark.timeout(240)]

RATE = 250
SECONDS = 20
# The pipeline keeps up: over write start → drained, the lake receives at least this share of
# the write rate the run achieved (drained within 3x the write time). Relative to the run, so
# a slow machine lowers both; a pipeline that falls ever further behind the writer does not.
KEEP_UP = 0.25


def test_bench_load_20_seconds_through_the_kcl_daemon_loses_nothing() -> None:
    result = CliRunner().invoke(
        app,
        [
            *("bench", "load", "--rate", str(RATE), "--seconds", str(SECONDS)),
            *("--items", "500", "--interval", "5", "--format", "json", "--quiet"),
        ],
    )

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    ours = doc["ours"]
    assert doc["bench"] == "load"
    assert doc["params"]["runner"] == "kcl"
    # The writer really produced load (a quarter of the rate even on a saturated machine).
    assert ours["changes_produced"] >= RATE * SECONDS // 4
    assert ours["lake_rate_per_s"] >= KEEP_UP * ours["achieved_rate_per_s"], ours
    reconcile = ours["reconcile"]
    assert reconcile["produced"] == ours["changes_produced"]
    assert reconcile["lost"] == 0
    assert reconcile["unexpected"] == 0
    assert reconcile["distinct_events"] == ours["changes_produced"]
    assert reconcile["current_equals_scan"] is True
    assert reconcile["current_items"] == reconcile["table_items"] > 0
    # changelake reconcile: items, raw vs curated events, catalog, quarantine all clean.
    assert reconcile["reconcile_clean"] is True
    events = reconcile["reconcile"]["tables"][0]["events"]
    assert events["curated_events"] == events["raw_events"] == ours["changes_produced"]
    assert ours["not_durable_after_drain"] == 0
    # Lag sampled every 5 s through the write (and the drain), ending at zero.
    lag = ours["lag"]
    assert len(lag) >= SECONDS // 5
    assert [s["t_s"] for s in lag] == sorted(s["t_s"] for s in lag)
    assert lag[-1]["lag_changes"] == 0
    assert lag[-1]["produced"] == ours["changes_produced"]
    assert any(s["millis_behind_latest"] is not None for s in lag)  # the KCL's own figure
    assert all(s["load_avg_1m"] >= 0 for s in lag)
    # Where the CPU went, by process (the emulator's process, the writer, the KCL's).
    cpu = ours["cpu_seconds"]
    assert cpu["pipeline"] > 0
    assert cpu["writer"] > 0
    assert cpu["kcl_jvm"] + cpu.get("kcl_processors", 0) > 0
    assert cpu["transform"] > 0  # the transform Lambda ran in its own process (ADR 0047)
    assert cpu["machine_busy"] >= cpu["pipeline"]
    fresh = ours["freshness"]
    assert 0 < fresh["p50_s"] <= fresh["p95_s"] <= fresh["max_s"]
