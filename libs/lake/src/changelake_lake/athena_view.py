"""Athena's view format in the Glue Data Catalog (what ``CREATE VIEW`` in Athena stores).

A Glue table with ``TableType = VIRTUAL_VIEW`` whose ``ViewOriginalText`` is
``/* Presto View: <base64 of JSON> */``; the JSON holds the original SQL and the column list
with Presto type names (and the view's comment). ``ViewExpandedText`` is ``/* Presto View */``.
The table's parameters carry ``presto_view=true`` and ``comment=Presto View`` and the table has
no ``Description``: Trino (and so Athena) recognises a view by exactly that comment, and its
Glue client copies a table's ``Description`` over the ``comment`` parameter. The catalog writes
views with :func:`encode_presto_view`; the local query engine reads them back with
:func:`decode_presto_view` and runs the same SQL.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass

PRESTO_PREFIX = "/* Presto View: "
PRESTO_SUFFIX = " */"
EXPANDED_TEXT = "/* Presto View */"
_PREFIX_RE = re.compile(r"/\* Presto View: (?P<b64>[A-Za-z0-9+/=]+) \*/\Z")


@dataclass(frozen=True, slots=True)
class ViewDefinition:
    """The SQL and output columns (name, Presto type) of an Athena view."""

    sql: str
    columns: tuple[tuple[str, str], ...]
    catalog: str = "awsdatacatalog"
    schema: str = "changelake"
    comment: str | None = None


def encode_presto_view(view: ViewDefinition) -> str:
    """Render ``ViewOriginalText`` for Glue (Athena's Presto view encoding)."""
    doc = {
        "originalSql": view.sql,
        "catalog": view.catalog,
        "schema": view.schema,
        "columns": [{"name": n, "type": t} for n, t in view.columns],
        "owner": "changelake",
        "runAsInvoker": False,
        "properties": {},
    }
    if view.comment is not None:
        doc["comment"] = view.comment
    payload = base64.b64encode(json.dumps(doc).encode()).decode("ascii")
    return f"{PRESTO_PREFIX}{payload}{PRESTO_SUFFIX}"


def decode_presto_view(original_text: str) -> ViewDefinition:
    """Parse ``ViewOriginalText`` into a :class:`ViewDefinition` (``ValueError`` if not one)."""
    match = _PREFIX_RE.match(original_text.strip())
    if not match:
        raise ValueError("not an Athena (Presto) view definition")
    doc = json.loads(base64.b64decode(match["b64"]))
    return ViewDefinition(
        sql=doc["originalSql"],
        columns=tuple((c["name"], c["type"]) for c in doc.get("columns", [])),
        catalog=doc.get("catalog", "awsdatacatalog"),
        schema=doc.get("schema", "changelake"),
        comment=doc.get("comment"),
    )
