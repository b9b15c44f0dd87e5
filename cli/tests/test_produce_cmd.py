"""`changelake produce` against whatever AWS_ENDPOINT_URL names."""

from __future__ import annotations

import boto3
import orjson
import pytest
from changelake_cli.main import app
from typer.testing import CliRunner

runner = CliRunner()


@pytest.mark.aws
def test_produce_writes_count_changes_and_prints_json_summary(emulator: object) -> None:
    result = runner.invoke(
        app,
        [
            "produce",
            "--count",
            "40",
            "--seed",
            "2",
            "--mix",
            "insert=1",
            "--format",
            "json",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["total"], summary["inserts"], summary["seed"]) == (40, 40, 2)
    items = boto3.client("dynamodb").scan(TableName="persons")["Items"]
    assert sorted(i["pk"]["S"] for i in items) == summary["live_pks"]


@pytest.mark.aws
def test_produce_prints_text_summary_when_default_format(emulator: object) -> None:
    result = runner.invoke(app, ["produce", "--count", "5", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "produced into persons" in result.stdout
    assert "total" in result.stdout


@pytest.mark.aws
def test_produce_exits_one_with_hint_when_table_missing(aws_endpoint: str) -> None:
    result = runner.invoke(app, ["produce", "--count", "5", "--no-progress"])
    assert result.exit_code == 1
    assert "does not exist" in result.output
    assert "changelake local up" in result.output


@pytest.mark.unit
@pytest.mark.parametrize(
    "args",
    [
        ["produce"],
        ["produce", "--count", "1", "--mix", "upsert=1"],
        ["produce", "--count", "1", "--format", "xml"],
    ],
)
def test_produce_rejects_bad_options(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
