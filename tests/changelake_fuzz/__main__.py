"""``python -m changelake_fuzz`` (``make fuzz``): both engines, every target, totals.

    PYTHONPATH=tests python -m changelake_fuzz --inputs 100000 [--json] [--work .cache/fuzz]

The input budget is shared: ``--hypothesis-share`` of it (default 10 %) goes to the
property-based runs, split evenly over the properties, the rest to atheris, split evenly over
the targets (one libFuzzer child each, sequentially: CI machines have 2 cores). The corpus in
``WORK/corpus/<target>`` persists between runs, so coverage accumulates; crash inputs are
written to ``WORK/crashes/``. Exit status 1 when any engine found a crash.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from changelake_fuzz import libfuzzer, properties, targets

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fuzz"
"""Regression inputs: every crash fuzzing ever found, per target (replayed in CI)."""
_DONE = re.compile(rb"Done (\d+) runs in (\d+) second")
_COVERAGE = re.compile(rb"cov: (\d+)")


@dataclass
class Run:
    """One engine on one target: how many inputs, what came out, the crashes found."""

    engine: str
    target: str
    inputs: int
    seconds: float
    outcomes: dict[str, int] = field(default_factory=dict)
    coverage: int | None = None
    crashes: list[str] = field(default_factory=list)


def run_hypothesis(name: str, examples: int, work: Path) -> Run:
    """One property for ``examples`` inputs, in this process."""
    target = properties.INPUTS[name][0]
    before = dict(targets.CALLS)
    started = time.monotonic()
    crashes = []
    try:
        properties.run(name, examples)
    except Exception as exc:  # the property's failure, already shrunk: keep it as the crash
        crash = work / "crashes" / f"hypothesis-{name}.txt"
        crash.parent.mkdir(parents=True, exist_ok=True)
        notes = "\n".join(getattr(exc, "__notes__", []))
        crash.write_text("".join(traceback.format_exception(exc)) + "\n" + notes)
        crashes.append(str(crash))
    outcomes = {
        key.split(":", 1)[1]: count - before.get(key, 0)
        for key, count in targets.CALLS.items()
        if key.startswith(f"{target}:") and count > before.get(key, 0)
    }
    return Run(
        "hypothesis",
        name,
        sum(outcomes.values()),
        round(time.monotonic() - started, 1),
        outcomes,
        crashes=crashes,
    )


def prepare_corpus(target: str, work: Path) -> Path:
    """``WORK/corpus/<target>`` with the seeds added (inputs found earlier are kept)."""
    corpus = work / "corpus" / target
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(libfuzzer.seeds(target, FIXTURES)):
        (corpus / f"seed-{i:03d}").write_bytes(seed)
    return corpus


def run_atheris(target: str, runs: int, work: Path, *, max_seconds: int | None = None) -> Run:
    """``runs`` coverage-guided inputs on ``target`` in a libFuzzer child process."""
    corpus = prepare_corpus(target, work)
    dictionary = work / "tokens.dict"
    dictionary.write_text(libfuzzer.dictionary_text())
    crashes = work / "crashes"
    crashes.mkdir(parents=True, exist_ok=True)
    before = set(crashes.iterdir())
    command = [
        sys.executable,
        "-m",
        "changelake_fuzz.libfuzzer",
        target,
        str(corpus),
        f"-runs={runs}",
        f"-dict={dictionary}",
        "-max_len=16384",
        "-timeout=20",
        "-rss_limit_mb=2048",
        f"-artifact_prefix={crashes}/atheris-{target}-",
    ]
    if max_seconds is not None:
        command.append(f"-max_total_time={max_seconds}")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.setdefault("CHANGELAKE_LOG_LEVEL", "ERROR")
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, env=env, check=False)
    seconds = round(time.monotonic() - started, 1)
    log = work / "logs" / f"atheris-{target}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(done.stderr)
    executed = _DONE.search(done.stderr)
    coverage = _COVERAGE.findall(done.stderr)
    found = sorted(str(p) for p in set(crashes.iterdir()) - before)
    if done.returncode != 0 and not found:
        found = [f"exit {done.returncode}, see {log}"]
    return Run(
        "atheris",
        target,
        int(executed.group(1)) if executed else _last_count(done.stderr),
        seconds,
        coverage=int(coverage[-1]) if coverage else None,
        crashes=found,
    )


def _last_count(stderr: bytes) -> int:
    """Inputs run before libFuzzer stopped early (a crash): the last ``#N`` status line."""
    counts = re.findall(rb"^#(\d+)", stderr, re.MULTILINE)
    return int(counts[-1]) if counts else 0


def table(runs: list[Run]) -> str:
    """The totals as a plain-text table."""
    lines = [
        f"{'engine':<11}{'target':<14}{'inputs':>10}{'crashes':>9}{'cov':>7}{'s':>8}  outcomes"
    ]
    for run in runs:
        outcomes = ", ".join(f"{k} {v:,}" for k, v in sorted(run.outcomes.items()))
        lines.append(
            f"{run.engine:<11}{run.target:<14}{run.inputs:>10,}{len(run.crashes):>9}"
            f"{run.coverage or '':>7}{run.seconds:>8}  {outcomes}"
        )
    total = sum(r.inputs for r in runs)
    crashes = sum(len(r.crashes) for r in runs)
    seconds = round(sum(r.seconds for r in runs), 1)
    lines.append(f"{'total':<25}{total:>10,}{crashes:>9}{'':>7}{seconds:>8}")
    lines.extend(f"crash: {c}" for r in runs for c in r.crashes)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run everything, print the totals."""
    parser = argparse.ArgumentParser(prog="python -m changelake_fuzz", description=__doc__)
    parser.add_argument("--inputs", type=int, default=100_000, help="total input budget")
    parser.add_argument("--hypothesis-share", type=float, default=0.1)
    parser.add_argument("--work", type=Path, default=Path(".cache/fuzz"))
    parser.add_argument("--json", action="store_true", help="print the runs as JSON")
    args = parser.parse_args(argv)
    # The transform handler logs a line per failed record: millions of lines on a long run.
    os.environ.setdefault("CHANGELAKE_LOG_LEVEL", "ERROR")
    per_property = max(1, int(args.inputs * args.hypothesis_share) // len(properties.INPUTS))
    per_target = max(
        1, (args.inputs - per_property * len(properties.INPUTS)) // len(targets.TARGETS)
    )
    runs = []
    for name in properties.INPUTS:
        runs.append(run_hypothesis(name, per_property, args.work))
        print(table(runs[-1:]).splitlines()[1], file=sys.stderr, flush=True)
    for target in targets.TARGETS:
        runs.append(run_atheris(target, per_target, args.work))
        print(table(runs[-1:]).splitlines()[1], file=sys.stderr, flush=True)
    if args.json:
        print(orjson.dumps([asdict(r) for r in runs], option=orjson.OPT_INDENT_2).decode())
    else:
        print(table(runs))
    return 1 if any(r.crashes for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
