"""Smoke test of `changelake bench`: every bench at tiny sizes, JSON shape and data checked.

No timing assertions (timing goals are reported by the benches themselves, never tested).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from changelake_cli.main import app
from typer.testing import CliRunner

pytestmark = pytest.mark.bench

MACHINE_KEYS = {"cpu", "cores", "python", "platform"}


def _run(args: list[str]) -> Any:
    result = CliRunner().invoke(app, ["bench", *args, "--format", "json", "--quiet"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _check_shape(doc: dict[str, Any], bench: str) -> None:
    assert doc["bench"] == bench
    assert doc["machine"].keys() >= MACHINE_KEYS
    assert doc["machine"]["cores"] >= 1
    for key in ("ours", "baseline", "ratio", "params", "targets"):
        assert isinstance(doc[key], dict), key
    for name, target in doc["targets"].items():
        assert target["pass"] in (True, False, None), name
        assert target["target"].startswith(("<=", ">=")), name


def test_bench_consumer_json_shape_tiny() -> None:
    # GIVEN 300 records in batches of 100, WHEN the consumer bench runs, THEN every available
    # path turned exactly the same input into exactly 300 rows.
    doc = _run(["consumer", "--records", "300", "--batch", "100", "--reps", "1", "--no-daemon"])
    _check_shape(doc, "consumer")
    paths = [
        doc["baseline"]["naive"],
        doc["baseline"]["awswrangler"],
        doc["ours"]["direct"],
        doc["ours"]["kcl"],
    ]
    assert doc["baseline"]["naive"]["available"] is True
    assert doc["baseline"]["awswrangler"]["available"] is True
    digests = {p["input_sha256_16"] for p in paths if p["available"]}
    assert len(digests) == 1
    for path in paths:
        if path["available"]:
            assert path["rows_out"] == 300
            assert path["records_per_s"] > 0
    assert {"ours_vs_naive", "ours_vs_awswrangler"} <= doc["ratio"].keys()
    assert "peak_rss_mb" in doc["targets"]
    # The MultiLangDaemon path (Java, ~1 min) is measured by tests/e2e/test_kcl_daemon.py.
    assert doc["ours"]["daemon"] == {
        "path": "ours_daemon",
        "available": False,
        "reason": "skipped (--no-daemon)",
    }


def test_bench_query_json_shape_tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As on a fresh clone running `make bench`: no AWS credentials anywhere (the snapshot part
    # talks to its own moto and must not need any).
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    doc = _run(
        ["query", "--changes", "3000", "--days", "2", "--reps", "1", "--cache-dir", str(tmp_path)]
    )
    _check_shape(doc, "query")
    for q in ("current", "per_hour"):
        assert doc["ours"][q]["rows"] == doc["baseline"][q]["rows"] > 0
        assert doc["ours"][q]["bytes_read"] > 0
        assert doc["baseline"][q]["bytes_read"] > 0
    assert not [n for n in doc["notes"] if n.startswith("MISMATCH")]
    assert doc["baseline"]["per_hour"]["rows"] == 24
    # after compaction: one file per partition-hour read, the same answers (no MISMATCH note)
    after = doc["ours"]["per_hour"]["after_compaction"]
    assert after["files"] == 24 < doc["ours"]["per_hour"]["files"]
    assert after["rows"] == doc["ours"]["per_hour"]["rows"]
    snap = doc["ours"]["current_with_snapshot"]
    assert snap["6h"]["same_answer"] is True
    assert snap["60h"]["same_answer"] is True
    assert 0 < snap["60h"]["bytes_with_snapshot"] < snap["60h"]["bytes_full_history"]
    # the lake is cached: a second run reuses it
    again = _run(
        [
            "query",
            "--changes",
            "3000",
            "--days",
            "2",
            "--reps",
            "1",
            "--cache-dir",
            str(tmp_path),
            "--no-snapshot",
        ]
    )
    assert again["params"]["lake"] == doc["params"]["lake"]
    assert len(list(tmp_path.glob("lake-*"))) == 1


def test_bench_catalog_json_shape_tiny() -> None:
    doc = _run(["catalog", "--partitions", "3", "--objects", "2"])
    _check_shape(doc, "catalog")
    assert doc["ours"]["visible"] == 3
    assert doc["baseline"]["visible"] == 3
    assert doc["baseline"]["glue_calls_by_operation"]["CreatePartition"] == 3
    assert doc["ours"]["glue_calls"] > 0


def test_bench_freshness_json_shape_tiny() -> None:
    doc = _run(["freshness", "--rate", "50", "--seconds", "3"])
    _check_shape(doc, "freshness")
    if doc["ours"].get("available", True):
        assert doc["ours"]["changes_written"] > 0
        assert (
            doc["ours"]["visible"] + doc["ours"]["not_visible_after_drain"]
            == doc["ours"]["changes_written"]
        )
    else:
        assert doc["ours"]["reason"]
