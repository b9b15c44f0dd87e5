"""`changelake produce`: write fake person changes to the tables AWS_ENDPOINT_URL points at."""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table


def produce_command(
    *,
    table: Annotated[
        list[str] | None,
        typer.Option(
            "--table",
            help="Table to write (repeatable) [default: every table of CHANGELAKE_TABLES]",
        ),
    ] = None,
    count: Annotated[int | None, typer.Option(help="Changes to write")] = None,
    duration: Annotated[float | None, typer.Option(help="Or: seconds to keep writing")] = None,
    rate: Annotated[float | None, typer.Option(help="Target changes/s (default: max)")] = None,
    mix: Annotated[
        str, typer.Option(help="Weights, e.g. insert=0.6,update=0.3,delete=0.1")
    ] = "insert=0.6,update=0.3,delete=0.1",
    seed: Annotated[
        int,
        typer.Option(
            help="Seed of the fake data (same seed, same data); the i-th table gets seed + i"
        ),
    ] = 0,
    output: Annotated[str, typer.Option("--format", help="Summary format: text or json")] = "text",
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr")] = True,
) -> None:
    """Write inserts, updates and deletes of fake persons at a rate and mix, to each table
    (all tables at once; --count, --duration and --rate apply to each)."""
    from changelake.logs import configure_logging
    from changelake.settings import ChangelakeSettings, parse_tables
    from changelake_producer.bootstrap import produce_tables
    from changelake_producer.generator import Mix
    from changelake_producer.progress import RichProgressGroup
    from changelake_producer.service import TableMissingError

    settings = ChangelakeSettings()
    configure_logging(settings.log_level)
    if count is None and duration is None:
        raise typer.BadParameter("give --count or --duration", param_hint="--count")
    if output not in ("text", "json"):
        raise typer.BadParameter("use text or json", param_hint="--format")
    try:
        parsed = Mix.parse(mix)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--mix") from exc
    try:
        tables = parse_tables(table) if table else settings.tables
    except ValueError as exc:
        raise typer.BadParameter(
            str(exc).replace("tables entry", "entry"), param_hint="--table"
        ) from exc
    group = RichProgressGroup() if progress else None
    try:
        with group or contextlib.nullcontext():
            summaries = produce_tables(
                tables,
                count=count,
                duration=duration,
                rate=rate,
                mix=parsed,
                seed=seed,
                settings=settings,
                progress=group.bar if group else None,
            )
    except TableMissingError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    for name, summary in summaries.items():
        if output == "json":
            sys.stdout.write(orjson.dumps({"table": name, **summary.to_dict()}).decode() + "\n")
            continue
        shown = Table(title=f"produced into {name}", show_header=False)
        for key, value in summary.to_dict(with_pks=False).items():
            shown.add_row(key, str(value))
        Console().print(shown)


def register(app: typer.Typer) -> None:
    """Add ``changelake produce`` to the CLI."""
    app.command("produce")(produce_command)
