"""The Dockerfiles, read as Docker reads them and checked against the code and the lock.

No Docker engine is needed: stages, COPY sources (after .dockerignore), commands, handlers,
users and the KCL jar check are verified from the files; the builder's ``uv export`` step is
replayed on a copy of the exact build context.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import changelake_dockerspec
import pytest

ds = changelake_dockerspec
ROOT: Path = ds.ROOT
SERVICES: list[str] = ds.SERVICES
# Images that run as Lambda functions: their last stage is the AWS Lambda Python base image.
LAMBDA_STAGES = {"transform": "lambda", "producer": "lambda"}
# Each base is a build argument whose default is the official image pinned by digest (ADR 0020).
BASE_ARGS = {
    "PYTHON_BASE": re.compile(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}"),
    "LAMBDA_BASE": re.compile(r"public\.ecr\.aws/lambda/python:3\.12@sha256:[0-9a-f]{64}"),
}


def is_lambda(stage: ds.Stage) -> bool:
    """A stage on the Lambda base image."""
    return stage.base_arg == "LAMBDA_BASE"


def package_name(service: str) -> str:
    """The distribution name of a service (its pyproject's project.name)."""
    data = tomllib.loads((ROOT / "services" / service / "pyproject.toml").read_text())
    return str(data["project"]["name"])


def find_uv() -> str:
    """The uv binary: the one running us (``uv run`` sets $UV), on PATH, or the Makefile's."""
    for candidate in (
        os.environ.get("UV"),
        shutil.which("uv"),
        str(ROOT / ".tools" / "bin" / "uv"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    raise AssertionError("uv not found: run the tests through `make test` / `uv run`")


@pytest.mark.unit
def test_dockerfiles_one_per_service_folder() -> None:
    """Every service folder (a workspace member) has its own Dockerfile."""
    assert SERVICES == ["catalog", "consumer", "emulator", "producer", "transform"]
    for service in SERVICES:
        assert (ROOT / "services" / service / "Dockerfile").is_file(), service


@pytest.mark.unit
@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_multistage_pinned_bases_non_root(service: str) -> None:
    """A builder stage plus runtime stage(s) on pinned bases; every runnable stage drops root."""
    parsed = ds.dockerfile(service)
    assert len(parsed.stages) >= 2, "multi-stage: the builder's tools stay out of the image"
    assert parsed.stages[0].name == "builder"
    assert parsed.stages[0].base_arg == "PYTHON_BASE"
    for stage in parsed.stages:
        assert stage.base_arg in BASE_ARGS, (service, stage.name, "FROM ${PYTHON|LAMBDA_BASE}")
        assert BASE_ARGS[stage.base_arg].fullmatch(stage.image), (service, stage.image)
        if stage.name == "builder":
            continue
        user = stage.last("USER")
        assert user is not None, f"{service}:{stage.name} runs as root"
        assert user.value.split(":")[0] not in ("root", "0"), (service, stage.name)
        assert stage.last("CMD") is not None, (service, stage.name)
    runtime_stages = [s for s in parsed.stages if s.name != "builder"]
    expected_lambda = LAMBDA_STAGES.get(service)
    lambda_stages = [s.name for s in runtime_stages if is_lambda(s)]
    assert lambda_stages == ([expected_lambda] if expected_lambda else [])


@pytest.mark.unit
@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_installs_its_member_from_the_frozen_lock(service: str) -> None:
    """The builder exports the service's locked, hashed requirements and builds its wheel."""
    parsed = ds.dockerfile(service)
    runs = " && ".join(i.value for i in parsed.stage("builder").all("RUN"))
    name = package_name(service)
    export = re.search(r"uv export ([^&]*)", runs)
    assert export is not None, f"{service}: no uv export"
    flags = export.group(1).split()
    assert "--frozen" in flags
    assert "--no-dev" in flags
    assert flags[flags.index("--package") + 1] == name
    assert f"--package {name} --out-dir" in runs  # the member's own wheel
    assert "--package changelake --out-dir" in runs  # the shared library's wheel
    assert "--require-hashes" in " ".join(
        i.value for i in parsed.instructions if i.keyword == "RUN"
    )
    lock = (ROOT / "uv.lock").read_text()
    assert f'name = "{name}"' in lock


@pytest.mark.unit
@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_copy_sources_exist_in_the_build_context(service: str) -> None:
    """Every COPY source exists and survives .dockerignore (the context is the repo root)."""
    parsed = ds.dockerfile(service)
    copies = [i for i in parsed.instructions if i.keyword == "COPY" and "from" not in i.flags()]
    assert copies
    context = set(ds.build_context_files())
    for copy in copies:
        *sources, _dest = copy.args()
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"{service}: COPY {source} does not exist"
            rel = source.rstrip("/")
            sent = {f for f in context if f == rel or f.startswith(rel + "/")}
            assert sent, f"{service}: COPY {source}: .dockerignore drops it"
    # Stage-to-stage copies name a stage that exists earlier in the file.
    names = [s.name for s in parsed.stages]
    for copy in (i for i in parsed.instructions if "from" in i.flags()):
        assert names.index(copy.flags()["from"]) < names.index(copy.stage)


@pytest.mark.unit
def test_dockerignore_is_a_deny_list_every_engine_reads_alike() -> None:
    """Plain exclusions only: `!` re-includes are where buildah and BuildKit disagreed."""
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert lines
    assert [line for line in lines if line.startswith("!")] == []


@pytest.mark.unit
@pytest.mark.parametrize("image", ds.images(), ids=[i.tag for i in ds.images()])
def test_long_running_images_declare_their_writable_paths_owned_by_the_user(
    image: ds.Image,
) -> None:
    """Each service image VOLUMEs its writable paths, after chowning them to the service user.

    ECS mounts a task volume at each writable path under a read-only root; only a ``VOLUME``
    at the same path makes it copy the image's directory owner into the volume (else root
    0755, which uid 10001 cannot write). Lambda images write nothing outside Lambda's /tmp.
    """
    stage = image.stage()
    paths = ds.volumes(stage)
    if is_lambda(stage):
        assert paths == []
        return
    assert paths == ["/tmp"], image.tag
    runs = " && ".join(r.value for r in stage.all("RUN"))
    for path in paths:
        assert f"chown 10001:10001 {path}" in runs, (image.tag, path)
    volume_line = stage.last("VOLUME")
    assert volume_line is not None
    chown_line = max(r.line for r in stage.all("RUN") if "chown 10001:10001" in r.value)
    assert chown_line < volume_line.line  # changes after a VOLUME line are discarded


@pytest.mark.unit
@pytest.mark.parametrize("service", SERVICES)
def test_no_run_step_bind_mounts_another_stage(service: str) -> None:
    """buildah (podman) leaves a ``--mount=type=bind,from=<stage>``'s content out of its layer
    cache key: the transform image got the producer's cached layer. Stages pass files by COPY."""
    for run in [i for i in ds.dockerfile(service).instructions if i.keyword == "RUN"]:
        mounts = re.findall(r"--mount=(\S+)", run.value)
        assert not [m for m in mounts if "from=" in m], (service, run.value)


@pytest.mark.unit
def test_images_list_covers_every_compose_and_deploy_image() -> None:
    """containers/images.txt (what `make images` builds) holds every image anyone runs."""
    built = {(i.dockerfile, i.target) for i in ds.images()}
    for name, service in ds.compose()["services"].items():
        build = service["build"]
        assert (build["dockerfile"], build.get("target")) in built, name
        assert service["image"] in {i.tag for i in ds.images()}, name


@pytest.mark.unit
def test_dockerignore_sends_sources_and_lock_only() -> None:
    """The context holds the lock, manifests and sources; no venv, tests, deploy or caches."""
    files = sorted(ds.build_context_files())
    assert "uv.lock" in files
    assert "pyproject.toml" in files
    assert "libs/lake/src/changelake_lake/layout.py" in files
    assert "services/consumer/kcl-entrypoint.sh" in files
    for service in SERVICES:
        assert f"services/{service}/pyproject.toml" in files
        assert f"services/{service}/Dockerfile" in files  # CDK stages the context with it
    forbidden = (
        "deploy/",
        "docs/",
        ".git/",
        ".venv/",
        "cli/src/",
        "benchmarks/src/",
        "tests/",
        "/tests/",
    )
    leaked = [f for f in files if f.startswith(forbidden) or "/tests/" in f or "__pycache__" in f]
    assert leaked == []


@pytest.mark.unit
@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_commands_and_handlers_exist_in_the_code(service: str) -> None:
    """Each stage's CMD names a runnable module (``python -m``) or a real Lambda handler."""
    for stage in ds.dockerfile(service).stages[1:]:
        cmd_instr = stage.last("CMD")
        assert cmd_instr is not None
        cmd = cmd_instr.exec_form()
        assert cmd, f"{service}:{stage.name}: CMD must be exec form (signals reach the process)"
        if is_lambda(stage):
            (handler_name,) = cmd
            assert callable(ds.handler(handler_name)), handler_name
        elif cmd[:2] == ["python", "-m"]:
            assert ds.module_runnable(cmd[2]), f"{service}: python -m {cmd[2]} cannot run"
        else:
            script = ROOT / "services" / service / Path(cmd[0]).name
            assert script.is_file(), f"{service}: {cmd[0]} is not a file of the service"
            assert os.access(script, os.X_OK), f"{script} is not executable"


@pytest.mark.unit
def test_consumer_dockerfile_installs_real_kclpy_and_fails_without_jars() -> None:
    """The consumer image installs amazon-kclpy 3.1.3 (kcl extra), checks the jars, has a JRE."""
    parsed = ds.dockerfile("consumer")
    builder_runs = [i.value for i in parsed.stage("builder").all("RUN")]
    assert any("--extra kcl" in r for r in builder_runs)
    jar_checks = [r for r in builder_runs if "amazon_kclpy" in r and "jars" in r]
    assert jar_checks, "the builder must fail when amazon_kclpy/jars/*.jar is empty"
    (check,) = jar_checks
    assert "*.jar" in check
    assert "assert jars" in check
    runtime = parsed.stage("runtime")
    assert any("openjdk-17-jre-headless" in r.value for r in runtime.all("RUN"))
    assert any("java -XX:-UsePerfData -version" in r.value for r in runtime.all("RUN"))
    # The lock pins the real package behind the extra.
    lock = (ROOT / "uv.lock").read_text()
    assert 'name = "amazon-kclpy"\nversion = "3.1.3"' in lock
    assert '{ name = "amazon-kclpy", marker = "extra == \'kcl\'", specifier = "==3.1.3" }' in lock


@pytest.mark.unit
def test_emulator_dockerfile_exposes_and_probes_the_default_port() -> None:
    """EXPOSE, the CMD's --port and the HEALTHCHECK URL all use the emulator's default port."""
    from changelake_emulator.settings import EmulatorSettings

    default_port = EmulatorSettings.model_fields["emulator_port"].default  # `local up`'s too

    runtime = ds.dockerfile("emulator").stage(None)
    expose = runtime.last("EXPOSE")
    assert expose is not None
    assert expose.value == str(default_port)
    assert runtime.last("CMD").exec_form() == ["python", "-m", "changelake_emulator"]
    env = runtime.last("ENV").value
    assert f"CHANGELAKE_EMULATOR_PORT={default_port}" in env
    assert "CHANGELAKE_EMULATOR_HOST=0.0.0.0" in env  # inside the container only
    probe = runtime.last("HEALTHCHECK").exec_form()
    assert f"http://127.0.0.1:{default_port}" in probe[-1]


def copy_build_context(target_root: Path) -> Path:
    """A copy of exactly the files Docker sends (the builder's /src) under ``target_root``."""
    for rel in ds.build_context_files():
        target = target_root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    return target_root


def export_requirements(service: str, context: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """Replay the builder's ``uv export`` on ``context``, writing the requirements to ``out``."""
    runs = " && ".join(i.value for i in ds.dockerfile(service).stage("builder").all("RUN"))
    (export,) = re.findall(r"uv export [^&]*", runs)
    args = export.split()[1:]
    args[args.index("-o") + 1] = str(out)
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_CACHE": "1"}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        [find_uv(), *args],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


@pytest.mark.unit
@pytest.mark.parametrize("service", ["emulator", "producer", "catalog", "consumer"])
def test_builder_export_step_runs_on_the_exact_build_context(service: str, tmp_path: Path) -> None:
    """Replay the builder's ``uv export`` on a copy of the context Docker would send."""
    # GIVEN the files .dockerignore lets through, laid out as the builder's /src
    context = copy_build_context(tmp_path / "src")
    # WHEN uv exports exactly as the Dockerfile does
    proc = export_requirements(service, context, tmp_path / "requirements.txt")
    # THEN the requirements are hash-pinned and hold the service's own dependencies
    assert proc.returncode == 0, proc.stderr
    requirements = (tmp_path / "requirements.txt").read_text()
    assert "--hash=sha256:" in requirements
    assert "pydantic-settings==" in requirements
    assert "changelake" not in re.findall(r"^([a-z0-9_.-]+)==", requirements, re.M)
    expected = {
        "emulator": "moto==",
        "producer": "faker==",
        "catalog": "pyarrow==",
        "consumer": "amazon-kclpy==3.1.3",
    }[service]
    assert expected in requirements


@pytest.mark.unit
def test_kcl_entrypoint_renders_properties_and_execs_the_daemon(tmp_path: Path) -> None:
    """The consumer image's CMD writes the .properties and *execs* java (PID 1 gets SIGTERM)."""
    # GIVEN a stand-in `java` that records its PID and arguments, and a jars folder
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "java-args"
    java = bin_dir / "java"
    java.write_text(f'#!/bin/sh\nprintf "%s\\n" "$CHANGELAKE_KCL_WORKER_ID" "$$" "$@" > {record}\n')
    java.chmod(0o755)
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "amazon-kinesis-client-multilang.jar").write_bytes(b"")
    properties = tmp_path / "kcl.properties"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHANGELAKE_", "AWS_"))}
    env.update(
        PATH=os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), env["PATH"]]),
        CHANGELAKE_KCL_JARS_DIR=str(jars),
        CHANGELAKE_KCL_PROPERTIES_PATH=str(properties),
        CHANGELAKE_STREAM_NAME="orders-stream",
        CHANGELAKE_APPLICATION_NAME="orders-consumer",
        CHANGELAKE_REGION="eu-west-1",
    )
    cmd = ds.dockerfile("consumer").stage(None).last("CMD").exec_form()
    script = ROOT / "services" / "consumer" / Path(cmd[0]).name
    # WHEN the entrypoint runs
    proc = subprocess.Popen(["sh", str(script)], env=env, cwd=tmp_path)
    assert proc.wait(timeout=60) == 0
    # THEN java replaced the entrypoint process and got the daemon and the properties file
    worker, pid, *argv = record.read_text().splitlines()
    assert int(pid) == proc.pid
    assert argv == [
        "-cp",
        str(jars / "amazon-kinesis-client-multilang.jar"),
        "software.amazon.kinesis.multilang.MultiLangDaemon",
        "--properties-file",
        str(properties),
        "--log-configuration",  # the shipped logback.xml: JSON lines at INFO on stderr
        str(ROOT / "services/consumer/src/changelake_consumer/logback.xml"),
    ]
    rendered = dict(
        line.split(" = ", 1)
        for line in properties.read_text().splitlines()
        if " = " in line and not line.startswith("#")
    )
    assert rendered["executableName"] == f"{sys.executable} -m changelake_consumer record-processor"
    assert rendered["streamName"] == "orders-stream"
    assert rendered["applicationName"] == "orders-consumer"
    assert rendered["regionName"] == "eu-west-1"
    assert rendered["callProcessRecordsEvenForEmptyRecordList"] == "true"
    # One worker id, fixed before the JVM starts: in the properties and in the environment its
    # record processors inherit (they fence their writes with its leases, ADR 0043).
    assert worker
    assert rendered["workerId"] == worker
    # The image points the properties at /tmp, the writable scratch volume on ECS.
    runtime_env = ds.dockerfile("consumer").stage(None).last("ENV").value
    assert "CHANGELAKE_KCL_PROPERTIES_PATH=/tmp/" in runtime_env


@pytest.fixture(scope="module")
def build_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of exactly the files Docker sends (the builder's /src)."""
    return copy_build_context(tmp_path_factory.mktemp("context"))


# Amazon Linux 2023 (the python3.12+ Lambda runtimes) ships glibc 2.34.
LAMBDA_PLATFORM = "x86_64-manylinux_2_34"


@pytest.mark.e2e
@pytest.mark.parametrize("service", sorted(LAMBDA_STAGES))
def test_lambda_requirements_have_wheels_for_the_lambda_runtime(
    service: str, build_context: Path, tmp_path: Path
) -> None:
    """Every locked requirement of a Lambda image has a wheel for the runtime's Python and glibc.

    The Lambda stage installs with pip inside the Lambda base image: an sdist there would need a
    compiler the image lacks. (Lambda's python3.11 runtime, glibc 2.26, fails here: ADR 0012.)
    """
    lambda_stage = ds.dockerfile(service).stage(LAMBDA_STAGES[service])
    python_version = lambda_stage.image.partition("@")[0].rsplit(":", 1)[1]
    requirements = tmp_path / "requirements.txt"
    exported = export_requirements(service, build_context, requirements)
    assert exported.returncode == 0, exported.stderr
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    proc = subprocess.run(
        [
            find_uv(),
            "pip",
            "install",
            "--target",
            str(tmp_path / "task"),
            "--python-platform",
            LAMBDA_PLATFORM,
            "--python-version",
            python_version,
            "--only-binary",
            ":all:",
            "--no-deps",
            "--require-hashes",
            "-r",
            str(requirements),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    tag = f"cpython-{python_version.replace('.', '')}-x86_64-linux-gnu.so"
    assert list((tmp_path / "task").rglob(f"*.{tag}")), "native wheels for the runtime's Python"
