"""`changelake bench {consumer,query,freshness,catalog,load,all}`: speed measured against peers.

Each bench prints a rich table (metric, ours, baseline, ratio, target, pass) to stdout, or with
``--format json`` exactly one JSON object (``all``: a JSON array of them). Progress goes to
stderr so JSON output stays clean. Targets are goals reported as pass/fail, never exit codes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from changelake_bench.report import BenchResult, machine_info, render

bench_app = typer.Typer(
    name="bench",
    help="Benchmarks against peer designs, measured side by side in the same run.",
    no_args_is_help=True,
)

_err = Console(stderr=True)


class OutputFormat(StrEnum):
    """How results are printed."""

    table = "table"
    json = "json"


FormatOpt = Annotated[
    OutputFormat, typer.Option("--format", help="table (rich) or json (one object per bench)")
]
SeedOpt = Annotated[int, typer.Option(help="Seed of the generated records")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr")]
JsonOutOpt = Annotated[
    Path | None, typer.Option("--json-out", help="Also write the JSON result to this file")
]


def _progress(quiet: bool) -> Any:
    if quiet:
        return None
    return lambda msg: _err.print(f"[dim]{msg}[/]")


@contextlib.contextmanager
def _quiet_logs(quiet: bool) -> Iterator[None]:
    """With --quiet, the services' INFO logs (stderr) are muted for the run, then restored."""
    if not quiet:
        yield
        return
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _emit(
    found: BenchResult | list[BenchResult], fmt: OutputFormat, json_out: Path | None = None
) -> None:
    """Print one bench's result (a JSON object) or several (``all``: a JSON array)."""
    machine = machine_info()
    results = found if isinstance(found, list) else [found]
    docs = [r.to_json(machine) for r in results]
    text = json.dumps(docs if isinstance(found, list) else docs[0], default=str)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(text + "\n", encoding="utf-8")
    if fmt is OutputFormat.json:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return
    console = Console()
    for result in results:
        m = result.machine or machine
        console.print(
            f"[dim]machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
            f"{m['platform']}, load at start {m['load_avg_at_start']}[/]"
        )
        render(result, console)


def _consumer(
    *,
    records: int,
    batch: int,
    reps: int,
    seed: int,
    profile_dir: Path | None,
    quiet: bool,
    daemon: bool = True,
) -> BenchResult:
    from changelake_bench import consumer

    machine = machine_info()
    with _quiet_logs(quiet):
        result = consumer.run(
            count=records,
            batch=batch,
            reps=reps,
            seed=seed,
            progress=_progress(quiet),
            profile_dir=profile_dir,
            daemon=daemon,
        )
    result.machine = machine
    return result


def _query(
    *,
    changes: int,
    days: int,
    file_minutes: int,
    reps: int,
    seed: int,
    cache_dir: Path,
    quiet: bool,
    snapshot: bool = True,
) -> BenchResult:
    from changelake_bench import query

    machine = machine_info()
    with _quiet_logs(quiet):
        result = query.run(
            changes=changes,
            days=days,
            file_minutes=file_minutes,
            reps=reps,
            seed=seed,
            cache_dir=cache_dir,
            progress=_progress(quiet),
            snapshot=snapshot,
        )
    result.machine = machine
    return result


def _freshness(*, rate: int, seconds: float, writers: int, quiet: bool) -> BenchResult:
    from changelake_bench import freshness

    machine = machine_info()
    with _quiet_logs(quiet):
        result = freshness.run(
            rate=rate, seconds=seconds, writers=writers, progress=_progress(quiet)
        )
    result.machine = machine
    return result


def _catalog(*, partitions: int, objects: int, quiet: bool) -> BenchResult:
    from changelake_bench import catalog

    machine = machine_info()
    with _quiet_logs(quiet):
        result = catalog.run(
            partitions=partitions, objects_per_partition=objects, progress=_progress(quiet)
        )
    result.machine = machine
    return result


@bench_app.command("consumer")
def consumer_cmd(
    *,
    records: Annotated[int, typer.Option(help="Records per repetition")] = 100_000,
    batch: Annotated[int, typer.Option(help="Records per Parquet object")] = 10_000,
    reps: Annotated[int, typer.Option(help="Repetitions (best is kept) after a warm-up")] = 3,
    seed: SeedOpt = 7,
    profile_dir: Annotated[
        Path | None, typer.Option(help="Write a pyinstrument profile of ours here")
    ] = None,
    daemon: Annotated[
        bool,
        typer.Option(help="Also run ours through the real KCL MultiLangDaemon (Java, ~1 min)"),
    ] = True,
    fmt: FormatOpt = OutputFormat.table,
    quiet: QuietOpt = False,
    json_out: JsonOutOpt = None,
) -> None:
    """Records → Parquet bytes, single core: ours vs naive vs awswrangler (and via amazon_kclpy)."""
    result = _consumer(
        records=records,
        batch=batch,
        reps=reps,
        seed=seed,
        profile_dir=profile_dir,
        quiet=quiet,
        daemon=daemon,
    )
    _emit(result, fmt, json_out)


@bench_app.command("query")
def query_cmd(
    *,
    changes: Annotated[int, typer.Option(help="Changes in the seeded lake")] = 1_000_000,
    days: Annotated[int, typer.Option(help="Days the changes span")] = 30,
    file_minutes: Annotated[int, typer.Option(help="Minutes per object, both layouts")] = 15,
    reps: Annotated[int, typer.Option(help="Runs per query (best is kept)")] = 3,
    seed: SeedOpt = 7,
    cache_dir: Annotated[Path, typer.Option(help="Where generated lakes are cached")] = Path(
        ".cache/bench"
    ),
    snapshot: Annotated[
        bool,
        typer.Option(
            help="Also measure the current-state query with a snapshot at 1x and 10x history"
        ),
    ] = True,
    fmt: FormatOpt = OutputFormat.table,
    quiet: QuietOpt = False,
    json_out: JsonOutOpt = None,
) -> None:
    """Our Parquet lake vs Firehose JSON lines on DuckDB: bytes read and seconds; the
    current-state query with a snapshot at 1x and 10x history (bytes must stay flat)."""
    result = _query(
        changes=changes,
        days=days,
        file_minutes=file_minutes,
        reps=reps,
        seed=seed,
        cache_dir=cache_dir,
        quiet=quiet,
        snapshot=snapshot,
    )
    _emit(result, fmt, json_out)


@bench_app.command("freshness")
def freshness_cmd(
    *,
    rate: Annotated[int, typer.Option(help="Changes per second written to DynamoDB")] = 1000,
    seconds: Annotated[float, typer.Option(help="How long to write")] = 30.0,
    writers: Annotated[int, typer.Option(help="Writer threads putting items")] = 4,
    fmt: FormatOpt = OutputFormat.table,
    quiet: QuietOpt = False,
    json_out: JsonOutOpt = None,
) -> None:
    """Embedded pipeline: DynamoDB write → visible in <table>_current, p50/p95/max."""
    _emit(_freshness(rate=rate, seconds=seconds, writers=writers, quiet=quiet), fmt, json_out)


@bench_app.command("catalog")
def catalog_cmd(
    *,
    partitions: Annotated[int, typer.Option(help="New partitions to register")] = 50,
    objects: Annotated[int, typer.Option(help="Objects per partition")] = 4,
    fmt: FormatOpt = OutputFormat.table,
    quiet: QuietOpt = False,
    json_out: JsonOutOpt = None,
) -> None:
    """Catalog service: object written → partition visible in Glue, and Glue calls per partition."""
    _emit(_catalog(partitions=partitions, objects=objects, quiet=quiet), fmt, json_out)


@bench_app.command("load")
def load_cmd(
    *,
    rate: Annotated[int, typer.Option(help="Changes per second written to DynamoDB")] = 2000,
    seconds: Annotated[float, typer.Option(help="How long to write")] = 300.0,
    runner: Annotated[
        str, typer.Option(help="Consumer: kcl (the real MultiLangDaemon, as on ECS) or local")
    ] = "kcl",
    items: Annotated[int, typer.Option(help="Distinct items the changes cycle through")] = 5000,
    writers: Annotated[int, typer.Option(help="Writer threads putting items")] = 4,
    interval: Annotated[float, typer.Option(help="Seconds between two lag samples")] = 5.0,
    profile_dir: Annotated[
        Path | None,
        typer.Option(help="Sample the pipeline process with py-spy; collapsed stacks here"),
    ] = None,
    fmt: FormatOpt = OutputFormat.table,
    quiet: QuietOpt = False,
    json_out: JsonOutOpt = None,
) -> None:
    """Sustained load on the local pipeline: lag over time, freshness, reconcile."""
    from changelake_bench import load

    machine = machine_info()
    with _quiet_logs(quiet):
        result = load.run(
            rate=rate,
            seconds=seconds,
            runner=runner,
            items=items,
            writers=writers,
            interval_s=interval,
            profile_dir=profile_dir,
            progress=_progress(quiet),
        )
    result.machine = machine
    _emit(result, fmt, json_out)


@bench_app.command("all")
def all_cmd(
    *,
    records: Annotated[int, typer.Option(help="consumer: records per repetition")] = 100_000,
    reps: Annotated[int, typer.Option(help="consumer and query: repetitions")] = 3,
    changes: Annotated[int, typer.Option(help="query: changes in the lake")] = 1_000_000,
    days: Annotated[int, typer.Option(help="query: days the changes span")] = 30,
    rate: Annotated[int, typer.Option(help="freshness: changes per second")] = 1000,
    seconds: Annotated[float, typer.Option(help="freshness: seconds of writing")] = 30.0,
    partitions: Annotated[int, typer.Option(help="catalog: new partitions")] = 50,
    cache_dir: Annotated[Path, typer.Option(help="query: lake cache")] = Path(".cache/bench"),
    seed: SeedOpt = 7,
    fmt: FormatOpt = OutputFormat.table,
    quiet: QuietOpt = False,
    json_out: JsonOutOpt = None,
) -> None:
    """Every bench, one after the other (never in parallel: they would disturb each other)."""
    batch = max(1, min(10_000, records))
    results = [
        _consumer(
            records=records, batch=batch, reps=reps, seed=seed, profile_dir=None, quiet=quiet
        ),
        _query(
            changes=changes,
            days=days,
            file_minutes=15,
            reps=reps,
            seed=seed,
            cache_dir=cache_dir,
            quiet=quiet,
        ),
        _freshness(rate=rate, seconds=seconds, writers=4, quiet=quiet),
        _catalog(partitions=partitions, objects=4, quiet=quiet),
    ]
    _emit(results, fmt, json_out)


def register(app: typer.Typer) -> None:
    """Add ``changelake bench …`` to the CLI."""
    app.add_typer(bench_app, name="bench")
