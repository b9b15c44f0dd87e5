"""kill -9 of the real KCL MultiLangDaemon at random points during a produce run.

Two KCL workers (``KclDaemon``: the JVM and one Python record processor per leased shard, as on
ECS) consume a 4-shard stream while changes are written. At each random point, once both
workers hold leases and the lake has grown since the last kill, one worker is killed with
SIGKILL (JVM and processors at once) — the leader at every even kill, the other worker at every
odd one — and restarted under its own worker id (``KclDaemon.restarted``): it finds its leases
still assigned to it and, if it was the leader, the KCL 3 leader lock still in its name, so
nobody waits out the lock's hard-coded 2 minutes (ADR 0042). A new processor replays each of its
shards from the last checkpoint and nothing may be written twice. Recovery is measured on the
data: every shard the victim held has new rows in the lake. The run ends in a clean reconcile
(tests/changelake_faults.py).

``CHANGELAKE_FAULT_KCL_KILLS`` sets the number of kills (default 2 in CI: the leader once, the
other worker once; the documented long run uses 20: docs/reliability.md).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import IO

import pytest
from changelake_consumer.kcl_daemon import KclDaemon
from changelake_consumer.settings import ConsumerSettings
from changelake_faults import (
    Pipeline,
    ProduceLoop,
    lake_high,
    throttled,
    wait_reconciled,
    wait_until,
)
from changelake_kcl import leader, owners

KILLS = int(os.environ.get("CHANGELAKE_FAULT_KCL_KILLS", "2"))
# 900 s for the 2 kills of CI; the long run (20 kills) gets 300 s more per kill.
pytestmark = [
    pytest.mark.faults,
    pytest.mark.kcl,
    pytest.mark.e2e,
    pytest.mark.timeout(300 + 300 * max(KILLS, 2)),
]
# A restarted leader must have its shards' rows flowing again well before the 2-minute lock
# would have expired (on a loaded 2-core machine a JVM and a processor start take ~20-40 s).
RECOVER_S = 100.0
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

    def _files(self) -> tuple[Path, IO[bytes]]:
        n = len(self.daemons)
        return self.folder / f"kcl-{n}.properties", (self.folder / f"daemon-{n}.log").open("wb")

    def start(self) -> KclDaemon:
        """A new worker (a new random worker id)."""
        properties, log = self._files()
        daemon = KclDaemon(ConsumerSettings(kcl_properties_path=str(properties)), stderr=log)
        return self._started(daemon)

    def restart(self, dead: KclDaemon) -> KclDaemon:
        """The killed worker again, under its worker id (its properties file is rewritten)."""
        _properties, log = self._files()
        return self._started(dead.restarted(stderr=log))

    def _started(self, daemon: KclDaemon) -> KclDaemon:
        daemon.start()
        self.daemons.append(daemon)
        return daemon


def _owners() -> set[str]:
    return {owner for owner in owners().values() if owner}


def _owned_by(ids: list[str]) -> bool:
    return _owners() == set(ids)


def _leader_in(ids: list[str]) -> bool:
    return leader() in ids


def _grew(before: dict[str, int]) -> bool:
    """The lake has rows past ``before`` on some shard."""
    return lake_high() != before


def _grew_on(shards: set[str], before: dict[str, int]) -> bool:
    """Every one of ``shards`` has rows past ``before`` (processed again after a restart)."""
    now = lake_high()
    return all(now.get(shard, 0) > before.get(shard, 0) for shard in shards)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    started = Workers(tmp_path)
    try:
        yield started
    finally:
        for daemon in started.daemons:
            daemon.kill()  # every JVM and record processor, whatever the test did


def test_kill_9_of_the_kcl_daemon_at_random_points_then_lease_table_throttling(
    monkeypatch: pytest.MonkeyPatch, workers: Workers
) -> None:
    """Random ``kill -9`` of either KCL worker, then the KCL's own lease table throttled.

    Phase 1 (see the module's docstring): ``KILLS`` kills, the leader at every even one, each
    victim restarted under its worker id. Phase 2, on the same two live workers (one JVM start
    less than a test of its own): the daemons' DynamoDB endpoint (``dynamoDBEndpoint``, from
    ``AWS_ENDPOINT_URL_DYNAMODB``) is the fault proxy; 30 % of the calls naming the lease table
    get ``ProvisionedThroughputExceededException`` — the JVM's renewals, checkpoints and
    assignment and the record processors' lease checks before each S3 write — while changes are
    written; then the faults stop. Both daemons must keep running, every shard must flow again,
    and the run ends in one clean reconcile: nothing lost or doubled by either phase.
    """
    for name, value in KCL_ENV.items():
        monkeypatch.setenv(name, value)
    rng = random.Random(3800)
    table = ConsumerSettings().application_name
    with Pipeline(monkeypatch, consumer=False, shards=4, proxied=("dynamodb",)) as pipe:
        assert pipe.proxy is not None
        live = [workers.start(), workers.start()]
        ids = [d.worker_id for d in live]  # a restart keeps its worker's id: ids never change
        writer = ProduceLoop(chunk=20, rate=20).start()  # lasts as long as both phases
        recover_s: list[float] = []
        killed: list[str] = []
        try:
            for kill in range(KILLS):
                wait_until(partial(_owned_by, ids), 240, "both workers to hold leases")
                wait_until(partial(_grew, lake_high()), 120, "the lake to grow")
                wait_until(partial(_leader_in, ids), 60, "a leader among the live workers")
                time.sleep(rng.uniform(0.0, 3.0))  # a random point while both process
                the_leader = str(leader())
                victim = next(d for d in live if (d.worker_id == the_leader) == (kill % 2 == 0))
                held = {shard for shard, owner in owners().items() if owner == victim.worker_id}
                victim.kill()  # SIGKILL of the JVM and its record processors
                killed.append("leader" if victim.worker_id == the_leader else "other")
                before = lake_high()
                restarted = time.monotonic()
                live[live.index(victim)] = workers.restart(victim)
                wait_until(partial(_grew_on, held, before), 240, "the victim's shards")
                recover_s.append(round(time.monotonic() - restarted, 1))
            last_restart = time.monotonic()
            # Phase 2: the lease table throttled under the same workers and writer.
            # the JVM's JSON has no spaces, boto3's (the record processors') has
            needles = (f'"TableName":"{table}"', f'"TableName": "{table}"')
            rules = [pipe.proxy.add(throttled(needle)) for needle in needles]
            throttled_from = lake_high()
            wait_until(lambda: sum(r.injected for r in rules) >= 20, 120, "20 throttled calls")
            wait_until(partial(_grew, throttled_from), 120, "rows while throttled")
            pipe.proxy.clear()
            healed = time.monotonic()
            before = lake_high()
            wait_until(partial(_grew_on, set(owners()), before), 120, "rows after the faults")
            writer.stop()
            joined = time.monotonic()
            verdict, took = wait_reconciled(180)
            healed_s = took + joined - healed
            took += joined - last_restart
            alive = [d.poll() for d in live]
        finally:
            writer.stop()
            for daemon in live:
                daemon.stop()
    injected = [r.injected for r in rules]
    assert verdict.distinct_events == writer.produced
    assert alive == [None, None], f"a daemon gave up under throttling: {alive}"
    assert injected[0] >= 5, injected  # the JVM's own calls were throttled, not only ours
    codes = [d.poll() for d in workers.daemons]
    assert codes.count(-9) == KILLS, codes  # the killed ones; the others stopped by us
    # A leader killed and restarted as itself must not wait out the 2-minute leader lock.
    leader_recoveries = [s for s, who in zip(recover_s, killed, strict=True) if who == "leader"]
    assert all(s < RECOVER_S for s in leader_recoveries), (recover_s, killed)
    print(
        f"{KILLS} kills of the KCL daemon ({killed}), then lease-table throttling ({injected} "
        f"throttled calls: JVM, record processors): {verdict.summary()}; seconds from each "
        f"restart until the victim's shards had new rows {recover_s}; clean {took:.1f} s "
        f"after the last restart, {healed_s:.1f} s after the faults stopped"
    )
