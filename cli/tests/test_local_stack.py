"""LocalStack: emulator + registered services in order, environment set and restored."""

from __future__ import annotations

import os

import boto3
import pytest
from changelake_cli.local_stack import LocalStack

pytestmark = pytest.mark.aws


class Recorder:
    """A BackgroundService that records start/stop into a shared log."""

    def __init__(self, name: str, log: list[str], fail_start: bool = False) -> None:
        self.name = name
        self._log = log
        self._fail = fail_start

    def start(self) -> None:
        # Services start after the environment points at the emulator.
        self._log.append(f"start {self.name} {os.environ.get('AWS_ENDPOINT_URL', '')[:16]}")
        if self._fail:
            raise RuntimeError(f"{self.name} cannot start")

    def stop(self) -> None:
        self._log.append(f"stop {self.name}")


def test_local_stack_starts_services_in_order_and_stops_in_reverse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    log: list[str] = []
    factories = [lambda: Recorder("a", log), lambda: Recorder("b", log)]
    with LocalStack(0, factories=factories) as stack:  # type: ignore[list-item]
        assert os.environ["AWS_ENDPOINT_URL"] == stack.endpoint
        # Any client in this process now reaches the emulator's resources.
        assert boto3.client("dynamodb").list_tables()["TableNames"] == ["persons"]
        assert [s.name for s in stack.services] == ["a", "b"]
    assert log == [
        "start a http://127.0.0.1",
        "start b http://127.0.0.1",
        "stop b",
        "stop a",
    ]
    assert "AWS_ENDPOINT_URL" not in os.environ


def test_local_stack_undoes_everything_when_a_service_fails_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    log: list[str] = []
    factories = [lambda: Recorder("a", log), lambda: Recorder("b", log, fail_start=True)]
    stack = LocalStack(0, factories=factories)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="b cannot start"), stack:
        pass
    assert log[-1] == "stop a"
    assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:1"
    assert list(stack.emulator.streaming) == ["persons"]
    # The emulator is down again: a new one may start in this process.
    with LocalStack(0, factories=[]) as again:
        assert again.endpoint != "http://127.0.0.1:1"


def test_local_stack_runs_registered_default_services_when_no_factories_given() -> None:
    from changelake_cli.services import default_factories

    expected = [factory().name for factory in default_factories()]
    with LocalStack(0) as stack:
        assert [s.name for s in stack.services] == expected
