"""KCL .properties from settings, and the KCL runner's clear failure without Java or jars."""

from __future__ import annotations

from pathlib import Path

import pytest
from changelake_cli.main import app
from changelake_consumer import kcl_properties
from changelake_consumer.settings import ConsumerSettings
from typer.testing import CliRunner

pytestmark = pytest.mark.unit


def _props(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#")
    return {k.strip(): v.strip() for k, v in pairs}


def test_render_properties_from_settings_without_endpoints() -> None:
    settings = ConsumerSettings(
        stream_name="s1", application_name="app1", region="eu-west-1", initial_position="LATEST"
    )
    props = _props(kcl_properties.render(settings, env={}))
    assert props["streamName"] == "s1"
    assert props["applicationName"] == "app1"
    assert props["regionName"] == "eu-west-1"
    assert props["initialPositionInStream"] == "LATEST"
    assert props["callProcessRecordsEvenForEmptyRecordList"] == "true"
    assert props["executableName"].endswith("-m changelake_consumer record-processor")
    assert "kinesisEndpoint" not in props
    assert "dynamoDBEndpoint" not in props
    assert "metricsLevel" not in props
    assert props["retrievalMode"] == "POLLING"  # on AWS too: no enhanced fan-out (ADR 0016)
    assert props["failoverTimeMillis"] == "10000"
    assert props["shardSyncIntervalMillis"] == "5000"
    assert int(props["shutdownGraceMillis"]) > 0  # the daemon's default 0 means no graceful stop


def test_render_properties_with_endpoints_when_set() -> None:
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "AWS_ENDPOINT_URL_DYNAMODB": "http://x:1"}
    props = _props(kcl_properties.render(ConsumerSettings(kcl_max_leases_for_worker=4), env=env))
    assert props["kinesisEndpoint"] == "http://127.0.0.1:4566"
    assert props["dynamoDBEndpoint"] == "http://x:1"
    assert props["metricsLevel"] == "NONE"
    assert props["maxLeasesForWorker"] == "4"


def test_daemon_command_without_java_names_the_fix() -> None:
    settings = ConsumerSettings(kcl_java="no-such-java-binary")
    with pytest.raises(kcl_properties.KclUnavailableError, match="needs Java"):
        kcl_properties.daemon_command(settings, Path("x.properties"))


def test_daemon_command_without_jars_names_the_fix(tmp_path: Path) -> None:
    fake_java = tmp_path / "java"
    fake_java.write_text("#!/bin/sh\n")
    fake_java.chmod(0o755)
    settings = ConsumerSettings(kcl_java=str(fake_java), kcl_jars_dir=str(tmp_path / "jars"))
    with pytest.raises(kcl_properties.KclUnavailableError, match="KCL jars"):
        kcl_properties.daemon_command(settings, Path("x.properties"))
    (tmp_path / "jars").mkdir()
    (tmp_path / "jars" / "other.jar").write_bytes(b"")
    with pytest.raises(kcl_properties.KclUnavailableError, match="multilang"):
        kcl_properties.daemon_command(settings, Path("x.properties"))
    (tmp_path / "jars" / "amazon-kinesis-client-multilang-3.1.3.jar").write_bytes(b"")
    command = kcl_properties.daemon_command(settings, Path("x.properties"), env={})
    assert command[0] == str(fake_java)
    assert command[1] == "-cp"  # on AWS the SDK keeps CBOR
    assert command[3:] == [
        kcl_properties.DAEMON_CLASS,
        "--properties-file",
        "x.properties",
        "--log-configuration",
        str(kcl_properties.LOGBACK_CONFIG),
    ]
    local = kcl_properties.daemon_command(
        settings, Path("x.properties"), env={"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}
    )
    assert local[1] == "-Daws.cborEnabled=false"  # moto parses JSON only
    assert kcl_properties.LOGBACK_CONFIG.is_file()


def test_cli_consumer_run_kcl_without_java_fails_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHANGELAKE_KCL_JAVA", "no-such-java-binary")
    result = CliRunner().invoke(app, ["consumer", "run", "--runner", "kcl"])
    assert result.exit_code == 2
    assert "the KCL runner needs Java" in result.output
    assert "--runner local" in result.output


def test_cli_consumer_run_kcl_without_jars_fails_clearly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CHANGELAKE_KCL_JARS_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["consumer", "run", "--runner", "kcl"])
    assert result.exit_code == 2
    assert "the KCL runner needs" in result.output
    assert "--runner local" in result.output


def test_cli_consumer_rejects_unknown_runner() -> None:
    result = CliRunner().invoke(app, ["consumer", "run", "--runner", "spark"])
    assert result.exit_code == 2
    assert "local, kcl" in result.output


@pytest.mark.parametrize("command", [["local", "up", "--port", "0"], ["demo", "--count", "1"]])
def test_cli_stack_with_kcl_runner_without_java_fails_before_starting(
    monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("CHANGELAKE_KCL_JAVA", "no-such-java-binary")
    result = CliRunner().invoke(app, [*command, "--runner", "kcl"])
    assert result.exit_code == 2
    assert result.output.count("error:") == 1
    assert "the KCL runner needs Java" in result.output
    assert "ready" not in result.output  # nothing was started


def test_the_worker_id_is_fixed_before_the_daemon_starts_and_kept_by_a_restart() -> None:
    from changelake_consumer.kcl_daemon import KclDaemon

    assert "workerId" not in _props(kcl_properties.render(ConsumerSettings(), env={}))
    pinned = kcl_properties.with_worker_id(ConsumerSettings())
    assert pinned.kcl_worker_id  # a random id, known before the JVM starts
    assert kcl_properties.with_worker_id(pinned) is pinned
    given = ConsumerSettings(kcl_worker_id="consumer-1")
    assert _props(kcl_properties.render(given, env={}))["workerId"] == "consumer-1"
    # the daemon runs as that worker and tells its record processors (write fence, ADR 0043)
    daemon = KclDaemon(given, env={})
    assert daemon.worker_id == "consumer-1"
    assert daemon._env["CHANGELAKE_KCL_WORKER_ID"] == "consumer-1"
    assert KclDaemon(ConsumerSettings(), env={}).worker_id != KclDaemon(env={}).worker_id
    with pytest.raises(RuntimeError, match="two live workers, one id"):
        daemon.restarted()  # never started: nothing is known to be dead


def test_a_worker_id_that_cannot_be_a_property_value_is_refused() -> None:
    with pytest.raises(ValueError, match="kcl_worker_id"):
        ConsumerSettings(kcl_worker_id="a b\nfailoverTimeMillis = 1")
