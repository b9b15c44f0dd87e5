"""`changelake produce` against whatever AWS_ENDPOINT_URL names."""

from __future__ import annotations

import boto3
import orjson
import pytest
from changelake.settings import ChangelakeSettings
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


@pytest.mark.aws
@pytest.mark.parametrize(
    "emulator", [{"settings": ChangelakeSettings(tables="persons,orders")}], indirect=True
)
def test_produce_writes_every_configured_table_or_the_ones_named(
    emulator: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHANGELAKE_TABLES", "persons,orders")
    args = ["produce", "--count", "12", "--mix", "insert=1", "--format", "json", "--no-progress"]
    ddb = boto3.client("dynamodb")

    def live(table: str) -> list[str]:
        return sorted(i["pk"]["S"] for i in ddb.scan(TableName=table)["Items"])

    # every configured table by default, the i-th with seed + i (no shared keys)
    result = runner.invoke(app, [*args, "--seed", "5"])
    assert result.exit_code == 0, result.output
    lines = [orjson.loads(line) for line in result.stdout.strip().splitlines()]
    assert [(s["table"], s["seed"], s["total"]) for s in lines] == [
        ("persons", 5, 12),
        ("orders", 6, 12),
    ]
    assert live("persons") == lines[0]["live_pks"]
    assert live("orders") == lines[1]["live_pks"]
    assert not set(live("persons")) & set(live("orders"))
    # --table names the ones to write
    result = runner.invoke(app, [*args, "--seed", "9", "--table", "orders"])
    assert result.exit_code == 0, result.output
    (only,) = [orjson.loads(line) for line in result.stdout.strip().splitlines()]
    assert (only["table"], only["seed"]) == ("orders", 9)
    assert len(live("orders")) == 24
    assert len(live("persons")) == 12


@pytest.mark.unit
@pytest.mark.parametrize(
    "args",
    [
        ["produce"],
        ["produce", "--count", "1", "--mix", "upsert=1"],
        ["produce", "--count", "1", "--format", "xml"],
        ["produce", "--count", "1", "--table", "a/b"],
        ["produce", "--count", "1", "--table", "orders", "--table", "orders"],
    ],
)
def test_produce_rejects_bad_options(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
