"""The background services the embedded local stack runs, and the factories that build them.

Every service the stack runs implements :class:`BackgroundService`. ``local up`` and ``demo``
start them in this order after the emulator has bootstrapped the resources, and stop them in
reverse order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class BackgroundService(Protocol):
    """A service running in background threads of the local-stack process."""

    name: str

    def start(self) -> None:
        """Start work in background threads; return at once."""
        ...

    def stop(self) -> None:
        """Stop, flush what must be flushed, join threads; idempotent."""
        ...


ServiceFactory = Callable[[], BackgroundService]


def default_factories(runner: str = "local") -> list[ServiceFactory]:
    """Factories of the services ``local up`` runs after the emulator, in start order.

    ``runner`` picks the consumer: ``local`` (every shard in this process) or ``kcl`` (the Java
    MultiLangDaemon as a child process, as on ECS; needs Java and the KCL jars).

    Each service package exposes one factory returning a :class:`BackgroundService` built from
    its own settings (environment, prefix ``CHANGELAKE_``); the emulator's integrations are
    started by the emulator itself. Imports are lazy so a broken service names itself.
    """
    factories: list[ServiceFactory] = []
    # consumer: changelake_consumer.bootstrap.local_service
    # catalog (issue 5): changelake_catalog.bootstrap.local_service
    if runner == "kcl":
        factories.append(
            lambda: __import__("changelake_consumer.kcl_daemon").kcl_daemon.KclDaemon()  # noqa: PLW0108
        )
    elif runner == "local":
        factories.append(
            lambda: __import__("changelake_consumer.bootstrap").bootstrap.local_service()  # noqa: PLW0108
        )
    else:
        raise ValueError(f"unknown consumer runner {runner!r} (use local or kcl)")
    factories.append(lambda: __import__("changelake_catalog.bootstrap").bootstrap.local_service())  # noqa: PLW0108 - lazy import
    return factories
