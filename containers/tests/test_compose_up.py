"""`make compose-test`: docker-compose.yml up for real, as ECS runs the images, end to end.

Brings the stack up with the engine `make images` used (Docker Compose, or podman-compose
where only podman exists), waits for the emulator's own HEALTHCHECK, lets the producer write,
queries from the host with `changelake query` until rows are visible in ``persons_changes``
and ``persons_current``, stops the producer, checks ``persons_current`` against a DynamoDB
Scan, checks every container ran read-only as the service user without a restart, and tears
everything down (volumes too).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import changelake_dockerspec
import pytest
from changelake.adapters import aws
from changelake.settings import ChangelakeSettings
from changelake_lake.query.current_check import scan_images

ds = changelake_dockerspec
ROOT = ds.ROOT
pytestmark = pytest.mark.containers

PROJECT = "changelake-compose-test"
# The port the compose file publishes the emulator on (reserved for this test on CI machines).
ENDPOINT = "http://127.0.0.1:4566"
SERVICES = ["emulator", "producer", "consumer", "catalog"]
HOST_ENV = {
    "AWS_ENDPOINT_URL": ENDPOINT,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def compose(*args: str, timeout: float = 600, check: bool = True) -> str:
    """docker compose / podman-compose on the project's file (scripts/containers.sh compose)."""
    proc = subprocess.run(
        [str(ROOT / "scripts" / "containers.sh"), "compose", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**ds.engine_env(), "COMPOSE_PROJECT_NAME": PROJECT},
    )
    if check:
        assert proc.returncode == 0, f"compose {' '.join(args)}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


engine_run = ds.engine_run


def labels(service: str | None = None) -> list[str]:
    """`ps --filter` arguments for the project's (or one service's) containers.

    Docker Compose and podman-compose both set the com.docker.compose.* labels.
    """
    found = ["--filter", f"label=com.docker.compose.project={PROJECT}"]
    if service is not None:
        found += ["--filter", f"label=com.docker.compose.service={service}"]
    return found


def container_id(engine: str, service: str) -> str:
    """The container of one compose service."""
    ids = engine_run(engine, "ps", "-a", "-q", *labels(service)).split()
    assert len(ids) == 1, f"{service}: containers {ids}"
    return ids[0]


def container(engine: str, service: str) -> dict[str, Any]:
    """`inspect` of one compose service's container."""
    (data,) = json.loads(engine_run(engine, "inspect", container_id(engine, service)))
    return dict(data)


def wait_until_healthy(engine: str, service: str, timeout: float = 180) -> float:
    """Run the image's own HEALTHCHECK command in the container until it passes.

    podman-compose 1.0.3 ignores ``condition: service_healthy`` and podman runs health checks
    only through systemd timers, so the test runs the probe itself (the same on Docker).
    """
    probe = container(engine, service)["Config"]["Healthcheck"]["Test"]
    assert probe[0] == "CMD", probe
    started = time.monotonic()
    while True:
        ok = subprocess.run(
            [engine, "exec", container_id(engine, service), *probe[1:]],
            capture_output=True,
            timeout=60,
            check=False,
            env=ds.engine_env(),
        )
        if ok.returncode == 0:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"{service} never healthy: {ok.stderr!r}"
        time.sleep(2)


def changelake_query(sql: str) -> list[dict[str, Any]] | None:
    """`changelake query --format json` from the host; None while the tables do not exist."""
    cli = Path(sys.executable).parent / "changelake"
    proc = subprocess.run(
        [str(cli), "query", "--sql", sql, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **HOST_ENV},
    )
    if proc.returncode != 0:
        return None
    rows = json.loads(proc.stdout)
    assert isinstance(rows, list)
    return rows


def row_count(table: str) -> int:
    """Rows in a table or view, by `changelake query` from the host (0 while it is missing)."""
    rows = changelake_query(f"SELECT count(*) AS n FROM {table}")
    return int(rows[0]["n"]) if rows else 0


def poll(what: str, check: Any, timeout: float) -> Any:
    """Call ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s: {what}"
        time.sleep(3)


@pytest.fixture(scope="module")
def stack() -> Iterator[str]:
    """The compose project, torn down afterwards (containers, network, anonymous volumes)."""
    engine = ds.container_engine()
    compose("down", "-v", check=False)  # a previous run killed halfway
    try:
        yield engine
    finally:
        for service in SERVICES:
            ids = engine_run(engine, "ps", "-a", "-q", *labels(service), check=False).split()
            for cid in ids:
                logs = engine_run(engine, "logs", "--tail=30", cid, check=False, with_stderr=True)
                sys.stderr.write(f"---- {service} (last lines)\n{logs}\n")
        compose("down", "-v", check=False)
        left = engine_run(engine, "ps", "-a", "-q", *labels())
        assert left.split() == [], f"containers left after down: {left}"
        networks = engine_run(engine, "network", "ls", "--format", "{{.Name}}")
        assert f"{PROJECT}_default" not in networks.split()


@pytest.mark.timeout(900)
def test_compose_stack_end_to_end(stack: str) -> None:
    """Stack up → rows in both views from the host → `_current` equals a Scan → torn down."""
    engine = stack
    timings: dict[str, float] = {}
    started = time.monotonic()
    # GIVEN the emulator up and healthy (its own HEALTHCHECK), then the other services
    compose("up", "-d", "emulator")
    timings["emulator healthy"] = wait_until_healthy(engine, "emulator")
    compose("up", "-d", "--no-deps", "producer", "consumer", "catalog")
    # WHEN the producer writes for a while
    # THEN the host's `changelake query` sees rows in the change table and the current view
    changes = poll("rows in persons_changes", lambda: row_count("persons_changes"), 240)
    timings["first rows in persons_changes"] = time.monotonic() - started
    current = poll("rows in persons_current", lambda: row_count("persons_current"), 120)
    assert changes > 0
    assert current > 0
    # Every service container runs as ECS runs it: read-only root, the image's user, only the
    # image's VOLUMEs writable, and none restarted (no crash loop).
    for service in SERVICES:
        info = container(engine, service)
        assert info["State"]["Running"], (service, info["State"])
        assert info["RestartCount"] == 0, (service, info["RestartCount"])
        assert info["HostConfig"]["ReadonlyRootfs"] is True, service
        assert info["Config"]["User"] == "10001:10001", service
        mounts = sorted(m["Destination"] for m in info["Mounts"])
        image = next(i for i in ds.images() if i.service == service and i.target != "lambda")
        assert mounts == sorted(ds.volumes(image.stage())), (service, mounts)
    # The producer logs its progress while it runs (structured lines on stderr).
    producer_logs = engine_run(engine, "logs", container_id(engine, "producer"), with_stderr=True)
    assert '"message":"produced so far"' in producer_logs, producer_logs[-2000:]
    # WHEN the producer stops, the consumer catches up
    compose("stop", "producer")
    # THEN persons_current equals a Scan of the DynamoDB table, item by item, once the compose
    # file's privacy policy (hashed / masked attributes) is applied to the Scan as the writers do
    ddb = boto3.client("dynamodb", endpoint_url=ENDPOINT, region_name="us-east-1")
    consumer_env = ds.environment(ds.compose()["services"]["consumer"])
    privacy = aws.privacy_policy(ds.load_settings(ChangelakeSettings, consumer_env))

    def current_equals_scan() -> dict[str, int] | None:
        rows = changelake_query("SELECT item_key, new_image FROM persons_current")
        if rows is None:
            return None
        view = {str(r["item_key"]): str(r["new_image"]) for r in rows}
        assert len(view) == len(rows), "persons_current has an item twice"
        table = scan_images("persons", ddb, privacy)
        different = sum(1 for k in view.keys() & table.keys() if view[k] != table[k])
        sys.stderr.write(
            f"persons_current {len(view)} items, Scan {len(table)} items, "
            f"{len(table.keys() - view.keys())} missing, {len(view.keys() - table.keys())} extra, "
            f"{different} different\n"
        )
        return {"items": len(table)} if view == table and table else None

    equal = poll("persons_current == Scan of persons", current_equals_scan, timeout=300)
    timings["current == scan"] = time.monotonic() - started
    stats = changelake_query(
        "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM persons_changes"
    )
    assert stats is not None
    assert stats[0]["n"] == stats[0]["d"], "duplicate change rows"
    sys.stderr.write(
        f"compose-test: {engine}, {equal['items']} items equal, {stats[0]['n']} changes, "
        + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())
        + "\n"
    )
