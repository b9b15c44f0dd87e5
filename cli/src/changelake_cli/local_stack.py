"""The embedded local stack: the emulator plus every registered service, in this process.

``changelake local up`` and ``changelake demo`` both use :class:`LocalStack`. Entering it starts
the emulator, points this process's AWS clients at it (``AWS_ENDPOINT_URL``, plus fake
credentials if none are set), then starts each service from
:func:`changelake_cli.services.default_factories` in order; leaving stops them in reverse
order, stops the emulator and restores the environment. With ``privacy_policy`` it also sets
``CHANGELAKE_PRIVACY_POLICY`` (and a random ``CHANGELAKE_PRIVACY_KEY`` for this run unless one
is set), so the consumer and the transform apply it.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from typing import Literal, Self

from changelake.adapters import aws
from changelake.lifecycle import StartStop
from changelake.privacy import PrivacyPolicy
from changelake.settings import ENV_PREFIX, ChangelakeSettings
from changelake_emulator.emulator import Emulator
from changelake_emulator.faults import FaultConfig

from changelake_cli.services import BackgroundService, ServiceFactory, default_factories

log = logging.getLogger(__name__)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for a local stack, and the tests that start one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalStack(StartStop):
    """Context manager running the emulator and the pipeline's services on 127.0.0.1:port."""

    def __init__(
        self,
        port: int,
        *,
        settings: ChangelakeSettings | None = None,
        faults: FaultConfig | None = None,
        precision: Literal["MILLISECOND", "MICROSECOND"] = "MILLISECOND",
        host: str = "127.0.0.1",
        factories: list[ServiceFactory] | None = None,
        firehose_buffer_seconds: float = 1.0,
        firehose_buffer_mb: float = 1.0,
        privacy_policy: str | None = None,
        runner: str = "local",
        shards: int = 2,
        stream_enabled: bool = True,
        transform_process: bool = False,
    ) -> None:
        self.settings = settings or ChangelakeSettings()
        self._privacy_policy = privacy_policy
        self.emulator = Emulator(
            port,
            settings=self.settings,
            faults=faults,
            precision=precision,
            host=host,
            firehose_buffer_seconds=firehose_buffer_seconds,
            firehose_buffer_mb=firehose_buffer_mb,
            shards=shards,
            stream_enabled=stream_enabled,
            transform_process=transform_process,
        )
        self._factories = factories
        self.runner = runner
        self.services: list[BackgroundService] = []
        self._saved_env: dict[str, str | None] = {}

    @property
    def endpoint(self) -> str:
        """The emulator's endpoint URL."""
        return self.emulator.endpoint

    def _set_env(self, name: str, value: str) -> None:
        self._saved_env.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}

    def start(self) -> Self:
        """Start the emulator, then every service; on any failure undo what was started."""
        try:
            self.emulator.start()
            self._set_env("AWS_ENDPOINT_URL", self.emulator.endpoint)
            # The services build their settings from the environment: same tables as ours.
            self._set_env(f"{ENV_PREFIX}TABLES", ",".join(self.settings.tables))
            if not os.environ.get("AWS_ACCESS_KEY_ID"):
                for name, value in aws.LOCAL_CREDENTIALS.items():
                    self._set_env(name, value)
            if not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
                self._set_env("AWS_DEFAULT_REGION", self.settings.region)
            if self._privacy_policy is not None:
                # The services (and the transform the emulator calls) read it from there.
                self._set_env(f"{ENV_PREFIX}PRIVACY_POLICY", self._privacy_policy)
                if not os.environ.get(f"{ENV_PREFIX}PRIVACY_KEY"):
                    self._set_env(f"{ENV_PREFIX}PRIVACY_KEY", secrets.token_urlsafe(32))
            factories = (
                self._factories if self._factories is not None else default_factories(self.runner)
            )
            for factory in factories:
                service = factory()
                service.start()
                self.services.append(service)
                log.info("service started", extra={"service": service.name})
        except BaseException:
            self.stop()
            raise
        return self

    def privacy(self) -> PrivacyPolicy | None:
        """The privacy policy the running services apply (``None``: none)."""
        return aws.privacy_policy(ChangelakeSettings())

    def stop(self) -> None:
        """Stop the services in reverse order, then the emulator; restore the environment."""
        errors: list[BaseException] = []
        while self.services:
            service = self.services.pop()
            try:
                service.stop()
            except Exception as exc:  # stop the others anyway, then report
                log.exception("service failed to stop", extra={"service": service.name})
                errors.append(exc)
        self.emulator.stop()
        self._restore_env()
        if errors:
            raise errors[0]
