"""Named queries: Athena SQL files shipped in the package, with positional ``?`` parameters.

Each ``named/<name>.sql`` starts with a header of SQL comments::

    -- description: Every change of one item, oldest first
    -- param: item_key string
    -- param: limit bigint default 100

One ``param`` line per ``?`` in the text, in order (a name may repeat when one value fills several
placeholders). ``${table}`` stands for the Glue name of the DynamoDB table. The rendered text runs
unchanged on Athena (``ExecutionParameters``) and on the local engine; the same file is what the
deploy registers as an Athena named query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from importlib import resources

from changelake_lake.layout import glue_name
from changelake_lake.query.model import QueryError

_PARAM_RE = re.compile(
    r"--\s*param:\s*(?P<name>\w+)\s+(?P<type>\w+)(?:\s+default\s+(?P<default>.*?))?\s*\Z"
)
_DESC_RE = re.compile(r"--\s*description:\s*(?P<text>.*?)\s*\Z")
_TYPES = ("string", "bigint", "integer", "double", "decimal", "boolean", "timestamp", "date")


@dataclass(frozen=True, slots=True)
class Param:
    """One declared parameter: name, SQL type and optional default (plain value, not SQL)."""

    name: str
    type: str
    default: str | None = None


@dataclass(frozen=True, slots=True)
class NamedQuery:
    """A packaged query: its name, description, SQL template and ``?`` parameters in order."""

    name: str
    description: str
    template: str
    params: tuple[Param, ...]

    def sql(self, table: str) -> str:
        """The Athena SQL for DynamoDB table ``table`` (``${table}`` → its Glue name)."""
        return self.template.replace("${table}", glue_name(table))

    def parameter_names(self) -> list[str]:
        """Distinct parameter names in first-use order."""
        return list(dict.fromkeys(p.name for p in self.params))

    def execution_parameters(self, values: dict[str, str]) -> list[str]:
        """Athena ``ExecutionParameters``: one SQL literal per ``?``, from ``name=value`` pairs."""
        unknown = set(values) - {p.name for p in self.params}
        if unknown:
            raise QueryError(
                f"named query {self.name!r} has no parameter(s) {sorted(unknown)}; "
                f"it takes {self.parameter_names() or 'none'}"
            )
        literals: list[str] = []
        for param in self.params:
            value = values.get(param.name, param.default)
            if value is None:
                raise QueryError(
                    f"named query {self.name!r} needs --param {param.name}=<{param.type}>"
                )
            literals.append(sql_literal(value, param.type))
        return literals


def sql_literal(value: str, sql_type: str) -> str:
    """Render a plain value as an Athena SQL literal of ``sql_type`` (``QueryError`` if invalid)."""
    kind = sql_type.lower()
    try:
        if kind == "string":
            return "'" + value.replace("'", "''") + "'"
        if kind in ("bigint", "integer"):
            return str(int(value, 10))
        if kind in ("double", "decimal"):
            number = Decimal(value)
            if not number.is_finite():
                raise ValueError(value)
            return str(number) if kind == "decimal" else f"DOUBLE '{number}'"
        if kind == "boolean":
            return {"true": "TRUE", "false": "FALSE"}[value.lower()]
        if kind == "timestamp":
            moment = datetime.fromisoformat(value.replace("T", " ").removesuffix("Z"))
            return f"TIMESTAMP '{moment.replace(tzinfo=None).isoformat(sep=' ')}'"
        if kind == "date":
            return f"DATE '{date.fromisoformat(value).isoformat()}'"
    except (ValueError, KeyError, InvalidOperation) as exc:
        raise QueryError(f"{value!r} is not a valid {sql_type}") from exc
    raise QueryError(f"unknown parameter type {sql_type!r}")


def parse_named(name: str, text: str) -> NamedQuery:
    """Parse a named-query file (header comments, then the SQL)."""
    description = ""
    params: list[Param] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("--"):
            if stripped:
                break
            continue
        if match := _PARAM_RE.match(stripped):
            if match["type"].lower() not in _TYPES:
                raise QueryError(f"{name}.sql: unknown parameter type {match['type']!r}")
            params.append(Param(match["name"], match["type"].lower(), match["default"]))
        elif match := _DESC_RE.match(stripped):
            description = match["text"]
    return NamedQuery(name, description, text, tuple(params))


def load_all() -> dict[str, NamedQuery]:
    """Every packaged named query, by name (sorted)."""
    folder = resources.files("changelake_lake.query") / "named"
    found: dict[str, NamedQuery] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            name = entry.name.removesuffix(".sql")
            found[name] = parse_named(name, entry.read_text(encoding="utf-8"))
    return found


def load(name: str) -> NamedQuery:
    """One packaged named query (``QueryError`` listing the choices if unknown)."""
    queries = load_all()
    if name not in queries:
        raise QueryError(f"no named query {name!r}; choose from {', '.join(queries)}")
    return queries[name]
