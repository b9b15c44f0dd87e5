"""Athena SQL → DuckDB SQL with sqlglot: parse, bind ``?`` parameters, find and replace tables.

Athena's dialect is Trino's; sqlglot reads it (``read="athena"``) and writes DuckDB. Table
references are rewritten by the local engine (views inlined as subqueries, base tables replaced
by the in-memory relations it registers), so the SQL that DuckDB runs is the user's SQL with
only its table names changed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError
from sqlglot.tokens import TokenType  # type: ignore[attr-defined]

from changelake_lake.query.model import QueryError

NOT_LOCAL_HINT = "(use --engine trino or athena)"
READ_DIALECT = "athena"
WRITE_DIALECT = "duckdb"
_QUERY_TYPES = (exp.Query,)


def parse_query(sql: str) -> exp.Query:
    """Parse one Athena SQL query (``QueryError`` for syntax errors, DDL/DML or many statements)."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=READ_DIALECT) if s is not None]
    except ParseError as exc:
        raise QueryError(f"SYNTAX_ERROR: {exc}") from exc
    if len(statements) != 1:
        raise QueryError(f"expected exactly one statement, got {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, _QUERY_TYPES):
        raise QueryError(
            f"only queries (SELECT/WITH/VALUES) run on the local engine, not {tree.key.upper()}"
        )
    return tree


def bind_parameters(sql: str, params: Sequence[str]) -> str:
    """Replace each ``?``, left to right, by its parameter (SQL literal text, as in Athena).

    Athena substitutes ``ExecutionParameters`` as SQL text, left to right (a string parameter
    carries its own quotes: ``'abc'``). The tokenizer finds the real placeholders, so a ``?``
    inside a string literal or comment is left alone.
    """
    try:
        tokens = sqlglot.tokenize(sql, read=READ_DIALECT)
    except sqlglot.errors.TokenError as exc:
        raise QueryError(f"SYNTAX_ERROR: {exc}") from exc
    marks = [t for t in tokens if t.token_type == TokenType.PLACEHOLDER and t.text == "?"]
    if len(marks) != len(params):
        raise QueryError(
            f"the query has {len(marks)} parameter(s) (?) but {len(params)} value(s) were given"
        )
    out: list[str] = []
    last = 0
    for token, text in zip(marks, params, strict=True):
        out.append(sql[last : token.start])
        out.append(text)
        last = token.end + 1
    out.append(sql[last:])
    return "".join(out)


def cte_names(tree: exp.Expr) -> set[str]:
    """Names defined by WITH clauses anywhere in the query (never catalog tables)."""
    return {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}


def table_refs(tree: exp.Expr) -> list[exp.Table]:
    """Catalog table references of a query (CTE names and table functions excluded)."""
    ctes = cte_names(tree)
    refs: list[exp.Table] = []
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            continue  # UNNEST, VALUES, table functions
        if not table.db and table.name.lower() in ctes:
            continue
        refs.append(table)
    return refs


def qualified(table: exp.Table, default_database: str) -> tuple[str, str]:
    """(database, table) of a reference; only ``awsdatacatalog`` is a known catalog."""
    if table.catalog and table.catalog.lower() != "awsdatacatalog":
        raise QueryError(f"unknown catalog {table.catalog!r} (only awsdatacatalog)")
    return (table.db or default_database).lower(), table.name.lower()


def name_unnamed_columns(tree: exp.Query) -> exp.Query:
    """Give unnamed output expressions Athena's names ``_col0``, ``_col1``… (by position)."""
    select = tree
    while isinstance(select, exp.SetOperation):
        select = select.this
    if isinstance(select, exp.Subquery):
        return tree
    if isinstance(select, exp.Select):
        for index, projection in enumerate(list(select.expressions)):
            if isinstance(projection, exp.Alias | exp.Column | exp.Star):
                continue
            if isinstance(projection, exp.Dot):
                continue  # a struct field keeps its field name
            projection.replace(exp.alias_(projection.copy(), f"_col{index}"))
    return tree


def to_duckdb(tree: exp.Expr) -> str:
    """DuckDB SQL text of a (rewritten) Athena query."""
    try:
        return tree.sql(dialect=WRITE_DIALECT)
    except sqlglot.errors.UnsupportedError as exc:
        raise QueryError(f"NOT_SUPPORTED locally: {exc}") from exc


def uses_column(tree: exp.Expr, name: str) -> bool:
    """True if the query mentions column ``name`` (e.g. Athena's hidden ``"$path"``)."""
    return any(col.name == name for col in tree.find_all(exp.Column))


def referenced_columns(tree: exp.Expr) -> set[str] | None:
    """Lower-case names a query can read, or ``None`` when a ``*`` needs every column.

    Every identifier counts (a superset is safe): ``useridentity.type`` names struct column
    ``useridentity`` in the place sqlglot parses as a table qualifier.
    """
    for star in tree.find_all(exp.Star):
        if not isinstance(star.parent, exp.Count):
            return None
    return {ident.name.lower() for ident in tree.find_all(exp.Identifier)}


def not_supported_locally(what: str) -> QueryError:
    """The one error for Athena SQL that the local engine cannot answer as Athena would."""
    return QueryError(f"not supported locally: {what} {NOT_LOCAL_HINT}")


_STRING_TYPES = ("string", "varchar", "char")


def reject_unsupported(tree: exp.Expr, column_types: dict[str, set[str]]) -> None:
    """Raise :func:`not_supported_locally` for constructs DuckDB would answer differently.

    * ``AT TIME ZONE``: DuckDB turns a zone-less timestamp into a ``timestamptz`` shown in the
      session zone (UTC), so the Paris wall time silently came back as the UTC one.
    * ``json_extract``/``json_extract_scalar`` on a column whose catalog type is not a string
      (a struct, array or map): Athena rejects the call, DuckDB answered NULL.
      ``column_types`` maps each lower-case column name of the queried tables to its Hive types.
    """
    for zone in tree.find_all(exp.AtTimeZone):
        raise not_supported_locally(f"AT TIME ZONE ({zone.sql(dialect=READ_DIALECT)})")
    for node in tree.find_all(exp.JSONExtractScalar, exp.JSONExtract):
        target = node.this
        if not isinstance(target, exp.Column) or target.table:
            continue
        types = column_types.get(target.name.lower(), set())
        if types and not any(t.lower().startswith(_STRING_TYPES) for t in types):
            kind = sorted(types)[0]
            raise not_supported_locally(
                f"{node.sql(dialect=READ_DIALECT)} on column {target.name!r} of type {kind} "
                "(Athena requires json or varchar there)"
            )
