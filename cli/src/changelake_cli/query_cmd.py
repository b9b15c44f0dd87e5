"""`changelake query`: Athena SQL on the local lake (DuckDB) or on Athena, ad hoc or named."""

from __future__ import annotations

import sys
import time
from enum import StrEnum
from typing import Annotated

import typer
from changelake.adapters import aws
from changelake.logs import configure_logging
from changelake_lake.query.model import QueryError, QueryResult
from changelake_lake.query.named import load, load_all
from changelake_lake.query.settings import QuerySettings
from rich.console import Console

from changelake_cli import errors, render


class Engine(StrEnum):
    """Where the SQL runs."""

    local = "local"
    athena = "athena"
    trino = "trino"


class OutputFormat(StrEnum):
    """How rows are printed on stdout."""

    table = "table"
    json = "json"
    csv = "csv"


def run_query(
    *,
    engine: Engine,
    sql: str,
    params: list[str],
    database: str,
    settings: QuerySettings,
) -> QueryResult:
    """Run ``sql`` (``params``: SQL literal texts, one per ``?``) on the chosen engine."""
    if engine is Engine.athena:
        from changelake_lake.adapters.athena_engine import AthenaEngine

        return AthenaEngine(
            database,
            workgroup=settings.athena_workgroup,
            output_location=settings.athena_output_location,
            region=settings.region,
            timeout_s=settings.athena_timeout_s,
            poll_max_s=settings.athena_poll_max_s,
        ).run(sql, params)
    if engine is Engine.trino:
        from changelake_lake.query.trino_engine import TrinoEngine

        if not settings.trino_url:
            raise QueryError(
                "--engine trino needs CHANGELAKE_TRINO_URL (e.g. the URL that "
                "`changelake local up --with-trino` prints)"
            )
        return TrinoEngine(
            settings.trino_url,
            database,
            catalog=settings.trino_catalog,
            user=settings.trino_user,
            timeout_s=settings.trino_timeout_s,
        ).run(sql, params)
    from changelake_lake.query.local_engine import LocalEngine

    return LocalEngine(database, region=settings.region).run(sql, params)


def _pairs(values: list[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise QueryError(f"--param takes name=value, got {item!r}")
        pairs[key.strip()] = value
    return pairs


def register(app: typer.Typer) -> None:
    """Add ``query`` to the CLI."""

    @app.command("query")
    def query(  # noqa: PLR0917 - typer maps each option to a parameter
        sql: Annotated[str | None, typer.Option("--sql", help="Athena SQL text to run")] = None,
        named: Annotated[
            str | None, typer.Option("--named", help="Name of a packaged query (see --list)")
        ] = None,
        param: Annotated[
            list[str] | None,
            typer.Option(
                "--param",
                help="name=value for a named query; with --sql, one SQL literal per ? in order "
                "(e.g. 1='p-42' 2=10)",
            ),
        ] = None,
        engine: Annotated[
            Engine,
            typer.Option(help="local (DuckDB over Glue), athena, or trino (CHANGELAKE_TRINO_URL)"),
        ] = (Engine.local),
        database: Annotated[
            str | None, typer.Option(help="Database of unqualified names [default: changelake]")
        ] = None,
        table: Annotated[
            str | None,
            typer.Option(
                help="DynamoDB table a named query reads [default: the one in CHANGELAKE_TABLES]"
            ),
        ] = None,
        output: Annotated[
            OutputFormat, typer.Option("--format", help="table, json (array of rows) or csv")
        ] = OutputFormat.table,
        workgroup: Annotated[
            str | None,
            typer.Option(help="Athena workgroup [default: CHANGELAKE_ATHENA_WORKGROUP or primary]"),
        ] = None,
        list_named: Annotated[bool, typer.Option("--list", help="List named queries")] = False,
    ) -> None:
        """Run Athena SQL on the local lake (DuckDB, default), on Athena or on Trino."""
        settings = QuerySettings()
        if workgroup is not None:
            settings = settings.model_copy(update={"athena_workgroup": workgroup})
        configure_logging(settings.log_level)
        err = Console(stderr=True)
        out = Console(soft_wrap=False)
        if list_named:
            for name, nq in load_all().items():
                declared = {p.name: p for p in nq.params}
                args = " ".join(
                    f"--param {p.name}=<{p.type}>"
                    + (f" (default {p.default})" if p.default is not None else "")
                    for p in (declared[n] for n in nq.parameter_names())
                )
                out.print(f"[bold]{name}[/bold] {args}", highlight=False)
                out.print(f"    {nq.description}", highlight=False)
            return
        try:
            if (sql is None) == (named is None):
                raise QueryError("give exactly one of --sql or --named")
            pairs = _pairs(param or [])
            if named is not None:
                nq = load(named)
                try:
                    chosen = settings.single_table(table)
                except ValueError as exc:
                    raise QueryError(str(exc)) from exc
                text = nq.sql(chosen)
                literals = nq.execution_parameters(pairs)
            else:
                assert sql is not None
                text, literals = sql, list(pairs.values())
            started = time.monotonic()
            result = run_query(
                engine=engine,
                sql=text,
                params=literals,
                database=database or settings.database,
                settings=settings,
            )
        except QueryError as exc:
            err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
            raise typer.Exit(1) from exc
        except aws.SDK_ERRORS as exc:
            err.print(errors.one_line(exc), markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from exc
        elapsed = time.monotonic() - started
        if output is OutputFormat.json:
            sys.stdout.write(render.to_json(result) + "\n")
        elif output is OutputFormat.csv:
            sys.stdout.write(render.to_csv(result))
        else:
            render.print_table(result, out)
        stats = result.stats
        where = (
            f"{stats.partitions} partition(s), {stats.files} file(s), "
            if engine is Engine.local
            else f"query {result.query_id}, "
        )
        err.print(
            f"[dim]{len(result.rows)} row(s) · {engine.value} · {where}"
            f"{stats.bytes_read:,} bytes scanned · {elapsed:.2f}s[/dim]"
        )
