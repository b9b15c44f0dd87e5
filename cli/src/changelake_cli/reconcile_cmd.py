"""`changelake reconcile`: report every gap between DynamoDB, the raw path, the lake and Glue."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from changelake_cli import errors

USAGE_OR_INFRA = 2


def _text(report: dict[str, Any]) -> str:
    lines = []
    for t in report["tables"]:
        items, events, catalog, quarantine = t["items"], t["events"], t["catalog"], t["quarantine"]
        lines += [
            f"table {t['table']}: {t['gaps']} gap(s)",
            f"  items ({items['mode']}: {items['detail']}): {items['source_items']:,} in DynamoDB,"
            f" {items['view_items']:,} in _current; missing {items['missing']['count']},"
            f" extra {items['extra']['count']}, different {items['different']['count']}",
            f"  events: {events['raw_events']:,} raw, {events['curated_events']:,} curated"
            f" ({events['snapshot_rows']:,} snapshot rows) in {events['partitions']} partition(s);"
            f" missing in curated {events['missing_in_curated']['count']},"
            f" missing in raw {events['missing_in_raw']['count']}",
            f"  catalog: {catalog['objects']:,} object(s) in {catalog['partitions']} partition(s);"
            f" unregistered {catalog['unregistered_partitions']['count']},"
            f" stray objects {catalog['stray_objects']['count']}",
            f"  quarantined: {quarantine['records']} record(s)",
        ]
        for section, name in (
            (items, "missing"),
            (items, "extra"),
            (items, "different"),
            (events, "missing_in_curated"),
            (events, "missing_in_raw"),
            (catalog, "unregistered_partitions"),
            (catalog, "stray_objects"),
        ):
            lines += [f"    {name}: {example}" for example in section[name]["examples"]]
        lines += [f"    {n}x {reason}" for reason, n in quarantine["by_reason"].items()]
    un = report["unattributed_quarantine"]
    lines.append(f"quarantined of no configured table: {un['records']}")
    lines += [f"    {n}x {reason}" for reason, n in un["by_reason"].items()]
    lines.append(f"catalog dead-letter messages: {report['catalog_dlq_messages']}")
    lines.append("clean" if report["clean"] else f"GAPS: {report['gaps']}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add ``reconcile`` to the CLI."""

    @app.command("reconcile")
    def reconcile(  # noqa: PLR0917 - typer maps each option to a parameter
        table: Annotated[
            str | None,
            typer.Option("--table", "-t", help="DynamoDB table [default: every configured one]"),
        ] = None,
        since: Annotated[
            str | None,
            typer.Option(
                help="Only partitions from this time on: ISO date/time (UTC) or 30m, 2h, 1d "
                "(items are always compared in full or by sample)"
            ),
        ] = None,
        output: Annotated[
            str, typer.Option("--format", help="text, or json (the stable report)")
        ] = "text",
        engine: Annotated[
            str, typer.Option(help="Where _current is queried: local, athena or trino")
        ] = "local",
        full_scan_max: Annotated[
            int, typer.Option(help="Above this many items (DescribeTable), compare a sample")
        ] = 200_000,
        sample_items: Annotated[int, typer.Option(help="Items per sample")] = 20_000,
    ) -> None:
        """Report every gap; exit 0 clean, 1 gaps found, 2 usage or infrastructure error."""
        from changelake.logs import configure_logging
        from changelake.settings import ChangelakeSettings

        from changelake_cli.ops.reconcile import reconcile_from_settings

        if output not in ("text", "json"):
            typer.echo(f"error: --format is text or json, got {output!r}", err=True)
            raise typer.Exit(USAGE_OR_INFRA)
        with errors.exit_on_failure(USAGE_OR_INFRA):
            configure_logging(ChangelakeSettings().log_level)
            sql_engine = None
            if engine != "local":
                from changelake_lake.query.settings import QuerySettings

                from changelake_cli.query_cmd import Engine, run_query

                settings = QuerySettings()
                chosen = Engine(engine)

                class _Engine:
                    def run(self, sql: str, params: Any = ()) -> Any:
                        return run_query(
                            engine=chosen,
                            sql=sql,
                            params=list(params),
                            database=settings.database,
                            settings=settings,
                        )

                sql_engine = _Engine()
            report = reconcile_from_settings(
                table,
                since,
                engine=sql_engine,
                full_scan_max_items=full_scan_max,
                sample_items=sample_items,
            )
        doc = report.to_dict()
        if output == "json":
            sys.stdout.write(json.dumps(doc) + "\n")
        else:
            typer.echo(_text(doc))
        raise typer.Exit(report.exit_code)
