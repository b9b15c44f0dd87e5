"""One lake written by the real pipeline, and a real Trino over its Glue catalog and S3.

The module-scoped ``lake`` starts the local stack (emulator with duplicates, reordering, TTL
deletes and µs timestamps mixed with ms ones; consumer; catalog), writes seeded fake persons
through DynamoDB with the real producer, waits until every change is in ``persons_changes``
and every record in ``persons_raw``, then starts Trino (downloaded once into the repository's
``.cache/trino``) configured against the emulator's Glue and S3 endpoints.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from changelake.settings import ChangelakeSettings
from changelake_cli.local_stack import LocalStack, free_port
from changelake_cli.trino_server import AwsTarget, TrinoServer
from changelake_lake.query.local_engine import LocalEngine
from changelake_lake.query.model import QueryError
from changelake_lake.query.trino_engine import TrinoEngine

CHANGES = 400
SEED = 13
CATCH_UP_S = 120.0


@dataclass
class Lake:
    """The seeded lake and both engines over it."""

    settings: ChangelakeSettings
    endpoint: str
    local: LocalEngine
    trino: TrinoEngine
    server: TrinoServer
    produced: int
    dt: str
    hour: str


def _count(engine: LocalEngine, sql: str) -> int:
    try:
        return int(engine.run(sql).rows[0][0])
    except QueryError:
        return -1  # the catalog has not created the table yet


@pytest.fixture(scope="module")
def lake() -> Iterator[Lake]:
    from changelake_emulator.faults import FaultConfig
    from changelake_producer.bootstrap import produce

    settings = ChangelakeSettings()
    # As the demo: MICROSECOND stream precision (AWS's advice) with a ms/µs mix injected.
    faults = FaultConfig(
        seed=SEED, duplicate_rate=0.05, reorder_window=8, ttl_rate=0.3, precision_mix=True
    )
    with LocalStack(
        free_port(), settings=settings, faults=faults, precision="MICROSECOND"
    ) as stack:
        summary = produce(count=CHANGES, seed=SEED, settings=settings)
        local = LocalEngine(settings.database, region=settings.region)
        deadline = time.monotonic() + CATCH_UP_S
        while True:
            events = _count(local, "SELECT count(DISTINCT event_id) FROM persons_changes")
            rows = _count(local, "SELECT count(*) FROM persons_changes")
            raw = _count(local, "SELECT count(*) FROM persons_raw WHERE dt >= '2020-01-01'")
            if events == summary.total and raw == rows:
                break
            assert time.monotonic() < deadline, f"lake never caught up: {events=} {rows=} {raw=}"
            time.sleep(1)
        dt, hour = local.run("SELECT min(dt), min(hour) FROM persons_changes").rows[0]
        with TrinoServer(AwsTarget.emulator(stack.endpoint, settings.region)) as server:
            trino = TrinoEngine(server.url, settings.database, timeout_s=120)
            yield Lake(
                settings=settings,
                endpoint=stack.endpoint,
                local=local,
                trino=trino,
                server=server,
                produced=summary.total,
                dt=str(dt),
                hour=str(hour),
            )
