"""The ``<table>_history`` view: every version of every item, once, with its validity interval.

Contract of :func:`history_view_sql` (ADR 0032; the same SQL text runs on Athena, Trino and,
transpiled by sqlglot, DuckDB — like ``<table>_current``, ADR 0007):

* One row per ``event_id``: stream duplicates (at-least-once delivery) collapse to the copy
  with the smallest Kinesis sequence number (compared as a number without casting), then
  ``shard_id`` — copies of one event carry the same change, so which one is kept only has to
  be deterministic.
* Per ``item_key`` the versions are ordered as ``<table>_current`` orders them (ADR 0007):
  ``event_time``, then the sequence number as a number, then ``event_id``.
* ``valid_from`` is the version's ``event_time``; ``valid_to`` is the next version's
  ``event_time``, NULL for the latest. The item had that version's image during
  ``valid_from <= t < valid_to``.
* ``is_removed`` marks REMOVE versions (TTL deletes too): during their interval the item did
  not exist. The latest version of an item that still exists is its ``<table>_current`` row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from changelake_lake.athena_view import EXPANDED_TEXT, ViewDefinition, encode_presto_view
from changelake_lake.columns import Column
from changelake_lake.glue_schema import presto_type
from changelake_lake.glue_tables import SOURCE_PARAMETER, glue_columns
from changelake_lake.layout import DATABASE, changes_table_name
from changelake_lake.views import quote_ident

VALID_FROM = "valid_from"
VALID_TO = "valid_to"
IS_REMOVED = "is_removed"
COPY_COLUMN = "changelake_copy"
# Names the view adds; a change-table column of the same name (an attribute) stays out of the
# view's projection (its value is in new_image / old_image).
RESERVED = (VALID_FROM, VALID_TO, IS_REMOVED, COPY_COLUMN)
ADDED_COLUMNS: tuple[tuple[str, str], ...] = (
    (VALID_FROM, "timestamp"),
    (VALID_TO, "timestamp"),
    (IS_REMOVED, "boolean"),
)


def history_view_name(table: str) -> str:
    """Glue name of the history view: ``<glue base>_history``."""
    return changes_table_name(table).removesuffix("_changes") + "_history"


def history_view_sql(table: str, columns: Sequence[str], database: str = DATABASE) -> str:
    """Athena SQL of ``<table>_history`` over ``"<database>"."<table>_changes"``.

    ``columns`` are the change table's data columns to project (names in :data:`RESERVED`
    are left out); the view adds ``valid_from``, ``valid_to`` and ``is_removed``.
    """
    data = [c for c in columns if c not in RESERVED]
    if not data:
        raise ValueError("a view needs at least one column")
    source = f"{quote_ident(database)}.{quote_ident(changes_table_name(table))}"
    projection = ",\n  ".join(quote_ident(c) for c in data)
    return (
        f"SELECT\n  {projection},\n"
        f'  "event_time" AS {quote_ident(VALID_FROM)},\n'
        '  lead("event_time") OVER (\n'
        '    PARTITION BY "item_key"\n'
        '    ORDER BY "event_time", length("sequence_number"), "sequence_number", "event_id"\n'
        f"  ) AS {quote_ident(VALID_TO)},\n"
        f"  \"event_name\" = 'REMOVE' AS {quote_ident(IS_REMOVED)}\n"
        "FROM (\n"
        "  SELECT c.*,\n"
        "    row_number() OVER (\n"
        '      PARTITION BY c."event_id"\n'
        '      ORDER BY length(c."sequence_number"), c."sequence_number", c."shard_id"\n'
        f"    ) AS {quote_ident(COPY_COLUMN)}\n"
        f"  FROM {source} c\n"
        ") once\n"
        f"WHERE {quote_ident(COPY_COLUMN)} = 1"
    )


def history_view_definition(
    table: str, columns: Sequence[Column], database: str = DATABASE
) -> ViewDefinition:
    """The view's SQL plus its output columns with Presto types (Athena's view format)."""
    data = [c for c in columns if c.name not in RESERVED]
    return ViewDefinition(
        sql=history_view_sql(table, [c.name for c in data], database),
        columns=(
            *((c.name, presto_type(c.type)) for c in data),
            *((name, presto_type(hive)) for name, hive in ADDED_COLUMNS),
        ),
        schema=database,
        comment=f"Every version of each item of DynamoDB table {table}, once, with valid_from"
        " / valid_to (changelake)",
    )


def history_view_table_input(
    table: str, columns: Sequence[Column], database: str = DATABASE
) -> dict[str, Any]:
    """``TableInput`` of ``<table>_history`` in Athena's (Presto) view format (as ``_current``:
    no ``Description``, which would hide the view from Trino and Athena)."""
    view = history_view_definition(table, columns, database)
    data = [c for c in columns if c.name not in RESERVED]
    added = [Column(name, hive) for name, hive in ADDED_COLUMNS]
    return {
        "Name": history_view_name(table),
        "TableType": "VIRTUAL_VIEW",
        "Parameters": {"presto_view": "true", "comment": "Presto View", SOURCE_PARAMETER: table},
        "PartitionKeys": [],
        "StorageDescriptor": {
            "Columns": glue_columns([*data, *added]),
            "Location": "",
            "SerdeInfo": {},
        },
        "ViewOriginalText": encode_presto_view(view),
        "ViewExpandedText": EXPANDED_TEXT,
    }
