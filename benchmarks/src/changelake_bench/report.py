"""Benchmark results: one shape for every bench, rendered as a rich table or one JSON object.

JSON shape (one object per bench)::

    {"bench": name, "machine": {...}, "params": {...},
     "ours": {...}, "baseline": {...}, "ratio": {...},
     "targets": {metric: {"target": text, "value": v, "pass": bool | null}}, "notes": [...]}
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True, slots=True)
class Target:
    """A goal for one metric: ``value op threshold`` (op is ``>=`` or ``<=``)."""

    metric: str
    op: str
    threshold: float
    unit: str = ""

    def check(self, value: float | None) -> bool | None:
        """Whether ``value`` meets the goal; ``None`` when there is nothing to judge."""
        if value is None:
            return None
        return value >= self.threshold if self.op == ">=" else value <= self.threshold

    @property
    def text(self) -> str:
        """Human form, e.g. ``>= 10x``."""
        return f"{self.op} {_fmt(self.threshold)}{self.unit}"


@dataclass(frozen=True, slots=True)
class Row:
    """One table line: a metric with our value, the baseline's, the ratio and an optional goal."""

    metric: str
    ours: float | str | None
    baseline: float | str | None = None
    ratio: float | None = None
    target: Target | None = None
    judged: float | None = None  # the value the target applies to (ratio or ours)


@dataclass
class BenchResult:
    """Everything one bench measured."""

    bench: str
    params: dict[str, Any]
    ours: dict[str, Any]
    baseline: dict[str, Any]
    ratio: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    machine: dict[str, Any] | None = None  # taken when the bench started (load average)

    def targets(self) -> dict[str, Any]:
        """Each goal with the value it was judged on and pass/fail."""
        out: dict[str, Any] = {}
        for row in self.rows:
            if row.target is not None:
                out[row.target.metric] = {
                    "target": row.target.text,
                    "value": row.judged,
                    "pass": row.target.check(row.judged),
                }
        return out

    def to_json(self, machine: dict[str, Any]) -> dict[str, Any]:
        """The JSON object printed by ``--format json``."""
        return {
            "bench": self.bench,
            "machine": self.machine or machine,
            "params": self.params,
            "ours": self.ours,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "targets": self.targets(),
            "table": [
                {
                    "metric": row.metric,
                    "ours": row.ours,
                    "baseline": row.baseline,
                    "ratio": row.ratio,
                    "target": row.target.text if row.target else None,
                    "pass": row.target.check(row.judged) if row.target else None,
                }
                for row in self.rows
            ],
            "notes": self.notes,
        }


def machine_info() -> dict[str, Any]:
    """CPU model, cores, Python and platform of the machine running the bench."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load: list[float] | None
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    mem_gb: float | None = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            mem_gb = round(int(fh.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_avg_at_start": load,
    }


def _fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    return str(value)


def render(result: BenchResult, console: Console) -> None:
    """Print the bench as a rich table with target and pass/fail per metric."""
    table = Table(title=f"changelake bench {result.bench}", title_justify="left")
    for name, justify in (
        ("metric", "left"),
        ("ours", "right"),
        ("baseline", "right"),
        ("ratio", "right"),
        ("target", "right"),
        ("pass", "center"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in result.rows:
        verdict = row.target.check(row.judged) if row.target else None
        mark = "" if row.target is None else ("—" if verdict is None else ("✓" if verdict else "✗"))
        style = "" if verdict is None else ("green" if verdict else "red")
        table.add_row(
            row.metric,
            _fmt(row.ours),
            _fmt(row.baseline),
            "" if row.ratio is None else f"{_fmt(row.ratio)}x",
            row.target.text if row.target else "",
            f"[{style}]{mark}[/]" if style else mark,
        )
    console.print(table)
    params = ", ".join(f"{k}={v}" for k, v in result.params.items())
    console.print(f"[dim]params: {params}[/]")
    for note in result.notes:
        console.print(f"[dim]note: {note}[/]")


def markdown(doc: dict[str, Any]) -> str:
    """One bench's JSON result as a Markdown table (for docs/benchmarks.md)."""
    lines = [
        "| metric | ours | baseline | ratio | target | pass |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    for row in doc.get("table", []):
        verdict = {True: "✓", False: "✗", None: ""}[row["pass"]]
        ratio_text = "" if row["ratio"] is None else f"{_fmt(row['ratio'])}x"
        lines.append(
            f"| {row['metric']} | {_fmt(row['ours'])} | {_fmt(row['baseline'])} | "
            f"{ratio_text} | {row['target'] or ''} | {verdict} |"
        )
    return "\n".join(lines)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator`` rounded to 2 decimals; ``None`` if either is missing or 0."""
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 2)


Progress = Callable[[str], None]
"""A callback that shows what a bench is doing (stderr); benches never print to stdout."""
