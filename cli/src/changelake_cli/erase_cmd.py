"""`changelake erase`: remove one item's every row from the lake (ADR 0036)."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer

from changelake_cli import errors
from changelake_cli.snapshot_cmd import duration, lake_from_settings, tables_of


def erase(
    key: Annotated[
        str,
        typer.Option(help='The item\'s DynamoDB key as plain JSON, e.g. \'{"pk": "p-00042"}\''),
    ],
    table: Annotated[
        str | None, typer.Option("--table", "-t", help="DynamoDB table (default: the configured)")
    ] = None,
    grace: Annotated[
        str,
        typer.Option(
            help="Keep the replaced objects this long for queries already running (1h, 0); "
            "a later erase or compact run deletes them after it"
        ),
    ] = "1h",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Erase one item: its rows in changes/ (partitions rewritten with an atomic swap), the
    snapshot, and its lines in raw/ and errors/. Idempotent: a second run rewrites nothing."""
    from changelake.adapters import aws
    from changelake.logs import configure_logging
    from changelake.settings import ChangelakeSettings

    from changelake_cli.erase import erase, key_schema, lake_item_key

    settings = ChangelakeSettings()
    configure_logging(settings.log_level)
    (name,) = tables_of(table)
    lake = lake_from_settings()
    with errors.exit_on_failure(2):  # a key that does not fit the table: one line, exit 2
        item = lake_item_key(name, key, key_schema(lake, name), aws.privacy_policy(settings))
    report = erase(lake, name, item, grace=duration(grace))
    if as_json:
        typer.echo(json.dumps({**dataclasses.asdict(report), "changed": report.changed}))
        return
    typer.echo(
        f"table {report.table}, item {report.item_key}: "
        + ("erased" if report.changed else "nothing left to erase")
        + f"\n  changes: {len(report.partitions)} partitions rewritten "
        f"({', '.join(report.partitions) or '-'}), {report.change_rows_removed} rows removed"
        f"\n  snapshot: {report.snapshot or '-'} ({report.snapshot_rows_removed} rows removed), "
        f"dropped: {', '.join(report.snapshots_dropped) or '-'}"
        f"\n  raw: {len(report.raw_objects_rewritten)} objects rewritten, "
        f"{len(report.raw_objects_deleted)} deleted, {report.raw_lines_removed} lines removed"
        f"\n  errors: {len(report.error_objects_rewritten)} objects rewritten, "
        f"{len(report.error_objects_deleted)} deleted, {report.error_lines_removed} lines removed"
        f"\n  replaced objects: {report.trash_deleted} deleted, "
        f"{report.trash_pending} trash records waiting for their grace"
        f"\n  seconds: {report.seconds:.2f}"
    )


def register(app: typer.Typer) -> None:
    """Add ``changelake erase`` to the CLI."""
    app.command("erase")(erase)
