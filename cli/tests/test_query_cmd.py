"""`changelake query` end to end through the CLI, on the product-written lake and on moto's
Athena."""

from __future__ import annotations

import csv
import io
import json

import pytest
from changelake_cli.main import app
from typer.testing import CliRunner

pytestmark = pytest.mark.aws


def test_query_cmd_json_prints_only_a_json_array(product_lake: str) -> None:
    sql = "SELECT pk, age__n FROM persons_current ORDER BY pk"
    result = CliRunner().invoke(app, ["query", "--sql", sql, "--format", "json"])
    assert result.exit_code == 0, result.output
    # decimal(38,9) stays exact: a JSON string, never a float
    assert json.loads(result.stdout) == [
        {"pk": "p1", "age__n": "30.000000000"},
        {"pk": "p4", "age__n": "51.000000000"},
    ]


def test_query_cmd_named_with_param_as_csv(product_lake: str) -> None:
    result = CliRunner().invoke(
        app,
        ["query", "--named", "item_history", "--param", 'item_key={"pk":"p1"}', "--format", "csv"],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["event_id"], r["event_name"], r["changed_attributes"]) for r in rows] == [
        ("e01", "INSERT", '["age","email","name","pk"]'),
        ("e03", "MODIFY", '["email"]'),
        ("e08", "MODIFY", '["address","email","name"]'),
    ]
    assert rows[0]["old_image"] == ""


def test_query_cmd_positional_params_with_sql(product_lake: str) -> None:
    result = CliRunner().invoke(
        app,
        [
            "query",
            "--sql",
            "SELECT event_id FROM persons_changes WHERE pk = ? AND hour = ?",
            "--param",
            "1='p3'",
            "--param",
            "2='12'",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"event_id": "e07"}]


def test_query_cmd_table_format_shows_rows(product_lake: str) -> None:
    result = CliRunner().invoke(app, ["query", "--named", "duplicates_seen"])
    assert result.exit_code == 0, result.output
    assert "rows_stored" in result.stdout
    assert "│ 11 " in result.stdout


def test_query_cmd_error_exits_1_with_reason(product_lake: str) -> None:
    result = CliRunner().invoke(
        app, ["query", "--sql", "SELECT * FROM missing", "--format", "json"]
    )
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "TABLE_NOT_FOUND" in result.stderr


def test_query_cmd_athena_engine_passes_named_params(aws_endpoint: str) -> None:
    import boto3

    result = CliRunner().invoke(
        app,
        [
            "query",
            "--engine",
            "athena",
            "--named",
            "item_history",
            "--param",
            "item_key=it's",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    client = boto3.client("athena", region_name="us-east-1")
    (query_id,) = client.list_query_executions()["QueryExecutionIds"]
    execution = client.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
    assert execution["ExecutionParameters"] == ["'it''s'"]
    assert "FROM persons_changes" in execution["Query"]
    assert execution["WorkGroup"] == "primary"


def test_query_cmd_athena_workgroup_option(aws_endpoint: str) -> None:
    import boto3

    client = boto3.client("athena", region_name="us-east-1")
    client.create_work_group(Name="analysts", Configuration={})
    result = CliRunner().invoke(
        app, ["query", "--engine", "athena", "--workgroup", "analysts", "--sql", "SELECT 1"]
    )
    assert result.exit_code == 0, result.output
    (query_id,) = client.list_query_executions()["QueryExecutionIds"]
    execution = client.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
    assert execution["WorkGroup"] == "analysts"
