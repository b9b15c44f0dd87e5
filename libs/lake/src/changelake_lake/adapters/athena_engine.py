"""The Athena engine: the same SQL text, run by Amazon Athena (adapter over boto3).

StartQueryExecution in the configured workgroup with positional ``ExecutionParameters``, then
GetQueryExecution polled with exponential backoff until a final state, then every page of
GetQueryResults. FAILED and CANCELLED become :class:`QueryError` carrying Athena's
``StateChangeReason``; a query still running at the deadline is cancelled, not abandoned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from changelake.adapters import aws

from changelake_lake.query.model import QueryError, QueryResult, ScanStats, utc_value

if TYPE_CHECKING:
    from mypy_boto3_athena import AthenaClient

log = logging.getLogger(__name__)

RUNNING_STATES = frozenset({"QUEUED", "RUNNING"})
_INT_TYPES = frozenset({"tinyint", "smallint", "integer", "int", "bigint"})
_FLOAT_TYPES = frozenset({"double", "real", "float"})


class AthenaEngine:
    """Runs Athena SQL on Amazon Athena and returns typed rows."""

    name = "athena"

    def __init__(
        self,
        database: str = "changelake",
        *,
        workgroup: str = "primary",
        output_location: str | None = None,
        client: AthenaClient | None = None,
        region: str | None = None,
        timeout_s: float = 900.0,
        poll_initial_s: float = 0.2,
        poll_max_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database = database
        self.workgroup = workgroup
        self.output_location = output_location
        self._athena = client or aws.athena(region)
        self._timeout_s = timeout_s
        self._poll_initial_s = poll_initial_s
        self._poll_max_s = poll_max_s
        self._sleep = sleep
        self._clock = clock

    def run(self, sql: str, params: Sequence[str] = ()) -> QueryResult:
        """Run the query (``params``: SQL literal texts, one per ``?``) and return every row."""
        query_id = self.start(sql, params)
        execution = self.wait(query_id)
        columns, types, rows = self.results(query_id, execution.get("StatementType", "DML"))
        scanned = int(execution.get("Statistics", {}).get("DataScannedInBytes", 0) or 0)
        return QueryResult(
            columns=columns,
            types=types,
            rows=rows,
            engine=self.name,
            stats=ScanStats(bytes_read=scanned),
            query_id=query_id,
        )

    def start(self, sql: str, params: Sequence[str] = ()) -> str:
        """StartQueryExecution; returns the QueryExecutionId."""
        request: dict[str, Any] = {
            "QueryString": sql,
            "QueryExecutionContext": {"Database": self.database, "Catalog": "AwsDataCatalog"},
            "WorkGroup": self.workgroup,
        }
        if params:
            request["ExecutionParameters"] = list(params)
        if self.output_location:
            request["ResultConfiguration"] = {"OutputLocation": self.output_location}
        try:
            response = self._athena.start_query_execution(**request)
        except ClientError as exc:
            raise QueryError(f"Athena refused the query: {_message(exc)}") from exc
        query_id = str(response["QueryExecutionId"])
        log.info("athena query started", extra={"query_id": query_id, "workgroup": self.workgroup})
        return query_id

    def wait(self, query_id: str) -> dict[str, Any]:
        """Poll GetQueryExecution with backoff until SUCCEEDED; raise on FAILED or CANCELLED."""
        deadline = self._clock() + self._timeout_s
        delay = self._poll_initial_s
        while True:
            execution: dict[str, Any] = dict(
                self._athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
            )
            status = execution.get("Status", {})
            state = str(status.get("State", ""))
            if state == "SUCCEEDED":
                return execution
            if state not in RUNNING_STATES:
                reason = status.get("StateChangeReason") or (status.get("AthenaError") or {}).get(
                    "ErrorMessage", "no reason given"
                )
                raise QueryError(f"Athena query {query_id} {state}: {reason}")
            if self._clock() + delay > deadline:
                self._athena.stop_query_execution(QueryExecutionId=query_id)
                raise QueryError(
                    f"Athena query {query_id} still {state} after {self._timeout_s:g}s: cancelled"
                )
            self._sleep(delay)
            delay = min(delay * 2, self._poll_max_s)

    def results(
        self, query_id: str, statement_type: str = "DML"
    ) -> tuple[list[str], list[str], list[tuple[Any, ...]]]:
        """Every page of GetQueryResults → column names, Athena types and typed rows."""
        paginator = self._athena.get_paginator("get_query_results")
        columns: list[str] = []
        types: list[str] = []
        rows: list[tuple[Any, ...]] = []
        first = True
        for page in paginator.paginate(QueryExecutionId=query_id):
            result_set = page["ResultSet"]
            if first:
                info = result_set.get("ResultSetMetadata", {}).get("ColumnInfo", [])
                columns = [str(c.get("Label") or c["Name"]) for c in info]
                types = [str(c.get("Type", "varchar")).lower() for c in info]
            page_rows = [
                [cell.get("VarCharValue") for cell in row.get("Data", [])]
                for row in result_set.get("Rows", [])
            ]
            # A SELECT's first row is the header (column labels), on the first page only.
            if first and statement_type == "DML" and page_rows and page_rows[0] == columns:
                page_rows = page_rows[1:]
            first = False
            rows.extend(
                tuple(_typed(v, t) for v, t in zip(r, types, strict=False)) for r in page_rows
            )
        return columns, types, rows


def _typed(value: str | None, athena_type: str) -> Any:
    """An Athena result cell (text) as a Python value; numbers exact (Decimal for decimals)."""
    if value is None:
        return None
    base = athena_type.split("(", 1)[0].strip()
    if base in _INT_TYPES:
        return int(value)
    if base in _FLOAT_TYPES:
        return float(value)  # declared double by the query itself
    if base == "decimal":
        return Decimal(value)
    if base == "boolean":
        return value.lower() == "true"
    if base == "date":
        return date.fromisoformat(value)
    if base == "timestamp" and "zone" not in athena_type:
        return utc_value(datetime.fromisoformat(value))
    return value


def _message(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'Error')}: {error.get('Message', str(exc))}"
