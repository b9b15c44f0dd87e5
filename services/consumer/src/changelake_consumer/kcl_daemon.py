"""The Java KCL MultiLangDaemon as a child process: start, stop gracefully, or kill.

Used by ``consumer run --runner kcl`` (foreground), by ``local up --runner kcl`` / the demo (a
background service of the local stack) and by the ``kcl`` tests. The container entrypoint execs
the same command (``app.kcl_command``) instead: the JVM is PID 1 on ECS.

The daemon runs in its own session, so a terminal's Ctrl-C reaches only us: we pass it on as
one SIGTERM to the JVM, whose shutdown hook asks every record processor to flush and
checkpoint (``shutdownGraceMillis``). A SIGINT reaching the record-processor children directly
would kill them mid-protocol instead.

Each daemon has one KCL worker id for its lifetime (``CHANGELAKE_KCL_WORKER_ID``, else a random
one chosen here), handed to its record processors in the same variable. A daemon started again
under the id of a worker that is certainly dead (``restarted()``, after ``kill()``) is that
worker again: its leases are still assigned to it, and if it held the KCL 3 leader lock it holds
it again at once, instead of every survivor waiting out the lock's hard-coded 2 minutes
(ADR 0042).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Mapping
from typing import IO, Any

from changelake_consumer import kcl_properties
from changelake_consumer.settings import ConsumerSettings

log = logging.getLogger(__name__)

STOP_MARGIN_S = 10.0
# How the JVM reports an exit caused by SIGTERM (its shutdown hook has run by then).
SIGTERM_EXIT = 128 + signal.SIGTERM


class KclDaemon:
    """One MultiLangDaemon process (a KCL worker) and its record-processor children."""

    name = "consumer"

    def __init__(
        self,
        settings: ConsumerSettings | None = None,
        *,
        env: Mapping[str, str] | None = None,
        stderr: IO[Any] | None = None,
    ) -> None:
        # The record processors the JVM starts read their settings from this environment; the
        # properties (endpoints included) come from ``settings`` and ``os.environ``.
        self.settings = kcl_properties.with_worker_id(settings or ConsumerSettings())
        self._env = dict(os.environ if env is None else env)
        self._env["CHANGELAKE_KCL_WORKER_ID"] = self.worker_id
        self._stderr = stderr
        self._proc: subprocess.Popen[bytes] | None = None
        self.command: list[str] = []
        self.terminated = False

    @property
    def worker_id(self) -> str:
        """The KCL worker id (lease owner, leader lock owner) this daemon runs as."""
        return str(self.settings.kcl_worker_id)

    def restarted(self, *, stderr: IO[Any] | None = None) -> KclDaemon:
        """A new, not yet started daemon that is this worker again (same id, settings, env).

        Only for a worker that is dead: this one must have exited (``kill()`` waits for it).
        Two live workers under one id would both process the same leases.
        """
        if self._proc is None or self._proc.poll() is None:
            raise RuntimeError("restart only a daemon that has exited: two live workers, one id")
        return KclDaemon(self.settings, env=self._env, stderr=stderr)

    @property
    def pid(self) -> int:
        """The JVM's process id (also its process group id)."""
        if self._proc is None:
            raise RuntimeError("daemon not started")
        return self._proc.pid

    def start(self) -> None:
        """Write the properties and start the JVM; raises KclUnavailableError without Java/jars."""
        self.command = kcl_properties.kcl_command(self.settings)
        log.info("starting the KCL MultiLangDaemon", extra={"command": self.command})
        self._proc = subprocess.Popen(
            self.command,
            env=self._env,
            stdin=subprocess.DEVNULL,
            stderr=self._stderr,
            start_new_session=True,
        )

    def poll(self) -> int | None:
        """The exit code, or None while running."""
        return None if self._proc is None else self._proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the JVM to exit; its exit code."""
        if self._proc is None:
            raise RuntimeError("daemon not started")
        return self._proc.wait(timeout)

    def terminate(self) -> None:
        """SIGTERM to the JVM: graceful shutdown (flush, checkpoint, release leases)."""
        if self._proc is not None and self._proc.poll() is None:
            self.terminated = True
            self._proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to the JVM and its record processors at once, as when a task dies."""
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()

    def stop(self) -> None:
        """Graceful stop; kill what is left after the shutdown grace period; idempotent."""
        if self._proc is None:
            return
        self.terminate()
        grace_s = kcl_properties.SHUTDOWN_GRACE_MS / 1000 + STOP_MARGIN_S
        try:
            self._proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            log.error("the KCL MultiLangDaemon did not stop in time: killing it")
        # Record processors outlive a JVM only by moments (their stdin closes): never leak one.
        self.kill()

    def exit_code(self) -> int:
        """0 for a clean run or a stop we asked for; the JVM's exit code otherwise."""
        code = self.wait()
        if self.terminated and code in (SIGTERM_EXIT, -signal.SIGTERM):
            return 0
        return code
