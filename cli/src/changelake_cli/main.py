"""Entry point of the ``changelake`` command; each sub-command lives in its own module."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

from changelake_cli import (
    backfill_cmd,
    catalog_cmd,
    compact_cmd,
    consumer_cmd,
    demo_cmd,
    erase_cmd,
    errors,
    local_cmd,
    produce_cmd,
    query_cmd,
    reconcile_cmd,
    redrive_cmd,
    snapshot_cmd,
)

app = typer.Typer(
    name="changelake",
    help="Every DynamoDB change, queryable with plain SQL (Athena on AWS, DuckDB locally).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (
    demo_cmd,
    local_cmd,
    produce_cmd,
    consumer_cmd,
    catalog_cmd,
    compact_cmd,
    query_cmd,
    reconcile_cmd,
    redrive_cmd,
    backfill_cmd,
    snapshot_cmd,
    erase_cmd,
):
    _module.register(app)

# Commands of other installed distributions: `changelake bench` comes with changelake-bench,
# which names its `register(app)` in the "changelake.commands" entry-point group (ADR 0029).
COMMAND_GROUP = "changelake.commands"
for _entry in entry_points(group=COMMAND_GROUP):
    _entry.load()(app)


def main() -> None:
    """The installed ``changelake`` script: the app, with failures as one line on stderr."""
    try:
        app()
    except Exception as exc:
        if errors.show_tracebacks():
            raise
        print(errors.one_line(exc), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
