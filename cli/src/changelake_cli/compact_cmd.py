"""`changelake compact`: lake maintenance — compaction with an atomic swap, and retention."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def compact(  # noqa: PLR0917 - typer maps each option to a parameter
    table: Annotated[
        list[str] | None,
        typer.Option("--table", "-t", help="DynamoDB table (repeatable; default: every table)"),
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option(
            help="Only partition-hours that ended this long ago (default "
            "CHANGELAKE_COMPACT_OLDER_THAN, 2h)"
        ),
    ] = None,
    grace: Annotated[
        str | None,
        typer.Option(
            help="Delete replaced objects this long after the swap (default "
            "CHANGELAKE_COMPACT_GRACE, 1h); longer than the longest query"
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be compacted")
    ] = False,
    expire: Annotated[
        bool,
        typer.Option(
            "--expire",
            help="Also drop partitions older than --expire-after from Glue and S3, only those "
            "a current-state snapshot covers (refused without a snapshot)",
        ),
    ] = False,
    expire_after: Annotated[
        str | None,
        typer.Option(help="Age of the partitions --expire drops (default 365d)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summaries as JSON")] = False,
) -> None:
    """Rewrite each sealed partition-hour as one sorted file without duplicates, swapped in
    atomically (one Glue UpdatePartition); replaced objects go after the grace period."""
    from changelake.logs import configure_logging
    from changelake.timeutil import parse_duration
    from changelake_catalog.maintenance import run
    from changelake_catalog.settings import CatalogSettings

    settings = CatalogSettings()
    configure_logging(settings.log_level)
    summaries = run(
        settings,
        table or None,
        older_than=parse_duration(older_than) if older_than is not None else None,
        grace=parse_duration(grace) if grace is not None else None,
        dry_run=dry_run,
        expire=expire,
        expire_after=parse_duration(expire_after) if expire_after is not None else None,
        take_snapshot=False,  # `changelake snapshot` is its own command; the schedule does both
    )
    if as_json:
        typer.echo(json.dumps(summaries))
        return
    for s in summaries:
        verb = "would compact" if s["dry_run"] else "compacted"
        typer.echo(
            f"{s['table']}: {s['partitions_sealed']} sealed partition-hours (ended before "
            f"{s['cutoff']}), {verb} {s['partitions_to_compact']}\n"
            f"  objects read {s['objects_read']}, rows {s['rows_read']} -> {s['rows_written']} "
            f"({s['duplicates_removed']} duplicates removed), files written "
            f"{s['files_written']}, bytes {s['bytes_read']:,} -> {s['bytes_written']:,}\n"
            f"  late objects carried over {s['late_objects_carried_over']}; "
            f"replaced objects deleted {s['objects_deleted']} "
            f"({s['trash_records_pending']} swaps still in their grace period)"
        )
        for p in s["plan"] if s["dry_run"] else []:
            typer.echo(
                f"  dt={p['dt']}/hour={p['hour']}: {p['objects']} objects"
                + (f", {p['late_objects']} late" if p["late_objects"] else "")
            )
        if "expire" in s:
            e = s["expire"]
            typer.echo(
                f"  expired {len(e['partitions_expired'])} partitions before "
                f"{e['expire_before']}; kept {len(e['partitions_kept_not_in_snapshot'])} "
                "not in the snapshot"
            )


def register(app: typer.Typer) -> None:
    """Add ``changelake compact`` to the CLI."""
    app.command("compact")(compact)
