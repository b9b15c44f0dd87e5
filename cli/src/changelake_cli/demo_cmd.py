"""`changelake demo`: the whole pipeline in this process, then real Athena SQL over the lake.

Starts the embedded local stack (moto + streaming destination + Firehose bridge + consumer +
catalog) on a free loopback port, with the faults Kinesis Data Streams for DynamoDB really has
(duplicates, reordering, TTL deletes; µs timestamps), writes ``--count`` person changes shared
out over two tables (``persons`` and ``customers``, one Kinesis stream for both, ADR 0032),
puts a few malformed records on the stream, and polls the lake with the local query engine until
every change is visible as a distinct ``event_id`` and every bad record is quarantined. Then it
runs the named queries, checks each ``<table>_current`` against a Scan of its table, and prints
a summary. Progress goes to stderr; tables (or, with ``--json``, only the summary) to stdout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import typer
from changelake.adapters import aws
from changelake.logs import configure_logging
from changelake.privacy import sample_policy
from changelake.settings import ChangelakeSettings, parse_tables
from changelake_lake.layout import ERRORS, changes_table_name
from changelake_lake.query.model import QueryError, QueryResult
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from changelake_cli import render
from changelake_cli.local_cmd import RUNNER_HELP, require_runner
from changelake_cli.local_stack import free_port
from changelake_cli.stats import percentile

log = logging.getLogger(__name__)

DEFAULT_COUNT = 2000
# Two tables, one stream (ADR 0032): the second holds the same fake persons, other keys.
DEMO_TABLES = ("persons", "customers")
DEFAULT_SEED = 42
BAD_RECORDS = 3
POLL_S = 1.0
CATCH_UP_TIMEOUT_S = 120.0
SHOW_ROWS = 10
MAX_CELL = 40
# Columns the demo prints per named query (the queries return more; `changelake query` shows all).
SHOW_COLUMNS: dict[str, list[str]] = {
    "current_state": ["pk", "name", "address__city", "balance__n", "version__n", "event_time"],
    "item_history": ["event_time", "event_name", "changed_attributes", "is_ttl_delete"],
    "attribute_changes": [
        "event_time",
        "item_key",
        "event_name",
        "changed_by",
        "old_value",
        "new_value",
    ],
}
# Malformed stream records: not JSON, not a DynamoDB record, invalid DynamoDB JSON.
_BAD_PAYLOADS = (
    b"this is not json",
    b'{"eventName": "INSERT", "tableName": "persons"}',
    b'{"awsRegion":"us-east-1","eventID":"bad-n","eventName":"INSERT","userIdentity":null,'
    b'"recordFormat":"application/json","tableName":"persons","eventSource":"aws:dynamodb",'
    b'"dynamodb":{"ApproximateCreationDateTime":1714557600000,"Keys":{"pk":{"S":"x"}},'
    b'"NewImage":{"pk":{"S":"x"},"n":{"N":"not-a-number"}},"SizeBytes":10}}',
)


@dataclass(slots=True)
class TableSummary:
    """One captured table: changes written, distinct events seen, its view vs its Scan."""

    table: str
    changes_produced: int = 0
    distinct_events: int = 0
    current_items: int = 0
    current_equals_dynamodb: bool = False


@dataclass(slots=True)
class DemoSummary:
    """What the demo did and found (the ``--json`` output); counts are over every table."""

    tables: list[TableSummary] = field(default_factory=list)
    changes_produced: int = 0
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    rows_stored: int = 0
    distinct_events: int = 0
    duplicates_removed: int = 0
    duplicates_injected: int = 0
    reordered_records: int = 0
    ttl_deletes: int = 0
    bad_records_sent: int = 0
    bad_records_quarantined: int = 0
    partitions: int = 0
    files: int = 0
    bytes_stored: int = 0
    freshness_p50_s: float | None = None
    freshness_p95_s: float | None = None
    current_items: int = 0
    current_equals_dynamodb: bool = False
    privacy_policy: str | None = None
    privacy_rules: dict[str, str] = field(default_factory=dict)
    caught_up: bool = False
    produce_s: float = 0.0
    elapsed_s: float = 0.0
    queries: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return asdict(self)


class _Visibility:
    """First time each event_id was visible to a query, and its event time."""

    def __init__(self) -> None:
        self.first_seen: dict[str, datetime] = {}
        self.event_time: dict[str, datetime] = {}
        self.per_table: dict[str, set[str]] = {}

    def observe(self, table: str, result: QueryResult, at: datetime) -> None:
        seen = self.per_table.setdefault(table, set())
        for event_id, event_time in result.rows:
            seen.add(event_id)
            if event_id not in self.first_seen:
                self.first_seen[event_id] = at
                self.event_time[event_id] = event_time

    def freshness(self) -> list[float]:
        return [
            max(0.0, (seen - self.event_time[e]).total_seconds())
            for e, seen in self.first_seen.items()
            if isinstance(self.event_time.get(e), datetime)
        ]


def _quarantined(bucket: str) -> int:
    """Bad records the consumer quarantined: lines of the objects under ``errors/consumer/``."""
    s3 = aws.s3()
    lines = 0
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{ERRORS}/consumer/"
    ):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            lines += sum(1 for line in body.splitlines() if line.strip())
    return lines


def _send_bad_records(stream: str, count: int) -> int:
    kinesis = aws.kinesis()
    for i in range(count):
        data = _BAD_PAYLOADS[i % len(_BAD_PAYLOADS)]
        kinesis.put_record(StreamName=stream, Data=data, PartitionKey=f"bad-{i}")
    return count


def _check_services(stack: Any) -> None:
    """The demo needs the consumer and the catalog running in the stack."""
    names = {getattr(s, "name", "") for s in stack.services}
    missing = {"consumer", "catalog"} - names
    if missing:
        raise RuntimeError(f"the local stack runs no {', '.join(sorted(missing))} service")


def run_demo(
    *,
    count: int = DEFAULT_COUNT,
    seed: int = DEFAULT_SEED,
    faults: bool = True,
    bad_records: int = BAD_RECORDS,
    timeout_s: float = CATCH_UP_TIMEOUT_S,
    err: Console | None = None,
    show: Any = None,
    runner: str = "local",
    tables: Sequence[str] = DEMO_TABLES,
) -> DemoSummary:
    """Run the demo with ``count`` changes shared out over ``tables`` (the first takes the
    remainder); ``show(name, title, result)`` receives each named query's rows (the named
    queries read the first table)."""
    from changelake_emulator.faults import FaultConfig
    from changelake_lake.adapters.glue_catalog import GlueCatalog
    from changelake_lake.query.current_check import compare
    from changelake_lake.query.local_engine import LocalEngine
    from changelake_producer.bootstrap import produce_tables

    from changelake_cli.local_stack import LocalStack

    err = err or Console(stderr=True)
    started = time.monotonic()
    settings = ChangelakeSettings().model_copy(update={"tables": parse_tables(tables)})
    table = settings.tables[0]
    summary = DemoSummary(bad_records_sent=bad_records)
    # MICROSECOND precision, as AWS recommends, with a ms/µs mix injected on top: the emulator
    # keeps successive changes of one item in distinct milliseconds (as DynamoDB's serialized
    # writes are), so both renderings normalize to the true order (docs/adr/0003).
    fault_config = (
        FaultConfig(
            seed=seed, duplicate_rate=0.03, reorder_window=8, ttl_rate=0.3, precision_mix=True
        )
        if faults
        else None
    )
    progress = Progress(
        TextColumn("[bold]{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )
    with progress:
        boot = progress.add_task("starting local stack", total=1)
        # The sample privacy policy (hash emails and phone, mask birthday), unless one is set.
        policy_text = settings.privacy_policy or sample_policy(*settings.tables)
        with LocalStack(
            free_port(),
            settings=settings,
            faults=fault_config,
            precision="MICROSECOND",
            privacy_policy=policy_text,
            runner=runner,
        ) as stack:
            privacy = stack.privacy()
            if privacy is not None and privacy.covers(table):
                summary.privacy_policy = privacy.version(table)
                summary.privacy_rules = dict(privacy.rules[table])
            _check_services(stack)
            progress.update(boot, completed=1)
            counts = share(count, settings.tables)
            writing = progress.add_task("writing to DynamoDB", total=count)
            visible = progress.add_task("visible in the lake", total=count)

            class _Bar:
                def start(self, total: int | None) -> None:
                    del total

                def advance(self, n: int) -> None:
                    progress.advance(writing, n)

                def stop(self) -> None:
                    pass

            outcome: dict[str, Any] = {}

            def write() -> None:
                try:
                    outcome["summaries"] = produce_tables(
                        settings.tables,
                        count=counts,
                        seed=seed,
                        settings=settings,
                        progress=lambda _table: _Bar(),
                    )
                except BaseException as exc:  # reported by the main thread
                    outcome["error"] = exc

            producer = threading.Thread(target=write, name="demo-producer", daemon=True)
            producer.start()
            _send_bad_records(settings.stream_name, bad_records)
            catalog = GlueCatalog(settings.lake_bucket, settings.database, region=settings.region)
            engine = LocalEngine(settings.database, catalog=catalog, region=settings.region)
            seen = _Visibility()
            deadline: float | None = None
            quarantined = 0
            while True:
                for name in settings.tables:
                    poll_at = datetime.now(UTC)
                    # Until the catalog has created the table, the query fails: keep polling.
                    with contextlib.suppress(QueryError):
                        seen.observe(
                            name,
                            engine.run(
                                f"SELECT event_id, event_time FROM {changes_table_name(name)}"
                            ),
                            poll_at,
                        )
                progress.update(visible, completed=len(seen.first_seen))
                if not producer.is_alive():
                    if "error" in outcome:
                        raise outcome["error"]
                    produced_total = sum(p.total for p in outcome["summaries"].values())
                    if deadline is None:
                        summary.produce_s = round(
                            max(p.elapsed_s for p in outcome["summaries"].values()), 1
                        )
                        deadline = time.monotonic() + timeout_s
                        progress.update(visible, total=produced_total)
                    if len(seen.first_seen) >= produced_total:
                        quarantined = _quarantined(settings.lake_bucket)
                        if quarantined >= bad_records:
                            summary.caught_up = True
                            break
                    if time.monotonic() > deadline:
                        quarantined = _quarantined(settings.lake_bucket)
                        break
                time.sleep(POLL_S)
            for produced in outcome["summaries"].values():
                summary.changes_produced += produced.total
                summary.inserts += produced.inserts
                summary.updates += produced.updates
                summary.deletes += produced.deletes
            summary.bad_records_quarantined = quarantined
            fresh = seen.freshness()
            p50, p95 = percentile(fresh, 50), percentile(fresh, 95)
            summary.freshness_p50_s = None if p50 is None else round(p50, 2)
            summary.freshness_p95_s = None if p95 is None else round(p95, 2)
            others = len(settings.tables) - 1
            querying = progress.add_task("running named queries", total=8 + 3 * others)

            def tick() -> None:
                progress.advance(querying)

            _named_queries(engine, table, summary, show, tick)
            for other in settings.tables[1:]:
                _table_facts(engine, other, summary, tick)
            summary.current_equals_dynamodb = True
            for name in settings.tables:
                check = compare(engine, name, privacy=privacy)
                tick()
                summary.tables.append(
                    TableSummary(
                        table=name,
                        changes_produced=outcome["summaries"][name].total,
                        distinct_events=len(seen.per_table.get(name, ())),
                        current_items=check.view_items,
                        current_equals_dynamodb=check.equal,
                    )
                )
                summary.current_items += check.view_items
                summary.current_equals_dynamodb &= check.equal
                summary.partitions += len(catalog.locations(name))
            stats = stack.emulator.stats()
            summary.duplicates_injected = stats.duplicates_injected
            summary.reordered_records = stats.out_of_order
    summary.elapsed_s = round(time.monotonic() - started, 1)
    return summary


def share(count: int, tables: Sequence[str]) -> dict[str, int]:
    """``count`` changes shared out over ``tables`` as evenly as possible, the remainder first."""
    base, extra = divmod(count, len(tables))
    return {t: base + (1 if i < extra else 0) for i, t in enumerate(tables)}


def _named_queries(engine: Any, table: str, summary: DemoSummary, show: Any, tick: Any) -> None:
    from changelake_lake.query.named import load

    def run(name: str, title: str, **params: str) -> QueryResult:
        query = load(name)
        result: QueryResult = engine.run(query.sql(table), query.execution_parameters(params))
        summary.queries[name] = len(result.rows)
        if show is not None:
            show(name, title, result)
        tick()
        return result

    run("changes_per_hour", "changes_per_hour — distinct changes per event-time hour")
    run("current_state", "current_state — the latest image of live items", limit=str(SHOW_ROWS))
    busiest = engine.run(
        f"SELECT item_key FROM {changes_table_name(table)} GROUP BY item_key "
        "ORDER BY count(DISTINCT event_id) DESC, item_key LIMIT 1"
    )
    tick()
    if busiest.rows:
        key = str(busiest.rows[0][0])
        run("item_history", f"item_history — every change of {key}", item_key=key)
    run(
        "attribute_changes",
        "attribute_changes — who changed `phone`, and when",
        attribute="phone",
        limit=str(SHOW_ROWS),
    )
    run("deletes_ttl_vs_user", "deletes_ttl_vs_user — TTL versus application deletes")
    _add_storage(
        run("duplicates_seen", "duplicates_seen — rows stored versus distinct events"), summary
    )
    summary.ttl_deletes += _ttl_deletes(engine, table)


def _table_facts(engine: Any, table: str, summary: DemoSummary, tick: Any) -> None:
    """Another table's share of the summary: storage figures and TTL deletes."""
    from changelake_lake.query.named import load

    query = load("duplicates_seen")
    _add_storage(engine.run(query.sql(table), query.execution_parameters({})), summary)
    tick()
    summary.ttl_deletes += _ttl_deletes(engine, table)
    tick()


def _add_storage(dup: QueryResult, summary: DemoSummary) -> None:
    if dup.rows:
        record = dup.records()[0]
        summary.rows_stored += int(record["rows_stored"])
        summary.distinct_events += int(record["distinct_events"])
        summary.duplicates_removed += int(record["duplicate_rows"])
        summary.files += int(record["files"])
        summary.bytes_stored += dup.stats.bytes_read


def _ttl_deletes(engine: Any, table: str) -> int:
    result = engine.run(
        f"SELECT count(DISTINCT event_id) FROM {changes_table_name(table)} "
        "WHERE event_name = 'REMOVE' AND is_ttl_delete"
    )
    return int(result.rows[0][0]) if result.rows else 0


def summary_table(summary: DemoSummary) -> Table:
    """The closing summary as a two-column table."""
    table = Table(title="changelake demo — summary", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")

    def secs(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f} s"

    rows = [
        (
            "tables (one stream)",
            ", ".join(f"{t.table} {t.changes_produced:,}" for t in summary.tables),
        ),
        (
            "changes produced",
            f"{summary.changes_produced:,} ({summary.inserts:,} inserts, "
            f"{summary.updates:,} updates, {summary.deletes:,} deletes)",
        ),
        ("rows stored (Parquet)", f"{summary.rows_stored:,}"),
        ("distinct events", f"{summary.distinct_events:,}"),
        (
            "duplicates removed by the views",
            f"{summary.duplicates_removed:,} "
            f"(stream duplicated {summary.duplicates_injected:,}, "
            f"reordered {summary.reordered_records:,})",
        ),
        ("TTL deletes", f"{summary.ttl_deletes:,}"),
        (
            "bad records quarantined",
            f"{summary.bad_records_quarantined:,} of {summary.bad_records_sent:,} sent",
        ),
        (
            "partitions / files / bytes",
            f"{summary.partitions:,} / {summary.files:,} / {summary.bytes_stored:,}",
        ),
        (
            "freshness write → visible p50 / p95",
            f"{secs(summary.freshness_p50_s)} / {secs(summary.freshness_p95_s)}",
        ),
        (
            "current view = DynamoDB scan",
            ("yes" if summary.current_equals_dynamodb else "NO")
            + " ("
            + ", ".join(
                f"{t.table} {t.current_items:,} items"
                + ("" if t.current_equals_dynamodb else " DIFFERENT")
                for t in summary.tables
            )
            + ")",
        ),
        (
            "privacy policy",
            ", ".join(f"{path} {action}" for path, action in summary.privacy_rules.items())
            + f" (version {summary.privacy_policy})"
            if summary.privacy_policy
            else "none",
        ),
        ("elapsed", f"{summary.elapsed_s:.1f} s (writing {summary.produce_s:.1f} s)"),
    ]
    for what, value in rows:
        table.add_row(what, value)
    return table


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the CLI."""

    @app.command("demo")
    def demo(  # noqa: PLR0917 - typer options
        count: Annotated[
            int,
            typer.Option(
                min=1, help="Person changes to write, over all tables (inserts/updates/deletes)"
            ),
        ] = DEFAULT_COUNT,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print only the summary, as JSON, on stdout")
        ] = False,
        seed: Annotated[int, typer.Option(help="Seed of the data and of the faults")] = (
            DEFAULT_SEED
        ),
        faults: Annotated[
            bool, typer.Option(help="Inject duplicates, reordering and TTL deletes")
        ] = True,
        runner: Annotated[str, typer.Option(help=RUNNER_HELP)] = "local",
        table: Annotated[
            list[str] | None,
            typer.Option(
                "--table",
                help="Table to capture (repeatable; --count is shared out over them) "
                f"[default: {', '.join(DEMO_TABLES)}]",
            ),
        ] = None,
    ) -> None:
        """Run the whole pipeline locally, query it with the named queries, print a summary."""
        require_runner(runner)
        try:
            tables = parse_tables(table) if table else DEMO_TABLES
        except ValueError as exc:
            raise typer.BadParameter(
                str(exc).replace("tables entry", "entry"), param_hint="--table"
            ) from exc
        # The services configure logging from CHANGELAKE_LOG_LEVEL: keep the demo's screen clean.
        os.environ.setdefault("CHANGELAKE_LOG_LEVEL", "WARNING")
        configure_logging(os.environ["CHANGELAKE_LOG_LEVEL"])
        err = Console(stderr=True)
        out = Console()

        def show(name: str, title: str, result: QueryResult) -> None:
            out.print(
                render.to_table(
                    result,
                    title=title,
                    max_rows=SHOW_ROWS,
                    columns=SHOW_COLUMNS.get(name),
                    max_cell=MAX_CELL,
                )
            )

        summary = run_demo(
            count=count,
            seed=seed,
            faults=faults,
            err=err,
            show=None if as_json else show,
            runner=runner,
            tables=tables,
        )
        if as_json:
            sys.stdout.write(orjson.dumps(summary.to_dict()).decode() + "\n")
        else:
            out.print(summary_table(summary))
        if not (summary.caught_up and summary.current_equals_dynamodb):
            err.print("[red]the lake did not catch up with the table[/red]")
            raise typer.Exit(1)
