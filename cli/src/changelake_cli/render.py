"""Render query results: a rich table, a JSON array of row objects, or CSV."""

from __future__ import annotations

import base64
import csv
import io
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
from changelake_lake.query.model import QueryResult
from rich.console import Console
from rich.table import Table


def plain(value: Any) -> Any:
    """A JSON-safe value: Decimal as its exact text, bytes as base64, datetimes ISO 8601."""
    if isinstance(value, Decimal):
        # exact, and never scientific: a decimal(38,9) zero is Decimal("0E-9") (N "-0" read
        # back), which str() shows as "0E-9"; positional notation shows 0.000000000
        # (a JSON number would pass through a float in most readers)
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def to_json(result: QueryResult) -> str:
    """A JSON array of row objects (keys are the column names)."""
    rows = [{c: plain(v) for c, v in zip(result.columns, row, strict=True)} for row in result.rows]
    return orjson.dumps(rows).decode()


def to_csv(result: QueryResult) -> str:
    """CSV with a header row; arrays and maps as JSON text, NULL as an empty field."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.rows:
        writer.writerow([cell_text(v, null="") for v in row])
    return out.getvalue()


def cell_text(value: Any, null: str = "NULL") -> str:
    """One value as display text."""
    if value is None:
        return null
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, list | dict | tuple):
        return orjson.dumps(plain(value)).decode()
    return str(plain(value))


def _display(value: Any) -> str:
    # A decimal(38,9) column shows 1.000000000; on screen the value reads better as 1.
    text = cell_text(value)
    if isinstance(value, Decimal) and "." in text and "E" not in text:
        text = text.rstrip("0").rstrip(".")
    return text


def to_table(
    result: QueryResult,
    title: str | None = None,
    *,
    max_rows: int | None = None,
    columns: list[str] | None = None,
    max_cell: int | None = None,
) -> Table:
    """A rich table of the result.

    ``max_rows`` cuts the rows (a caption says so), ``columns`` picks and orders columns (the
    ones the result lacks are skipped), ``max_cell`` shortens long cells with an ellipsis.
    """
    table = Table(title=title, title_justify="left", header_style="bold cyan", show_lines=False)
    picked = [c for c in columns if c in result.columns] if columns else list(result.columns)
    index = [result.columns.index(c) for c in picked]
    for name in picked:
        table.add_column(name, overflow="fold")
    shown = result.rows if max_rows is None else result.rows[:max_rows]
    for row in shown:
        cells = [_display(row[i]) for i in index]
        if max_cell is not None:
            cells = [c if len(c) <= max_cell else c[: max_cell - 1] + "…" for c in cells]
        table.add_row(*cells)
    notes = []
    if len(shown) < len(result.rows):
        notes.append(f"{len(shown)} of {len(result.rows)} rows")
    if len(picked) < len(result.columns):
        notes.append(f"{len(picked)} of {len(result.columns)} columns")
    if notes:
        table.caption = ", ".join(notes)
    return table


def print_table(result: QueryResult, console: Console, title: str | None = None) -> None:
    """Print the result as a table on ``console``."""
    console.print(to_table(result, title))
