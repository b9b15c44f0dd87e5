"""`changelake redrive`: re-process quarantined records, or move catalog dead letters back."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Annotated

import typer

from changelake_cli import errors

USAGE_OR_INFRA = 2


def register(app: typer.Typer) -> None:
    """Add ``redrive`` to the CLI."""

    @app.command("redrive")
    def redrive(
        source: Annotated[
            str,
            typer.Option(help="consumer-errors, firehose-errors or catalog-dlq"),
        ],
        since: Annotated[
            str | None,
            typer.Option(help="Only what was quarantined from then on: ISO time or 30m, 2h, 1d"),
        ] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Say what would happen; write nothing")
        ] = False,
        output: Annotated[str, typer.Option("--format", help="text or json")] = "text",
    ) -> None:
        """Re-drive quarantined records with today's code and settings (exactly once)."""
        from changelake.logs import configure_logging
        from changelake.settings import ChangelakeSettings

        from changelake_cli.ops.redrive import redrive_from_settings

        with errors.exit_on_failure(USAGE_OR_INFRA):
            configure_logging(ChangelakeSettings().log_level)
            summary = redrive_from_settings(source, since, dry_run=dry_run)
        doc = dataclasses.asdict(summary)
        if output == "json":
            sys.stdout.write(json.dumps(doc) + "\n")
            return
        verb = "would land" if dry_run else "landed"
        typer.echo(
            f"{summary.source}: {summary.records} record(s) read, {summary.landed} {verb}, "
            f"{summary.still_failing} still failing"
            + (
                f", {summary.messages_moved} message(s) moved back"
                if summary.messages_moved
                else ""
            )
        )
        for key in summary.objects_written:
            typer.echo(f"  {key}")
        for reason, count in sorted(summary.reasons.items()):
            typer.echo(f"  still failing {count}x: {reason}")
