"""kill -9 of the real KCL MultiLangDaemon at random points during a produce run.

Two KCL workers (``KclDaemon``: the JVM and one Python record processor per leased shard, as on
ECS) consume a 4-shard stream while changes are written. At each random point, once both
workers hold leases and the lake has grown since the last kill, the worker that is *not* the
leader is killed with SIGKILL (JVM and processors at once) and a new worker is started in its
place: the leader's assignment hands the dead worker's expired leases out again, a new
processor replays from the last checkpoint, and nothing may be written twice. (Killing the
leader instead stalls every reassignment for the 2-minute leader lock hard-coded in KCL 3.1.3:
ADR 0015, 0016.) The run ends in a clean reconcile (tests/changelake_faults.py).

``CHANGELAKE_FAULT_KCL_KILLS`` sets the number of kills (default 2 in CI; the documented long
run uses 20: docs/reliability.md).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import orjson
import pytest
from changelake_consumer.kcl_daemon import KclDaemon
from changelake_consumer.settings import ConsumerSettings
from changelake_faults import Pipeline, ProduceLoop, lake_rows, wait_reconciled, wait_until
from changelake_kcl import leader, owners, worker_id

pytestmark = [pytest.mark.faults, pytest.mark.kcl, pytest.mark.e2e, pytest.mark.timeout(900)]

KILLS = int(os.environ.get("CHANGELAKE_FAULT_KCL_KILLS", "2"))
KCL_ENV = {
    "CHANGELAKE_KCL_FAILOVER_MS": "3000",
    "CHANGELAKE_SHARD_SYNC_S": "1",
    "CHANGELAKE_FLUSH_AGE_S": "0.5",
    "CHANGELAKE_LOG_LEVEL": "INFO",
}


class Workers:
    """KCL workers started one after the other, each with its properties file and log."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.daemons: list[KclDaemon] = []

    def start(self) -> KclDaemon:
        n = len(self.daemons)
        settings = ConsumerSettings(kcl_properties_path=str(self.folder / f"kcl-{n}.properties"))
        daemon = KclDaemon(settings, stderr=(self.folder / f"daemon-{n}.log").open("wb"))
        daemon.start()
        self.daemons.append(daemon)
        return daemon

    def worker_id(self, daemon: KclDaemon) -> str | None:
        """The KCL worker id the daemon logged at start (None until it did)."""
        log = self.folder / f"daemon-{self.daemons.index(daemon)}.log"
        lines = (orjson.loads(raw) for raw in log.read_bytes().splitlines() if raw[:1] == b"{")
        return worker_id(lines)


def _owners() -> set[str]:
    return {owner for owner in owners().values() if owner}


def _owned_by(ids: list[str]) -> bool:
    return _owners() == set(ids)


def _leader_in(ids: list[str]) -> bool:
    return leader() in ids


def _grew(before: int) -> bool:
    return len(lake_rows()) > before


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    started = Workers(tmp_path)
    try:
        yield started
    finally:
        for daemon in started.daemons:
            daemon.kill()  # every JVM and record processor, whatever the test did


def test_kill_9_of_the_kcl_daemon_at_random_points_during_a_produce_run(
    monkeypatch: pytest.MonkeyPatch, workers: Workers
) -> None:
    for name, value in KCL_ENV.items():
        monkeypatch.setenv(name, value)
    rng = random.Random(3800)
    with Pipeline(monkeypatch, consumer=False, shards=4):
        live = [workers.start(), workers.start()]
        writer = ProduceLoop(chunk=20, rate=20).start()  # lasts as long as the kills do
        cycle_s: list[float] = []
        try:
            for _ in range(KILLS):
                began = time.monotonic()
                wait_until(lambda: all(workers.worker_id(d) for d in live), 120, "worker ids")
                ids = [str(workers.worker_id(d)) for d in live]
                wait_until(partial(_owned_by, ids), 180, "both workers to hold leases")
                wait_until(partial(_grew, len(lake_rows())), 120, "the lake to grow")
                wait_until(partial(_leader_in, ids), 60, "a leader among the live workers")
                time.sleep(rng.uniform(0.0, 3.0))  # a random point while both process
                victim = live[1 - ids.index(str(leader()))]
                victim.kill()  # SIGKILL of the JVM and its record processors
                live.remove(victim)
                live.append(workers.start())
                cycle_s.append(round(time.monotonic() - began, 1))
            last_restart = time.monotonic()
            writer.stop()
            joined = time.monotonic()
            verdict, took = wait_reconciled(180)
            took += joined - last_restart
        finally:
            writer.stop()
            for daemon in live:
                daemon.stop()
    codes = [d.poll() for d in workers.daemons]
    assert verdict.distinct_events == writer.produced
    assert codes.count(-9) == KILLS, codes  # the killed ones; the others stopped by us
    print(
        f"{KILLS} kills of the KCL daemon: {verdict.summary()}; cycle seconds {cycle_s}; "
        f"clean {took:.1f} s after the last restart"
    )
