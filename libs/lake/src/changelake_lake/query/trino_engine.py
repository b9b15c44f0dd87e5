"""The Trino engine: the same SQL text, run by a Trino server (Athena engine v3 is Trino).

A small client of Trino's REST protocol (stdlib HTTP): ``POST /v1/statement`` with the catalog
and schema as headers, then every ``nextUri`` until the query is done, collecting columns and
rows. Positional parameters are bound as Athena binds ``ExecutionParameters`` (SQL literal
text, left to right), so a named query sends Trino exactly what it sends Athena. The session
time zone is UTC, as Athena's. A failed query becomes :class:`QueryError` with Trino's error
name and message; typed values follow the column's type signature (Decimal for decimals,
aware UTC datetimes for timestamps, dicts for rows).
"""

from __future__ import annotations

import base64
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from changelake_lake.query import transpile
from changelake_lake.query.model import QueryError, QueryResult, ScanStats

log = logging.getLogger(__name__)

DEFAULT_CATALOG = "awsdatacatalog"
_RETRY_STATUS = frozenset({502, 503, 504})


def server_info(url: str, timeout_s: float = 2.0) -> dict[str, Any] | None:
    """``GET /v1/info`` of the server at ``url`` (None when nothing answers there)."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/v1/info", timeout=timeout_s) as resp:
            info: dict[str, Any] = json.loads(resp.read())
            return info
    except (OSError, ValueError):
        return None


class TrinoEngine:
    """Runs Athena SQL on a Trino server whose Hive catalog reads the lake's Glue catalog."""

    name = "trino"

    def __init__(
        self,
        url: str,
        database: str = "changelake",
        *,
        catalog: str = DEFAULT_CATALOG,
        user: str = "changelake",
        timeout_s: float = 900.0,
        time_zone: str = "UTC",
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise QueryError(f"Trino URL must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.database = database
        self.catalog = catalog
        self.user = user
        self.timeout_s = timeout_s
        self.time_zone = time_zone

    def run(self, sql: str, params: Sequence[str] = ()) -> QueryResult:
        """Run the query (``params``: SQL literal texts, one per ``?``) and return every row."""
        text = transpile.bind_parameters(sql, params) if params else sql
        deadline = time.monotonic() + self.timeout_s
        headers = {
            "X-Trino-User": self.user,
            "X-Trino-Catalog": self.catalog,
            "X-Trino-Schema": self.database,
            "X-Trino-Time-Zone": self.time_zone,
            "X-Trino-Source": "changelake",
            "Content-Type": "text/plain; charset=utf-8",
        }
        page = self._request(f"{self.url}/v1/statement", headers, text.encode(), deadline)
        query_id = str(page.get("id", ""))
        columns: list[dict[str, Any]] = []
        data: list[list[Any]] = []
        while True:
            if page.get("columns") and not columns:
                columns = list(page["columns"])
            data.extend(page.get("data") or [])
            error = page.get("error")
            if error:
                raise QueryError(
                    f"{error.get('errorName', 'TRINO_ERROR')}: {error.get('message', error)}"
                )
            next_uri = page.get("nextUri")
            if not next_uri:
                break
            if time.monotonic() > deadline:
                self._cancel(next_uri, headers)
                raise QueryError(f"Trino query {query_id} still running after {self.timeout_s:g}s")
            page = self._request(str(next_uri), headers, None, deadline)
        stats = page.get("stats") or {}
        signatures = [c.get("typeSignature") or {} for c in columns]
        rows = [tuple(typed(v, s) for v, s in zip(row, signatures, strict=True)) for row in data]
        return QueryResult(
            columns=[str(c["name"]) for c in columns],
            types=[str(c["type"]) for c in columns],
            rows=rows,
            engine=self.name,
            stats=ScanStats(
                bytes_read=int(stats.get("physicalInputBytes") or stats.get("processedBytes") or 0)
            ),
            query_id=query_id,
        )

    def _request(
        self, url: str, headers: dict[str, str], body: bytes | None, deadline: float
    ) -> dict[str, Any]:
        delay = 0.05
        while True:
            request = urllib.request.Request(
                url, data=body, headers=headers, method="POST" if body is not None else "GET"
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as resp:
                    page: dict[str, Any] = json.loads(resp.read())
                    return page
            except urllib.error.HTTPError as exc:
                if exc.code not in _RETRY_STATUS or time.monotonic() > deadline:
                    detail = exc.read().decode(errors="replace")[:500]
                    raise QueryError(f"Trino at {self.url} answered {exc.code}: {detail}") from exc
            except OSError as exc:
                raise QueryError(
                    f"cannot reach Trino at {self.url} ({exc}); start one with "
                    "`changelake local up --with-trino` and export the CHANGELAKE_TRINO_URL "
                    "it prints"
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _cancel(self, next_uri: str, headers: dict[str, str]) -> None:
        request = urllib.request.Request(next_uri, headers=headers, method="DELETE")
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                resp.read()
        except OSError:
            log.warning("trino cancel failed", extra={"uri": next_uri})


def typed(value: Any, signature: dict[str, Any]) -> Any:
    """A value of Trino's JSON result encoding as Python, following its type signature."""
    if value is None:
        return None
    base = str(signature.get("rawType", "")).lower()
    args = [a.get("value") for a in signature.get("arguments", [])]
    if base == "decimal":
        return Decimal(str(value))
    if base in ("double", "real"):
        return (
            float(value) if not isinstance(value, str) else float(value.replace("Infinity", "inf"))
        )
    if base == "date":
        return date.fromisoformat(value)
    if base == "timestamp":
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    if base == "timestamp with time zone":
        # "2024-05-01 10:00:00.250 Europe/Paris" or "… +02:00": an aware datetime.
        stamp, _, zone = value.rpartition(" ")
        if zone[:1] in "+-":
            return datetime.fromisoformat(stamp + zone)
        return datetime.fromisoformat(stamp).replace(tzinfo=ZoneInfo(zone))
    if base == "varbinary":
        return base64.b64decode(value)
    if base == "array" and args and isinstance(args[0], dict):
        return [typed(v, args[0]) for v in value]
    if base == "map" and len(args) == 2 and isinstance(args[1], dict):
        return {k: typed(v, args[1]) for k, v in value.items()}
    if base == "row":
        fields = [a for a in args if isinstance(a, dict)]
        names = [
            str((f.get("fieldName") or {}).get("name", f"field{i}")) for i, f in enumerate(fields)
        ]
        types = [f.get("typeSignature") or {} for f in fields]
        return {n: typed(v, t) for n, v, t in zip(names, value, types, strict=True)}
    return value
