"""`changelake local up` as a real process: ready within 60 s, exit 0 on SIGINT and SIGTERM."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from changelake_cli.local_stack import free_port

pytestmark = pytest.mark.e2e

READY_TIMEOUT_S = 60


def _changelake() -> list[str]:
    exe = Path(sys.executable).with_name("changelake")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "changelake_cli.main"]


def _wait_ready(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    seen = ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
            if "ready" in line:
                return line
        if proc.poll() is not None:
            break
    raise AssertionError(f"no 'ready' line within {READY_TIMEOUT_S}s; stdout so far: {seen!r}")


def _second_shell_works_with_the_printed_exports(
    proc: subprocess.Popen[str], port: int, home: Path
) -> None:
    """A new user's second shell: only PATH, an empty HOME and the lines `local up` printed."""
    assert proc.stdout is not None
    exports: dict[str, str] = {}
    for line in proc.stdout:
        if "Ctrl-C" in line:
            break
        if line.strip().startswith("export "):
            name, _, value = line.strip().removeprefix("export ").partition("=")
            exports[name] = value
    assert exports["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{port}"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "AWS_EC2_METADATA_DISABLED": "true"}
    result = subprocess.run(
        [*_changelake(), "produce", "--count", "5", "--mix", "insert=1", "--format", "json"],
        env={**env, **exports},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["inserts"] == 5


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_local_up_prints_ready_and_exits_zero_when_signalled(signum: int, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    proc = subprocess.Popen(
        [*_changelake(), "local", "up", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        line = _wait_ready(proc)
        assert f"http://127.0.0.1:{port}" in line
        # The endpoint really serves AWS APIs while the stack is up.
        import boto3

        client = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}")
        assert "persons" in client.list_tables()["TableNames"]
        if signum == signal.SIGINT:
            _second_shell_works_with_the_printed_exports(proc, port, tmp_path)
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
