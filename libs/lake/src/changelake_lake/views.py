"""The ``<table>_current`` view: one Athena SQL text, stored in Glue, run by DuckDB locally.

Contract of :func:`current_view_sql` (ADR 0007):

* Output: exactly ``columns`` (quoted, in the given order): one row per live item.
* Per ``item_key`` the row kept is the last change, ordered by ``event_time``, then
  ``sequence_number`` compared as a number without casting (longer string is greater, equal
  lengths compare as text — sequence numbers are decimal strings of up to 128 bits that
  overflow Athena's bigint and decimal(38)), then ``event_id`` (so the pick is deterministic).
* Duplicates (same ``event_id``, at-least-once delivery) collapse: they carry the same change,
  and the total order above keeps exactly one row per item, hence per event.
* If that last change is a ``REMOVE`` (including TTL deletes) the item is hidden.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from changelake_lake.athena_view import ViewDefinition
from changelake_lake.columns import Column
from changelake_lake.glue_schema import presto_type
from changelake_lake.layout import DATABASE, changes_table_name
from changelake_lake.snapshot_view import SnapshotState, snapshot_table_name, union_source

RANK_COLUMN = "changelake_rank"


def quote_ident(name: str) -> str:
    """A double-quoted SQL identifier (Athena/Presto/DuckDB), embedded quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def current_view_sql(
    table: str,
    columns: Sequence[str],
    database: str = DATABASE,
    snapshot: SnapshotState | None = None,
    types: Mapping[str, str] | None = None,
) -> str:
    """Athena SQL of ``<table>_current`` over ``"<database>"."<table>_changes"``.

    ``table`` is the DynamoDB table name; ``columns`` are the change table's data columns to
    project (they must include nothing named ``changelake_rank``). With a ``snapshot`` the
    ranking reads the snapshot's rows plus only the changes it does not cover (ADR 0035);
    ``types`` (Presto types by column) types the columns the snapshot lacks.
    """
    if not columns:
        raise ValueError("a view needs at least one column")
    source = f"{quote_ident(database)}.{quote_ident(changes_table_name(table))}"
    if snapshot is not None:
        source = union_source(
            snapshot,
            columns,
            types or {},
            changes=source,
            snapshot=f"{quote_ident(database)}.{quote_ident(snapshot_table_name(table))}",
        )
    projection = ",\n  ".join(quote_ident(c) for c in columns)
    return (
        f"SELECT\n  {projection}\n"
        "FROM (\n"
        "  SELECT c.*,\n"
        "    row_number() OVER (\n"
        '      PARTITION BY c."item_key"\n'
        '      ORDER BY c."event_time" DESC, length(c."sequence_number") DESC,\n'
        '        c."sequence_number" DESC, c."event_id" DESC\n'
        f"    ) AS {quote_ident(RANK_COLUMN)}\n"
        f"  FROM {source} c\n"
        ") latest\n"
        f"WHERE {quote_ident(RANK_COLUMN)} = 1 AND \"event_name\" <> 'REMOVE'"
    )


def current_view_definition(
    table: str,
    columns: Sequence[Column],
    database: str = DATABASE,
    snapshot: SnapshotState | None = None,
) -> ViewDefinition:
    """The view's SQL plus its output columns with Presto types (Athena's view format)."""
    data = [c for c in columns if c.name != RANK_COLUMN]
    types = {c.name: presto_type(c.type) for c in data}
    return ViewDefinition(
        sql=current_view_sql(table, [c.name for c in data], database, snapshot, types),
        columns=tuple((c.name, presto_type(c.type)) for c in data),
        schema=database,
        comment=f"Latest live image of each item of DynamoDB table {table} (changelake)",
    )
