"""docker-compose.yml checked against the code, then run as local processes the way Compose would.

No Docker engine here: the unit tests read the file (services, commands, settings, ports,
dependencies); the e2e test starts each compose service's command as a subprocess with the
compose environment, the emulator's hostname and port translated to 127.0.0.1 and a free port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import changelake_dockerspec
import pytest
from changelake_cli.local_stack import free_port

ds = changelake_dockerspec
ROOT: Path = ds.ROOT
SERVICES: list[str] = ds.SERVICES
EMULATOR = "emulator"
# Services that run by default (`docker compose up`); the rest sit behind a profile.
DEFAULT_SERVICES = ["catalog", "consumer", "emulator", "producer"]
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The parsed compose file."""
    return ds.compose()  # type: ignore[no-any-return]


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """name → service definition."""
    return dict(compose["services"])


def emulator_port(compose: dict[str, Any]) -> int:
    """The emulator's port inside the compose network (its settings' port)."""
    return int(ds.environment(services(compose)[EMULATOR])["CHANGELAKE_EMULATOR_PORT"])


# ---- the file against the code -------------------------------------------------------------------


@pytest.mark.unit
def test_compose_one_service_per_service_folder(compose: dict[str, Any]) -> None:
    """Every folder under services/ is a compose service of the same name, and nothing else."""
    assert sorted(services(compose)) == SERVICES
    default = sorted(n for n, s in services(compose).items() if not s.get("profiles"))
    assert default == DEFAULT_SERVICES


@pytest.mark.unit
@pytest.mark.parametrize("name", SERVICES)
def test_compose_builds_each_service_from_its_dockerfile(
    compose: dict[str, Any], name: str
) -> None:
    """Context is the repo root; dockerfile is services/<name>/Dockerfile; target is a stage."""
    build = services(compose)[name]["build"]
    assert build["context"] == "."
    assert build["dockerfile"] == f"services/{name}/Dockerfile"
    stages = [s.name for s in ds.dockerfile(name).stages]
    assert build.get("target", stages[-1]) in stages
    assert services(compose)[name]["image"] == f"changelake-{name}:local"


@pytest.mark.unit
@pytest.mark.parametrize("name", SERVICES)
def test_compose_command_runs_code_that_exists(compose: dict[str, Any], name: str) -> None:
    """The command (or the image CMD) is ``python -m <module>`` with a __main__, or a handler."""
    service = services(compose)[name]
    cmd = ds.command(name, service)
    target = service.get("build", {}).get("target")
    stage = ds.dockerfile(name).stage(target)
    if stage.image.startswith("public.ecr.aws/lambda/"):
        (handler_name,) = cmd
        assert callable(ds.handler(handler_name))
        return
    if cmd[0].startswith("/"):  # the consumer's KCL entrypoint script, copied into the image
        script = ROOT / "services" / name / Path(cmd[0]).name
        assert script.is_file(), f"{name}: {cmd[0]} is not a file of the service"
        assert os.access(script, os.X_OK), script
        return
    assert cmd[:2] == ["python", "-m"], cmd
    assert ds.module_runnable(cmd[2]), f"{name}: python -m {cmd[2]} cannot run"
    assert cmd[2] == f"changelake_{name}"


@pytest.mark.unit
def test_compose_consumer_runs_the_kcl_daemon_as_ecs_does(compose: dict[str, Any]) -> None:
    """Compose runs the consumer image's default command (the MultiLangDaemon), as ECS does,
    pointed at the emulator (the endpoint turns on polling, JSON instead of CBOR, no metrics)."""
    consumer = services(compose)["consumer"]
    assert "command" not in consumer
    assert "entrypoint" not in consumer
    image_cmd = ds.dockerfile("consumer").stage(None).last("CMD").exec_form()
    assert ds.command("consumer", consumer) == image_cmd == ["/usr/local/bin/kcl-entrypoint.sh"]
    assert ds.environment(consumer)["AWS_ENDPOINT_URL"].startswith("http://emulator:")


@pytest.mark.unit
@pytest.mark.parametrize("name", SERVICES)
def test_compose_changelake_variables_are_settings_fields(
    compose: dict[str, Any], name: str
) -> None:
    """Each CHANGELAKE_* variable is a field of the service's settings; the values validate."""
    env = ds.environment(services(compose)[name])
    cls = ds.settings_class(name)
    fields = ds.env_names(cls)
    ours = {k: v for k, v in env.items() if k.startswith("CHANGELAKE_")}
    unknown = sorted(set(ours) - set(fields))
    assert unknown == [], f"{name}: not fields of {cls.__name__}: {unknown}"
    assert ds.required_env_names(cls) <= set(ours)
    # pydantic validates every value exactly as the container would read it.
    settings = ds.load_settings(cls, env)
    for key, value in ours.items():
        # The variable reached its field: read from the environment = given to the field.
        given = cls.model_validate({fields[key]: value})
        assert getattr(settings, fields[key]) == getattr(given, fields[key])


@pytest.mark.unit
def test_compose_producer_is_told_how_much_to_write(compose: dict[str, Any]) -> None:
    """The producer task needs a count or a duration (its __main__ exits 2 otherwise)."""
    env = ds.environment(services(compose)["producer"])
    assert {"CHANGELAKE_PRODUCER_COUNT", "CHANGELAKE_PRODUCER_DURATION_S"} & set(env)


@pytest.mark.unit
def test_compose_every_service_agrees_on_resource_names(compose: dict[str, Any]) -> None:
    """The names the emulator creates are the names every other service reads."""
    shared = ("REGION", "TABLES", "STREAM_NAME", "LAKE_BUCKET", "DATABASE", "CATALOG_QUEUE")
    envs = {n: ds.environment(s) for n, s in services(compose).items()}
    for key in (f"CHANGELAKE_{k}" for k in shared):
        values = {n: e[key] for n, e in envs.items()}
        assert len(set(values.values())) == 1, (key, values)


@pytest.mark.unit
@pytest.mark.parametrize("name", [s for s in SERVICES if s != EMULATOR])
def test_compose_services_reach_aws_only_through_the_emulator(
    compose: dict[str, Any], name: str
) -> None:
    """AWS_ENDPOINT_URL is the emulator's service name and port; credentials are fake."""
    env = ds.environment(services(compose)[name])
    assert env["AWS_ENDPOINT_URL"] == f"http://{EMULATOR}:{emulator_port(compose)}"
    for key, value in FAKE_CREDENTIALS.items():
        assert env[key] == value
    assert env["AWS_DEFAULT_REGION"] == env["AWS_REGION"] == env["CHANGELAKE_REGION"]
    assert "AWS_PROFILE" not in env


@pytest.mark.unit
def test_compose_emulator_port_matches_code_dockerfile_and_binding(compose: dict[str, Any]) -> None:
    """One port everywhere: settings default, CLI default, EXPOSE, probe, published on loopback."""
    from changelake_emulator.settings import EmulatorSettings

    port = emulator_port(compose)
    # `changelake local up` defaults to the emulator settings' port too (CHANGELAKE_EMULATOR_PORT).
    assert port == EmulatorSettings.model_fields["emulator_port"].default
    emulator = services(compose)[EMULATOR]
    assert emulator["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert ds.environment(emulator)["CHANGELAKE_EMULATOR_HOST"] == "0.0.0.0"
    runtime = ds.dockerfile(EMULATOR).stage(None)
    assert runtime.last("EXPOSE").value == str(port)
    assert f"CHANGELAKE_EMULATOR_PORT={port}" in runtime.last("ENV").value
    assert f"http://127.0.0.1:{port}" in runtime.last("HEALTHCHECK").exec_form()[-1]


@pytest.mark.unit
def test_compose_published_ports_bind_loopback_only(compose: dict[str, Any]) -> None:
    """Every published port is bound to 127.0.0.1 (never all interfaces of the host)."""
    for name, service in services(compose).items():
        for mapping in service.get("ports", []):
            assert str(mapping).startswith("127.0.0.1:"), (name, mapping)


@pytest.mark.unit
@pytest.mark.parametrize("name", [s for s in DEFAULT_SERVICES if s != EMULATOR])
def test_compose_services_wait_for_a_healthy_emulator(compose: dict[str, Any], name: str) -> None:
    """Each service starts once the emulator's healthcheck passes (resources exist)."""
    assert services(compose)[name]["depends_on"] == {EMULATOR: {"condition": "service_healthy"}}
    emulator_stage = ds.dockerfile(EMULATOR).stage(None)
    assert emulator_stage.last("HEALTHCHECK") is not None
    assert "healthcheck" not in services(compose)[EMULATOR]  # one probe: the image's


@pytest.mark.unit
@pytest.mark.parametrize("name", DEFAULT_SERVICES)
def test_compose_runs_services_as_ecs_does(compose: dict[str, Any], name: str) -> None:
    """Read-only root, the image's own non-root user, writable only at the image's VOLUMEs.

    The writable paths are the image's ``VOLUME`` list (the CDK task definitions mount the
    same, checked in tests/test_deploy_contract.py); compose mounts a fresh anonymous volume
    at each, into which the engine copies the image directory's owner, as ECS does.
    """
    service = services(compose)[name]
    assert service["read_only"] is True
    assert "user" not in service, "the image's USER, as on ECS"
    assert "tmpfs" not in service
    declared = ds.volumes(ds.dockerfile(name).stage(service["build"].get("target")))
    assert declared
    assert sorted(service["volumes"]) == sorted(declared)


# ---- the services as local processes, the way compose runs them --------------------------------


def local_env(compose: dict[str, Any], name: str, port: int) -> dict[str, str]:
    """A service's compose environment with ``emulator:<port>`` and 0.0.0.0 mapped to loopback."""
    compose_port = emulator_port(compose)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHANGELAKE_", "AWS_"))}
    overrides = {"CHANGELAKE_EMULATOR_PORT": str(port), "CHANGELAKE_EMULATOR_HOST": "127.0.0.1"}
    for key, value in ds.environment(services(compose)[name]).items():
        local = value.replace(f"{EMULATOR}:{compose_port}", f"127.0.0.1:{port}")
        env[key] = overrides.get(key, local)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def local_argv(compose: dict[str, Any], name: str) -> list[str]:
    """The compose command, run with this interpreter (the image's ``python``).

    The consumer's (the KCL daemon's entrypoint) runs here as the local shard runner: the real
    daemon runs in tests/e2e/test_kcl_daemon.py and, in its image, in `make compose-test`.
    """
    cmd = ds.command(name, services(compose)[name])
    if name == "consumer":
        cmd = ["python", "-m", "changelake_consumer", "local"]
    assert cmd[0] == "python"
    return [sys.executable, *cmd[1:]]


class Processes:
    """Started subprocesses, each stopped (SIGTERM, then SIGKILL) at the end of the test."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start one service; its stdout and stderr go to ``<logs>/<name>.log``."""
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, env=env, cwd=self.logs, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def output(self, name: str) -> str:
        """What a service printed so far."""
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def terminate(self, name: str, timeout: float = 30) -> int:
        """SIGTERM (what `docker compose stop` sends) and wait for the exit code."""
        proc = self.procs[name]
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=timeout)

    def close(self) -> None:
        """Kill anything still running."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """A process group for one test, never leaking a process."""
    group = Processes(tmp_path)
    try:
        yield group
    finally:
        group.close()


def wait_healthy(probe: list[str], env: dict[str, str], deadline: float) -> None:
    """Run the image's HEALTHCHECK command until it succeeds (like Docker's health state)."""
    while time.monotonic() < deadline:
        if (
            subprocess.run(probe, env=env, capture_output=True, timeout=20, check=False).returncode
            == 0
        ):
            return
        time.sleep(0.5)
    raise AssertionError("the emulator never became healthy")


def s3_keys(endpoint: str, bucket: str, prefix: str) -> list[str]:
    """Object keys under a prefix, through the emulator."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    found = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return [str(o["Key"]) for o in found]


def glue_tables(endpoint: str, database: str) -> list[str]:
    """Glue table names of a database, through the emulator."""
    import boto3

    glue = boto3.client("glue", endpoint_url=endpoint, region_name="us-east-1")
    return [str(t["Name"]) for t in glue.get_tables(DatabaseName=database)["TableList"]]


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_compose_services_as_local_processes_flow_and_stop_on_sigterm(
    compose: dict[str, Any], processes: Processes
) -> None:
    """Emulator, producer, consumer, catalog as compose runs them: data flows, SIGTERM stops."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    # Two tables' first objects through the KCL daemon's start-up, on a loaded 2-core machine.
    deadline = time.monotonic() + 180
    # GIVEN the emulator started with its compose command and environment, on a free port
    emulator_env = local_env(compose, EMULATOR, port)
    processes.start(EMULATOR, local_argv(compose, EMULATOR), emulator_env)
    probe = ds.dockerfile(EMULATOR).stage(None).last("HEALTHCHECK").exec_form()
    probe = [sys.executable, *probe[1:-1], probe[-1].replace("127.0.0.1:4566", f"127.0.0.1:{port}")]
    wait_healthy(probe, emulator_env, deadline)
    with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=10) as resp:
        assert resp.status == 200
    # WHEN the consumer and the catalog run as compose runs them, and the producer writes
    for name in ("consumer", "catalog"):
        processes.start(name, local_argv(compose, name), local_env(compose, name, port))
    producer_env = local_env(compose, "producer", port)
    producer_env.pop("CHANGELAKE_PRODUCER_DURATION_S")
    producer_env.pop("CHANGELAKE_PRODUCER_RATE")
    producer_env["CHANGELAKE_PRODUCER_COUNT"] = "40"
    producer_env["CHANGELAKE_PRODUCER_SEED"] = "7"
    producer = processes.start("producer", local_argv(compose, "producer"), producer_env)
    assert producer.wait(timeout=90) == 0, processes.output("producer")
    # THEN Parquet lands under changes/ and the catalog registers the change table
    bucket = ds.environment(services(compose)["consumer"])["CHANGELAKE_LAKE_BUCKET"]
    database = ds.environment(services(compose)["catalog"])["CHANGELAKE_DATABASE"]
    tables = ds.environment(services(compose)["catalog"])["CHANGELAKE_TABLES"].split(",")
    assert len(tables) == 2  # two tables, one stream (ADR 0032)
    while time.monotonic() < deadline:
        parquet = [k for k in s3_keys(endpoint, bucket, "changes/") if k.endswith(".parquet")]
        registered = glue_tables(endpoint, database)
        if parquet and all(f"{table}_changes" in registered for table in tables):
            break
        for name in ("consumer", "catalog"):
            assert processes.procs[name].poll() is None, processes.output(name)
        time.sleep(1)
    else:
        raise AssertionError(
            "no Parquet / Glue table in time\n"
            + "\n".join(f"--- {n}\n{processes.output(n)[-3000:]}" for n in processes.procs)
        )
    assert {k.split("/")[1] for k in parquet} == set(tables)
    assert all(k.split("/")[2].startswith("dt=") for k in parquet)
    # AND every long-running service stops cleanly on SIGTERM, the emulator last
    for name in ("catalog", "consumer", EMULATOR):
        code = processes.terminate(name)
        assert code == 0, f"{name} exited {code}\n{processes.output(name)[-3000:]}"
