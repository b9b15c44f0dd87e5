"""Services as real processes, for crash tests: start, SIGKILL, restart, stop.

By default the local runner (``python -m changelake_consumer local``); any other service's
``python -m`` command with the log line that says it is ready (the catalog service:
:data:`CATALOG`). The environment is given (endpoint, fast timings); each process's stderr
(JSON log lines) goes to its own file in a folder, for assertions and failure messages. Used by
the lease tests (services/consumer) and the fault tests (tests/faults).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Command:
    """A service's ``python -m`` arguments, its log-file name and the log line that says ready."""

    args: Sequence[str]
    name: str
    ready: bytes


CONSUMER = Command(("-m", "changelake_consumer", "local"), "runner", b'"consumer started"')
CATALOG = Command(("-m", "changelake_catalog"), "catalog", b'"catalog service running"')


class RunnerProcesses:
    """Service processes (default: local runners, ``python -m changelake_consumer local``),
    logs in tmp."""

    def __init__(
        self, tmp: Path, env: dict[str, str] | None = None, command: Command = CONSUMER
    ) -> None:
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, **(env or {})}
        self.command = command
        self.procs: list[subprocess.Popen[bytes]] = []

    def log_path(self, proc: subprocess.Popen[bytes]) -> Path:
        """The stderr file of one process."""
        return self.tmp / f"{self.command.name}-{self.procs.index(proc)}.log"

    def wait_started(self, proc: subprocess.Popen[bytes], timeout: float = 60) -> float:
        """Seconds until the process logged that it is ready (imports done, clients built)."""
        started = time.monotonic()
        log = self.log_path(proc)
        while not (log.is_file() and self.command.ready in log.read_bytes()):
            if proc.poll() is not None or time.monotonic() - started > timeout:
                raise AssertionError(
                    f"{self.command.name} {proc.pid} did not start:\n{self.logs()}"
                )
            time.sleep(0.1)
        return time.monotonic() - started

    def start(self) -> subprocess.Popen[bytes]:
        """One more process."""
        log = (self.tmp / f"{self.command.name}-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, *self.command.args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        self.procs.append(proc)
        return proc

    def counters(self, proc: subprocess.Popen[bytes]) -> Counter[str]:
        """The process's own counters: the sum of the ``metrics`` lines it has logged so far."""
        text = self.log_path(proc).read_text(errors="replace")
        total: Counter[str] = Counter()
        for line in text[: text.rfind("\n") + 1].splitlines():  # complete lines only
            if line.startswith("{"):
                doc = json.loads(line)
                if doc.get("message") == "metrics":
                    total.update({k: int(v) for k, v in doc.get("counters", {}).items()})
        return total

    def owner_of(self, proc: subprocess.Popen[bytes], owners: Iterable[str]) -> str:
        """The lease-table worker id of a runner among ``owners`` (ids hold ``-<pid>-``)."""
        return next(o for o in owners if f"-{proc.pid}-" in o)

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL: no flush, no checkpoint, no lease release."""
        proc.kill()
        proc.wait()

    def logs(self, tail: int = 3000) -> str:
        """The last bytes of every runner's log, for failure messages."""
        return "\n".join(
            p.read_text(errors="replace")[-tail:]
            for p in sorted(self.tmp.glob(f"{self.command.name}-*.log"))
        )

    def stop_all(self) -> list[int]:
        """SIGTERM the live ones (graceful: flush, checkpoint), wait; return every exit code."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout=60))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        return codes
