"""The Athena engine against moto's Athena over HTTP, plus botocore's Stubber for FAILED/paging.

moto accepts queries and returns no rows unless results are queued through its
``/moto-api/static/athena/query-results`` endpoint; its state manager holds a query QUEUED and
RUNNING for a chosen number of polls. It never fails a query, nor pages results, so those two
behaviours are driven through botocore's Stubber, which validates every request against the
Athena API model.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from changelake_lake.adapters.athena_engine import AthenaEngine
from changelake_lake.query.model import QueryError


def _post(endpoint: str, path: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{endpoint}{path}", data=json.dumps(body).encode(), method="POST"
    )
    urllib.request.urlopen(request, timeout=10).read()


def _column(name: str, athena_type: str) -> dict[str, Any]:
    return {
        "CatalogName": "hive",
        "SchemaName": "",
        "TableName": "",
        "Name": name,
        "Label": name,
        "Type": athena_type,
        "Precision": 0,
        "Scale": 0,
        "Nullable": "UNKNOWN",
        "CaseSensitive": False,
    }


def _row(*cells: str | None) -> dict[str, Any]:
    return {"Data": [{} if c is None else {"VarCharValue": c} for c in cells]}


@pytest.fixture
def slow_athena(aws_endpoint: str) -> Iterator[str]:
    """moto's Athena keeps each query QUEUED for 2 polls, then RUNNING for 2."""
    _post(
        aws_endpoint,
        "/moto-api/state-manager/set-transition",
        {"model_name": "athena::execution", "transition": {"progression": "manual", "times": 2}},
    )
    try:
        yield aws_endpoint
    finally:
        _post(
            aws_endpoint,
            "/moto-api/state-manager/unset-transition",
            {"model_name": "athena::execution"},
        )


@pytest.mark.aws
def test_athena_engine_sends_workgroup_database_and_parameters(slow_athena: str) -> None:
    client = boto3.client("athena", region_name="us-east-1")
    client.create_work_group(Name="analysts", Configuration={})
    sleeps: list[float] = []
    engine = AthenaEngine(
        "changelake",
        workgroup="analysts",
        output_location="s3://results/q/",
        client=client,
        sleep=sleeps.append,
        poll_initial_s=0.25,
        poll_max_s=0.6,
    )
    result = engine.run("SELECT * FROM persons_changes WHERE pk = ? AND age > ?", ["'p1'", "30"])
    execution = client.get_query_execution(QueryExecutionId=result.query_id)["QueryExecution"]
    assert execution["Query"] == "SELECT * FROM persons_changes WHERE pk = ? AND age > ?"
    assert execution["ExecutionParameters"] == ["'p1'", "30"]
    assert execution["WorkGroup"] == "analysts"
    assert execution["QueryExecutionContext"]["Database"] == "changelake"
    assert execution["ResultConfiguration"]["OutputLocation"].startswith("s3://results/q/")
    # moto holds the query QUEUED then RUNNING for a few polls: pauses double up to the cap.
    assert sleeps == [0.25, 0.5, 0.6]
    assert result.rows == []


@pytest.mark.aws
def test_athena_engine_types_seeded_results_and_drops_header(aws_endpoint: str) -> None:
    columns = [
        _column("pk", "varchar"),
        _column("n", "bigint"),
        _column("amount", "decimal"),
        _column("at", "timestamp"),
        _column("ok", "boolean"),
    ]
    _post(
        aws_endpoint,
        "/moto-api/static/athena/query-results",
        {
            "results": [
                {
                    "rows": [
                        _row("pk", "n", "amount", "at", "ok"),
                        _row(
                            "p1",
                            "12345678901234",
                            "12345678901234567890.123456789",
                            "2024-05-01 10:00:00.123",
                            "true",
                        ),
                        _row("p2", None, None, None, "false"),
                    ],
                    "column_info": columns,
                }
            ],
        },
    )
    engine = AthenaEngine(client=boto3.client("athena", region_name="us-east-1"))
    result = engine.run("SELECT pk, n, amount, at, ok FROM t")
    assert result.columns == ["pk", "n", "amount", "at", "ok"]
    assert result.rows == [
        (
            "p1",
            12345678901234,
            Decimal("12345678901234567890.123456789"),
            datetime(2024, 5, 1, 10, 0, 0, 123000, tzinfo=UTC),
            True,
        ),
        ("p2", None, None, None, False),
    ]


@pytest.mark.aws
def test_athena_engine_cancelled_query_raises_with_state(slow_athena: str) -> None:
    client = boto3.client("athena", region_name="us-east-1")

    def cancel_on_first_pause(_: float) -> None:
        # Someone cancels the query in the console while the CLI waits.
        ids = client.list_query_executions()["QueryExecutionIds"]
        client.stop_query_execution(QueryExecutionId=ids[-1])

    engine = AthenaEngine(client=client, sleep=cancel_on_first_pause)
    with pytest.raises(QueryError, match="CANCELLED"):
        engine.run("SELECT 1")


@pytest.mark.aws
def test_athena_engine_unknown_workgroup_is_a_clear_error(aws_endpoint: str) -> None:
    engine = AthenaEngine(workgroup="nope", client=boto3.client("athena", region_name="us-east-1"))
    with pytest.raises(QueryError, match="WorkGroup does not exist"):
        engine.run("SELECT 1")


def _stubbed() -> tuple[Any, Stubber]:
    client = boto3.client(
        "athena",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    return client, Stubber(client)


def _execution(state: str, **status: Any) -> dict[str, Any]:
    return {
        "QueryExecution": {
            "QueryExecutionId": "q-1",
            "StatementType": "DML",
            "Status": {"State": state, **status},
            "Statistics": {"DataScannedInBytes": 2048},
        }
    }


@pytest.mark.unit
def test_athena_engine_failed_query_raises_state_change_reason() -> None:
    client, stub = _stubbed()
    stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"})
    stub.add_response("get_query_execution", _execution("RUNNING"))
    stub.add_response(
        "get_query_execution",
        _execution(
            "FAILED",
            StateChangeReason="COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved",
        ),
    )
    with stub, pytest.raises(QueryError, match=r"q-1 FAILED: COLUMN_NOT_FOUND: .*'nope'"):
        AthenaEngine(client=client, sleep=lambda _: None).run("SELECT nope FROM t")


@pytest.mark.unit
def test_athena_engine_reads_every_result_page() -> None:
    client, stub = _stubbed()
    meta = {"ColumnInfo": [{"Name": "n", "Label": "n", "Type": "integer"}]}
    stub.add_response(
        "start_query_execution",
        {"QueryExecutionId": "q-1"},
        {
            "QueryString": "SELECT n FROM t",
            "QueryExecutionContext": {"Database": "changelake", "Catalog": "AwsDataCatalog"},
            "WorkGroup": "primary",
        },
    )
    stub.add_response("get_query_execution", _execution("SUCCEEDED"))
    stub.add_response(
        "get_query_results",
        {
            "ResultSet": {"Rows": [_row("n"), _row("1"), _row("2")], "ResultSetMetadata": meta},
            "NextToken": "t2",
        },
        {"QueryExecutionId": "q-1"},
    )
    stub.add_response(
        "get_query_results",
        {"ResultSet": {"Rows": [_row("3")], "ResultSetMetadata": meta}},
        {"QueryExecutionId": "q-1", "NextToken": "t2"},
    )
    with stub:
        result = AthenaEngine(client=client, sleep=lambda _: None).run("SELECT n FROM t")
    assert result.rows == [(1,), (2,), (3,)]
    assert result.stats.bytes_read == 2048


@pytest.mark.unit
def test_athena_engine_cancels_at_deadline() -> None:
    client, stub = _stubbed()
    now = [0.0]
    stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"})
    # t=0 RUNNING, pause 0.4; t=0.4 RUNNING and the next pause (0.8) would pass the deadline.
    for _ in range(2):
        stub.add_response("get_query_execution", _execution("RUNNING"))
    stub.add_response("stop_query_execution", {}, {"QueryExecutionId": "q-1"})

    def sleep(seconds: float) -> None:
        now[0] += seconds

    engine = AthenaEngine(
        client=client, sleep=sleep, clock=lambda: now[0], timeout_s=1.0, poll_initial_s=0.4
    )
    with stub, pytest.raises(QueryError, match="still RUNNING after 1s: cancelled"):
        engine.run("SELECT 1")
    stub.assert_no_pending_responses()
