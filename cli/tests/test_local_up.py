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


def _wait_ready(proc: subprocess.Popen[str], timeout_s: float = READY_TIMEOUT_S) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
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
    raise AssertionError(f"no 'ready' line within {timeout_s}s; stdout so far: {seen!r}")


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


def _query_json(
    env: dict[str, str], engine: str, *, missing_ok: bool = False
) -> list[dict[str, object]]:
    done = subprocess.run(
        [
            *_changelake(),
            *("query", "--engine", engine, "--named", "current_state"),
            *("--param", "limit=1000", "--format", "json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    if missing_ok and "TABLE_NOT_FOUND" in done.stderr:
        return []  # the catalog has not written the view yet
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, object]] = json.loads(done.stdout)
    return rows


@pytest.mark.trino
@pytest.mark.timeout(480)
def test_local_up_with_trino_serves_the_named_query_on_trino() -> None:
    """``local up --with-trino`` prints CHANGELAKE_TRINO_URL; ``query --engine trino --named
    current_state`` there returns what the local engine returns; Ctrl-C stops Trino too."""
    from changelake_lake.query.trino_engine import server_info

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    env["CHANGELAKE_LOG_LEVEL"] = "WARNING"
    proc = subprocess.Popen(
        [*_changelake(), "local", "up", "--port", str(port), "--with-trino"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        _wait_ready(proc, timeout_s=300)
        assert proc.stdout is not None
        printed: list[str] = []
        while not printed or "Ctrl-C" not in printed[-1]:
            printed.append(proc.stdout.readline())
            assert printed[-1], f"local up stopped printing: {printed}"
        url_line = next((line for line in printed if "CHANGELAKE_TRINO_URL" in line), "")
        assert "export CHANGELAKE_TRINO_URL=http://127.0.0.1:" in url_line, printed
        trino_url = url_line.split("=", 1)[1].split()[0]
        env |= {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "CHANGELAKE_TRINO_URL": trino_url}
        produced = subprocess.run(
            [*_changelake(), "produce", "--count", "80", "--seed", "5", "--format", "json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert produced.returncode == 0, produced.stderr
        deadline = time.monotonic() + 120
        while len(local := _query_json(env, "local", missing_ok=True)) < 40:
            assert time.monotonic() < deadline, f"current view never filled: {len(local)} rows"
            time.sleep(2)
        time.sleep(4)  # let the last flush land, then read both engines
        local = _query_json(env, "local")
        on_trino = _query_json(env, "trino")
        assert len(on_trino) == len(local) >= 40
        assert on_trino == local
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0
        assert server_info(trino_url) is None  # Trino stopped with the stack
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.unit
def test_local_up_honours_emulator_fault_and_shard_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # issue 18, finding 8: `local up` ignored what `python -m changelake_emulator` honours
    from changelake_cli.local_cmd import stack_options
    from changelake_emulator.faults import FaultConfig
    from changelake_emulator.settings import EmulatorSettings

    for name, value in {
        "CHANGELAKE_EMULATOR_FAULT_SEED": "7",
        "CHANGELAKE_EMULATOR_DUPLICATE_RATE": "0.25",
        "CHANGELAKE_EMULATOR_REORDER_WINDOW": "4",
        "CHANGELAKE_EMULATOR_TTL_RATE": "1",
        "CHANGELAKE_EMULATOR_PRECISION_MIX": "true",
        "CHANGELAKE_EMULATOR_SHARDS": "4",
        "CHANGELAKE_EMULATOR_PRECISION": "MICROSECOND",
        "CHANGELAKE_EMULATOR_FIREHOSE_BUFFER_SECONDS": "3",
        "CHANGELAKE_EMULATOR_PORT": "4999",
    }.items():
        monkeypatch.setenv(name, value)
    options = stack_options(EmulatorSettings())
    assert options["faults"] == FaultConfig(
        seed=7, duplicate_rate=0.25, reorder_window=4, ttl_rate=1.0, precision_mix=True
    )
    assert (options["shards"], options["precision"], options["port"]) == (4, "MICROSECOND", 4999)
    assert options["firehose_buffer_seconds"] == 3.0
    # the command line still wins over the environment
    explicit = stack_options(EmulatorSettings(), port=4567, precision="MILLISECOND")
    assert (explicit["port"], explicit["precision"]) == (4567, "MILLISECOND")
