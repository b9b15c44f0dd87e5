"""`changelake backfill`: the items that existed before the stream, as SNAPSHOT rows."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Annotated

import typer

from changelake_cli import errors

USAGE_OR_INFRA = 2


def register(app: typer.Typer) -> None:
    """Add ``backfill`` to the CLI."""

    @app.command("backfill")
    def backfill(
        table: Annotated[
            str | None,
            typer.Option("--table", "-t", help="DynamoDB table [default: every configured one]"),
        ] = None,
        source: Annotated[
            str,
            typer.Option(help="export (ExportTableToPointInTime, needs PITR) or scan (parallel)"),
        ] = "export",
        segments: Annotated[int, typer.Option(help="Parallel Scan segments (--source scan)")] = 4,
        again: Annotated[
            bool, typer.Option("--again", help="Take a new snapshot even if one was done")
        ] = False,
        output: Annotated[str, typer.Option("--format", help="text or json")] = "text",
    ) -> None:
        """Copy the table's items into the lake as SNAPSHOT rows (stream must be ACTIVE)."""
        from changelake.logs import configure_logging
        from changelake.settings import ChangelakeSettings
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        from changelake_cli.ops.backfill import backfill_from_settings

        console = Console(stderr=True)
        bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        task = bar.add_task("backfill", total=None)

        def progress(done: int, expected: int | None) -> None:
            bar.update(task, completed=done, total=expected, description="items")

        def on_wait(status: str) -> None:
            bar.update(task, description=f"export {status.lower()}")

        with errors.exit_on_failure(USAGE_OR_INFRA):
            configure_logging(ChangelakeSettings().log_level)
            with bar:
                summaries = backfill_from_settings(
                    table,
                    source=source,
                    segments=segments,
                    again=again,
                    progress=progress,
                    on_wait=on_wait,
                )
        if output == "json":
            sys.stdout.write(json.dumps([dataclasses.asdict(s) for s in summaries]) + "\n")
            return
        for s in summaries:
            if s.skipped:
                typer.echo(
                    f"{s.table}: already back-filled from {s.source} at {s.snapshot_time} "
                    f"({s.items:,} items); nothing written (--again for a new snapshot)"
                )
                continue
            typer.echo(
                f"{s.table}: {s.items:,} items from {s.source} at {s.snapshot_time}, "
                f"{len(s.objects)} object(s), {s.bytes_written:,} bytes written, "
                f"{s.bytes_read:,} bytes read, {s.seconds:.1f} s"
                + (f", {s.quarantined} refused by the privacy policy" if s.quarantined else "")
            )
