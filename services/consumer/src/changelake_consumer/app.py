"""Running the consumer in the foreground: the local runner, or the KCL MultiLangDaemon."""

from __future__ import annotations

import logging
import signal
import tempfile
import threading
from pathlib import Path
from types import FrameType

from changelake.logs import configure_logging

from changelake_consumer import kcl_properties
from changelake_consumer.settings import ConsumerSettings

log = logging.getLogger(__name__)

RUNNERS = ("local", "kcl")


def run_local(settings: ConsumerSettings) -> int:
    """Run every shard in this process until SIGINT/SIGTERM; non-zero if the consumer failed."""
    from changelake_consumer.local_runner import build

    consumer = build(settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signum})
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        consumer.start()
        while not stop.is_set() and not consumer.wait(0.5):
            pass
    finally:
        consumer.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if consumer.failure is not None else 0


def kcl_command(settings: ConsumerSettings) -> list[str]:
    """Write the ``.properties`` and return the daemon command (raises KclUnavailableError)."""
    path = (
        Path(settings.kcl_properties_path)
        if settings.kcl_properties_path
        else Path(tempfile.gettempdir()) / f"{settings.application_name}.properties"
    )
    command = kcl_properties.daemon_command(settings, path)
    path.write_text(kcl_properties.render(settings), encoding="utf-8")
    return command


def run_kcl(settings: ConsumerSettings) -> int:
    """Run the Java MultiLangDaemon in the foreground until it exits or we are stopped.

    SIGINT/SIGTERM are passed on to the daemon as one SIGTERM (graceful shutdown: every record
    processor flushes and checkpoints); a stop we asked for exits 0.
    """
    from changelake_consumer.kcl_daemon import KclDaemon

    daemon = KclDaemon(settings)
    daemon.start()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping the KCL MultiLangDaemon", extra={"signal": signum})
        daemon.terminate()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = daemon.exit_code()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        daemon.kill()  # the JVM has exited: this only reaps record processors left behind
    if code != 0:
        log.error("the KCL MultiLangDaemon exited", extra={"exit_code": code})
    return code


def run(runner: str = "local", settings: ConsumerSettings | None = None) -> int:
    """Composition root: settings → logging → the chosen runner; returns the exit code."""
    if runner not in RUNNERS:
        raise ValueError(f"unknown runner {runner!r} (use one of {', '.join(RUNNERS)})")
    settings = settings or ConsumerSettings()
    configure_logging(settings.log_level)
    if runner == "kcl":
        return run_kcl(settings)
    return run_local(settings)
