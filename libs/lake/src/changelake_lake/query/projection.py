"""Athena partition projection, honoured locally: which existing objects belong to the table.

With ``projection.enabled = true`` Athena ignores registered partitions and computes them from
the table properties (docs/aws-behaviour.md). Enumerating a whole projected range (years of hours)
would cost one LIST per partition, so the local engine lists the template's fixed prefix once
and keeps each object whose path matches the template with values inside the projection's domain:
the same set of rows Athena reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from changelake_lake.query.model import QueryError, TableDef

_NOW_RE = re.compile(
    r"NOW\s*(?:([+-])\s*(\d+)\s*(YEARS?|MONTHS?|WEEKS?|DAYS?|HOURS?|MINUTES?))?\Z", re.I
)
_JAVA_TO_STRFTIME = (
    ("yyyy", "%Y"),
    ("MM", "%m"),
    ("dd", "%d"),
    ("HH", "%H"),
    ("mm", "%M"),
    ("ss", "%S"),
)


@dataclass(frozen=True, slots=True)
class Projection:
    """The projected partition space of one table."""

    keys: tuple[str, ...]
    template: str
    domains: dict[str, dict[str, str]]

    @property
    def list_prefix(self) -> str:
        """The fixed part of the location template: one LIST under it sees every partition."""
        return self.template.split("${", 1)[0]

    def match(self, uri: str) -> tuple[str, ...] | None:
        """Partition values of an object URI, or ``None`` if it is outside the projection."""
        pattern = "^" + re.escape(self.template).replace(r"\$\{", "${").replace(r"\}", "}")
        for key in self.keys:
            pattern = pattern.replace("${" + key + "}", f"(?P<{_group(key)}>[^/]+)", 1)
        match = re.match(pattern, uri)
        if not match:
            return None
        values = tuple(match[_group(k)] for k in self.keys)
        for key, value in zip(self.keys, values, strict=True):
            if not _in_domain(self.domains.get(key, {}), value):
                return None
        return values


def _group(key: str) -> str:
    return "k_" + re.sub(r"\W", "_", key)


def projection_of(table: TableDef) -> Projection:
    """Read the ``projection.*`` and ``storage.location.template`` table properties."""
    keys = tuple(k.name for k in table.partition_keys)
    params = {k.lower(): v for k, v in table.parameters.items()}
    template = params.get("storage.location.template") or (
        table.location.rstrip("/") + "/" + "/".join(f"{k}=${{{k}}}" for k in keys) + "/"
    )
    domains: dict[str, dict[str, str]] = {}
    for key in keys:
        prefix = f"projection.{key.lower()}."
        domains[key] = {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
        if "type" not in domains[key]:
            raise QueryError(
                "HIVE_METASTORE_ERROR: "
                f"projection.{key}.type missing on {table.database}.{table.name}"
            )
    return Projection(keys, template, domains)


def _in_domain(domain: dict[str, str], value: str) -> bool:
    kind = domain.get("type", "").lower()
    if kind == "injected":
        return True
    if kind == "enum":
        return value in [v.strip() for v in domain.get("values", "").split(",")]
    if kind == "integer":
        return _integer_ok(domain, value)
    if kind == "date":
        return _date_ok(domain, value)
    raise QueryError(f"unsupported projection type {kind!r}")


def _integer_ok(domain: dict[str, str], value: str) -> bool:
    if not value.lstrip("-").isdigit():
        return False
    number = int(value)
    digits = int(domain.get("digits", "0") or 0)
    if digits and value != f"{number:0{digits}d}":
        return False
    low, _, high = domain.get("range", "").partition(",")
    interval = int(domain.get("interval", "1") or 1)
    try:
        lo, hi = int(low), int(high)
    except ValueError:
        return True
    return lo <= number <= hi and (number - lo) % interval == 0


def _date_ok(domain: dict[str, str], value: str) -> bool:
    fmt = domain.get("format", "yyyy-MM-dd")
    pyfmt = fmt
    for java, strf in _JAVA_TO_STRFTIME:
        pyfmt = pyfmt.replace(java, strf)
    try:
        moment = datetime.strptime(value, pyfmt).replace(tzinfo=UTC)
    except ValueError:
        return False
    if moment.strftime(pyfmt) != value:
        return False
    low, _, high = domain.get("range", "").partition(",")
    try:
        start, end = _bound(low.strip(), pyfmt), _bound(high.strip(), pyfmt)
    except ValueError:
        return True
    return start <= moment <= end


def _bound(text: str, pyfmt: str) -> datetime:
    now_match = _NOW_RE.match(text)
    if not now_match:
        return datetime.strptime(text, pyfmt).replace(tzinfo=UTC)
    now = datetime.now(UTC)
    if not now_match[1]:
        return now
    amount = int(now_match[2]) * (1 if now_match[1] == "+" else -1)
    unit = now_match[3].upper().rstrip("S")
    days = {"YEAR": 365, "MONTH": 30, "WEEK": 7, "DAY": 1}
    if unit in days:
        return now + timedelta(days=amount * days[unit])
    return now + (timedelta(hours=amount) if unit == "HOUR" else timedelta(minutes=amount))
