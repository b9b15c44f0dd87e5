"""`changelake catalog`: run the catalog service, or repair the catalog from the lake."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer

catalog_app = typer.Typer(
    help="Glue catalog of the lake: tables, partitions, schema and views.", no_args_is_help=True
)


@catalog_app.command("run")
def run() -> None:
    """Run the catalog service (S3 events via SQS → Glue) until Ctrl-C."""
    from changelake_catalog.bootstrap import main

    main()


@catalog_app.command("repair")
def repair_cmd(
    table: Annotated[
        str | None, typer.Option("--table", "-t", help="DynamoDB table (default: every table)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """Register every missing table, column, view and partition under changes/ (idempotent)."""
    from changelake.logs import configure_logging
    from changelake_catalog.repair import repair
    from changelake_catalog.settings import CatalogSettings

    settings = CatalogSettings()
    configure_logging(settings.log_level)
    summary = repair(settings, table)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(summary)))
        return
    typer.echo(
        f"tables: {', '.join(summary.tables) or '-'}\n"
        f"objects scanned: {summary.objects} ({summary.invalid_objects} unreadable)\n"
        f"quarantined: {len(summary.quarantined)}"
        + "".join(f"\n  {key} -> quarantine/{key}" for key in summary.quarantined)
        + "\n"
        f"partitions found: {summary.partitions_found}, added: {summary.partitions_added}\n"
        f"tables created: {summary.tables_created}, columns added: {summary.columns_added}\n"
        f"seconds: {summary.seconds:.3f}"
    )


def register(app: typer.Typer) -> None:
    """Add ``changelake catalog …`` to the CLI."""
    app.add_typer(catalog_app, name="catalog")
