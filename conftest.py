"""Repository-wide pytest fixtures: safe AWS env, a moto server over real HTTP, fixtures dir.

Every test runs with fake credentials and no route to real AWS. Tests that need AWS use the
``aws_endpoint`` fixture: a real moto server on a free loopback port, reached by real boto3
clients through the standard ``AWS_ENDPOINT_URL`` variable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent

# Never let a test reach real AWS or read a developer's profile.
for _var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_var, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["AWS_REGION"] = "us-east-1"
os.environ.pop("AWS_ENDPOINT_URL", None)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The golden fixtures folder (tests/fixtures)."""
    return ROOT / "tests" / "fixtures"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 for the whole session; yields its endpoint URL."""
    from changelake_cli.local_stack import free_port
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_endpoint(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point every boto3 client at the session's moto server, reset to an empty state."""
    import urllib.request

    urllib.request.urlopen(
        urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"), timeout=10
    ).read()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server


@pytest.fixture
def emulator(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A started changelake Emulator on a free loopback port; AWS_ENDPOINT_URL points at it.

    moto's state is process-wide: the emulator resets it on start, so it begins empty (and
    an ``aws_endpoint`` used in the same test would share its state). Keyword arguments of
    the Emulator can be given with ``@pytest.mark.parametrize("emulator", [{...}], indirect=True)``.
    """
    from changelake_emulator.emulator import Emulator

    emu = Emulator(0, **getattr(request, "param", {}))
    emu.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", emu.endpoint)
    try:
        yield emu
    finally:
        emu.stop()
