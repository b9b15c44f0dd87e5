"""Every CLI failure is one clear line with a hint, never a traceback (clean environments)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from changelake_cli.local_stack import free_port

pytestmark = pytest.mark.e2e


def _changelake() -> list[str]:
    exe = Path(sys.executable).with_name("changelake")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "changelake_cli.main"]


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    # A new user's shell: no AWS variables, no ~/.aws, no instance metadata to ask.
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "AWS_EC2_METADATA_DISABLED": "true",
        **extra,
    }


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_changelake(), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize(
    "args",
    [
        ["produce", "--count", "3"],
        ["query", "--named", "current_state"],
        ["catalog", "repair"],
        ["consumer", "run", "--runner", "local"],
    ],
)
def test_cli_without_credentials_says_one_line_with_hint(args: list[str], tmp_path: Path) -> None:
    result = _run(args, _clean_env(tmp_path))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert _error_lines(result.stderr) == [
        "error: no AWS credentials found (hint: for the local stack run `changelake local up` "
        "and paste the export lines it prints; for AWS, configure credentials, e.g. AWS_PROFILE)"
    ]


def test_cli_at_local_endpoint_uses_dummy_credentials_and_names_the_endpoint(
    tmp_path: Path,
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = _run(["produce", "--count", "3"], _clean_env(tmp_path, AWS_ENDPOINT_URL=endpoint))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert _error_lines(result.stderr) == [
        f"error: cannot reach {endpoint} (hint: is it running? for the local stack run "
        "`changelake local up` and paste the export lines it prints)"
    ]
    assert result.stderr.count("using dummy ones for the local endpoint") == 1
