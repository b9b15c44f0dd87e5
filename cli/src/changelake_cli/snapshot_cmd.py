"""`changelake snapshot`: the current-state snapshot behind `<table>_current` (ADR 0035).

Wiring only: the snapshot is :mod:`changelake_catalog.snapshot`, which the scheduled
maintenance task also runs after each compaction.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from changelake_catalog.snapshot import Lake


def lake_from_settings() -> Lake:
    """Glue and S3 of the configured lake (``AWS_ENDPOINT_URL``, ``CHANGELAKE_*``)."""
    from changelake_catalog.maintenance import snapshot_lake
    from changelake_catalog.settings import CatalogSettings

    return snapshot_lake(CatalogSettings())


def tables_of(table: str | None) -> list[str]:
    """The tables a maintenance command works on: ``--table`` or the configured ones."""
    from changelake_catalog.maintenance import configured_tables
    from changelake_catalog.settings import CatalogSettings

    return [table] if table else configured_tables(CatalogSettings())


def duration(text: str) -> timedelta:
    """A duration option (``1h``, ``30m``, ``0``), a usage error when it is not one."""
    from changelake.timeutil import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def snapshot(
    table: Annotated[
        str | None, typer.Option("--table", "-t", help="DynamoDB table (default: the configured)")
    ] = None,
    settle: Annotated[
        str,
        typer.Option(
            help="Fold only the partitions before the hour holding now minus this (1h, 30m, 0)"
        ),
    ] = "1h",
    late_check_delay: Annotated[
        float,
        typer.Option(
            help="Seconds to wait after switching the view before re-listing for late data; "
            "must exceed CHANGELAKE_CATALOG_SNAPSHOT_STATE_TTL_SECONDS of the running catalog"
        ),
    ] = 15.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Fold the history into a snapshot of each item's last change; `<table>_current` reads it
    plus only the newer partitions (same answer, flat cost as history grows)."""
    from changelake.logs import configure_logging
    from changelake.settings import ChangelakeSettings
    from changelake_catalog.snapshot import take_snapshot

    configure_logging(ChangelakeSettings().log_level)
    lake = lake_from_settings()
    reports = [
        take_snapshot(lake, t, settle=duration(settle), late_check_delay_s=late_check_delay)
        for t in tables_of(table)
    ]
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(r) for r in reports]))
        return
    for r in reports:
        typer.echo(
            f"table {r.table}: snapshot {r.snapshot_at} covers every change before {r.watermark}\n"
            f"  read: {r.partitions_read} partitions, {r.objects_read} objects, "
            f"{r.bytes_read:,} bytes, {r.rows_read:,} rows\n"
            f"  wrote: {r.items:,} items ({r.live_items:,} live), {r.bytes_written:,} bytes\n"
            f"  last position: {r.max_event_time or '-'} / {r.max_sequence_number or '-'}\n"
            f"  late partitions: {', '.join(r.late_partitions) or '-'}\n"
            f"  dropped snapshots: {', '.join(r.dropped_snapshots) or '-'}\n"
            f"  seconds: {r.seconds:.2f}"
        )


def register(app: typer.Typer) -> None:
    """Add ``changelake snapshot`` to the CLI."""
    app.command("snapshot")(snapshot)
