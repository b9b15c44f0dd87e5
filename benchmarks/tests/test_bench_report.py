"""Bench output: one JSON object per bench, a JSON array for `all`, a table with pass/fail."""

from __future__ import annotations

import json

import pytest
from changelake_bench.command import OutputFormat, _emit
from changelake_bench.report import BenchResult, Row, Target, markdown, render
from rich.console import Console

pytestmark = pytest.mark.unit


def _result(name: str) -> BenchResult:
    return BenchResult(
        bench=name,
        params={"n": 1},
        ours={"records_per_s": 30.0},
        baseline={"records_per_s": 3.0},
        ratio={"ours_vs_naive": 10.0},
        rows=[Row("records/s", 30.0, 3.0, 10.0, Target("ours_vs_naive", ">=", 10, "x"), 10.0)],
    )


def test_emit_one_object_when_single_bench(capsys: pytest.CaptureFixture[str]) -> None:
    _emit(_result("consumer"), OutputFormat.json)
    doc = json.loads(capsys.readouterr().out)
    assert doc["bench"] == "consumer"
    assert doc["ratio"] == {"ours_vs_naive": 10.0}
    assert doc["targets"]["ours_vs_naive"] == {"target": ">= 10x", "value": 10.0, "pass": True}
    assert {"cpu", "cores", "python", "platform"} <= doc["machine"].keys()


def test_emit_array_when_all(capsys: pytest.CaptureFixture[str]) -> None:
    _emit([_result("consumer"), _result("query")], OutputFormat.json)
    docs = json.loads(capsys.readouterr().out)
    assert [d["bench"] for d in docs] == ["consumer", "query"]


def test_render_shows_target_and_verdict() -> None:
    console = Console(record=True, width=120)
    failing = _result("consumer")
    failing.rows = [Row("records/s", 20.0, 3.0, 6.67, Target("r", ">=", 10, "x"), 6.67)]
    render(failing, console)
    text = console.export_text()
    assert ">= 10x" in text
    assert "✗" in text
    assert "6.67x" in text


def test_markdown_renders_saved_result_table() -> None:
    doc = _result("consumer").to_json({"cpu": "x", "cores": 2, "python": "3", "platform": "p"})
    text = markdown(doc)
    assert "| records/s | 30.00 | 3.00 | 10.00x | >= 10x | ✓ |" in text
