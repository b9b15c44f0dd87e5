"""The built images, run by the real engine (`make images` first; `make compose-test` runs this).

Not collected by `make test` (pytest's testpaths leave containers/ out): these need Docker or
podman and the images. Each test fails when an image is missing, runs as root, needs a writable
root filesystem, lost its HEALTHCHECK, or the build context differs from Docker's rules.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import changelake_dockerspec
import pytest

ds = changelake_dockerspec
ROOT = ds.ROOT
pytestmark = pytest.mark.containers

IMAGES = ds.images()
# The services that run for long under ECS / compose (not the Lambda images, not build stages).
LONG_RUNNING = [i for i in IMAGES if i.target in (None, "runtime")]
SERVICE_USER = "10001:10001"


@pytest.fixture(scope="module")
def engine() -> str:
    """docker or podman: the engine `make images` built with."""
    return ds.container_engine()


run = ds.engine_run


def run_python(engine: str, image: ds.Image, script: str, *args: str) -> str:
    """Run ``python3 -c script args`` in the image: read-only root, its VOLUMEs fresh volumes."""
    declared = ds.volumes(image.stage())
    return run(
        engine,
        "run",
        "--rm",
        "--read-only",
        *[a for p in declared for a in ("-v", p)],
        "--entrypoint",
        "python3",
        image.tag,
        "-c",
        script,
        *args,
    )


def inspect(engine: str, tag: str) -> dict[str, Any]:
    """`<engine> image inspect` of one image (it must exist: `make images` built it)."""
    (data,) = json.loads(run(engine, "image", "inspect", tag))
    return dict(data)


# Run inside each image under --read-only as its own user: who am I, the declared writable
# paths are owned by me (copied into the fresh volume) and writable, the rest is read-only,
# and (Lambda images) the handler imports from the task root.
PROBE = """
import importlib, os, sys
handler, paths = sys.argv[1], sys.argv[2:]
print(os.getuid(), os.getgid())
for path in paths:
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (10001, 10001), (path, st.st_uid, st.st_gid)
    with open(os.path.join(path, "probe"), "w") as f:
        f.write("ok")
for path in ("/probe", "/opt/probe", "/etc/probe", "/var/task/probe"):
    try:
        open(path, "w")
    except OSError as exc:
        assert exc.errno in (2, 30), (path, exc)  # EROFS (ENOENT: no such folder)
    else:
        raise AssertionError(path + " is writable")
if handler != "-":
    module, _, attr = handler.rpartition(".")
    assert callable(getattr(importlib.import_module(module), attr)), handler
print("ok")
"""


@pytest.mark.parametrize("image", IMAGES, ids=[i.tag for i in IMAGES])
def test_image_runs_as_the_service_user_with_a_read_only_root(engine: str, image: ds.Image) -> None:
    """Every image is built and runs as uid 10001, writing only to its declared VOLUMEs.

    The engine mounts a fresh volume at each VOLUME path and copies the image's ownership into
    it, as ECS does for a task volume mounted at a VOLUME path (a bare ECS volume is root 0755).
    Long-running images declare /tmp; Lambda images declare nothing (Lambda gives /tmp itself).
    """
    stage = image.stage()
    declared = ds.volumes(stage)
    config = inspect(engine, image.tag)["Config"]
    assert config["User"] == SERVICE_USER
    assert sorted(config.get("Volumes") or {}) == sorted(declared)
    if image in LONG_RUNNING:
        assert declared, f"{image.tag}: no VOLUME: nothing would be writable under ECS"
    cmd = stage.last("CMD").exec_form()
    handler = cmd[0] if image not in LONG_RUNNING else "-"
    out = run_python(engine, image, PROBE, handler, *declared)
    assert out.split() == ["10001", "10001", "ok"], out


# Run inside each image: import every module of its service with the image's packages only,
# and look for what must not be there (the CLI, the CDK, test tools, DuckDB).
IMPORTS = """
import importlib, importlib.util, pkgutil, sys
package = importlib.import_module(sys.argv[1])
names = [m.name for m in pkgutil.walk_packages(package.__path__, sys.argv[1] + ".")]
for name in names:
    if not name.endswith(".__main__"):
        importlib.import_module(name)
present = [n for n in sys.argv[2:] if importlib.util.find_spec(n) is not None]
print(len(names), ",".join(present) or "-")
"""
NOT_IN_IMAGES = ("changelake_cli", "aws_cdk", "pytest", "duckdb")


@pytest.mark.parametrize("image", IMAGES, ids=[i.tag for i in IMAGES])
def test_image_imports_every_module_of_its_service_and_no_tool(
    engine: str, image: ds.Image
) -> None:
    """What the image installs holds every import the service's code needs, and no CLI/CDK.

    The workspace venv has every package; an image has only its member's locked closure. A
    service importing a package it does not declare passes every other test and breaks here.
    """
    out = run_python(engine, image, IMPORTS, f"changelake_{image.service}", *NOT_IN_IMAGES)
    count, present = out.split()
    assert int(count) >= 3, out
    assert present == "-", f"{image.tag} holds {present}"


def test_emulator_image_keeps_its_healthcheck(engine: str) -> None:
    """Docker image format: the HEALTHCHECK survives (podman's OCI default drops it)."""
    (emulator,) = [i for i in IMAGES if i.service == "emulator"]
    data = inspect(engine, emulator.tag)
    # Docker: Config.Healthcheck; podman's image inspect has it at the top level.
    check = data["Config"].get("Healthcheck") or data.get("Healthcheck") or {}
    expected = emulator.stage().last("HEALTHCHECK").exec_form()
    assert check.get("Test") == ["CMD", *expected]


def test_consumer_image_holds_the_kcl_jars_and_a_jre(engine: str) -> None:
    """The consumer image has the MultiLangDaemon jars and runs java under a read-only root."""
    (consumer,) = [i for i in IMAGES if i.tag.startswith("changelake-consumer")]
    count = run(
        engine,
        "run",
        "--rm",
        "--read-only",
        "--entrypoint",
        "python",
        consumer.tag,
        "-c",
        "import glob, os, amazon_kclpy; "
        "print(len(glob.glob(os.path.join(os.path.dirname(amazon_kclpy.__file__), "
        "'jars', '*.jar'))))",
    )
    assert int(count) > 20
    version = subprocess.run(
        [
            engine,
            "run",
            "--rm",
            "--read-only",
            "-v",
            "/tmp",
            "--entrypoint=java",
            consumer.tag,
            "-version",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=ds.engine_env(),
    )
    assert 'version "17.' in version.stderr


def test_copy_steps_receive_what_dockers_dockerignore_rules_send(
    engine: str, tmp_path: Path
) -> None:
    """Each Dockerfile COPY from the context receives exactly the files Docker's rules keep.

    ``changelake_dockerspec.build_context_files`` implements Docker's .dockerignore matching;
    this builds a probe image with the same COPY sources through the engine here (buildah for
    podman) and lists what each step really received.
    """
    sources = sorted(
        {
            source
            for image in IMAGES
            for instr in ds.parse_dockerfile(ROOT / image.dockerfile).instructions
            if instr.keyword == "COPY" and "from" not in instr.flags()
            for source in instr.args()[:-1]
        }
    )
    probe = ["FROM scratch"]
    for n, source in enumerate(sources):
        dest = f"/probe/{n}/{source.rstrip('/')}" + ("/" if source.endswith("/") else "")
        probe.append(f"COPY {source} {dest}")
    containerfile = tmp_path / "Containerfile.probe"
    containerfile.write_text("\n".join(probe) + "\n")
    tag = "localhost/changelake-context-probe:test"
    extra = ["--format", "docker"] if engine == "podman" else []
    run(engine, "build", *extra, "-f", str(containerfile), "-t", tag, str(ROOT))
    container = run(engine, "create", tag, "none").strip()
    try:
        exported = subprocess.run(
            [engine, "export", container],
            capture_output=True,
            timeout=300,
            check=True,
            env=ds.engine_env(),
        ).stdout
    finally:
        run(engine, "rm", container, check=False)
        run(engine, "rmi", tag, check=False)
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        received = {m.name.lstrip("./").removeprefix("/") for m in tar.getmembers() if m.isfile()}
    context = set(ds.build_context_files())
    for n, source in enumerate(sources):
        rel = source.rstrip("/")
        expected = {f for f in context if f == rel or f.startswith(rel + "/")}
        got = {f.removeprefix(f"probe/{n}/") for f in received if f.startswith(f"probe/{n}/")}
        assert expected, f"COPY {source}: Docker's rules send nothing"
        assert got == expected, (
            f"COPY {source}: {engine} received {sorted(got - expected)} extra, "
            f"{sorted(expected - got)} missing"
        )
