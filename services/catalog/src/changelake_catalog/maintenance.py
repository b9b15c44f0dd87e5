"""Lake maintenance wired from settings: the scheduled maintenance task and ``changelake compact``.

``python -m changelake_catalog.maintenance`` is the ECS task the stack's EventBridge schedule
runs (the catalog image: it holds the Glue and S3 adapters already). Per configured table it
compacts with the ``CHANGELAKE_COMPACT_*`` settings, then takes a current-state snapshot
(``CHANGELAKE_SNAPSHOT_SCHEDULED``, ADR 0035), then, when ``CHANGELAKE_COMPACT_EXPIRE`` is true,
expires what that snapshot covers. Its summary is one JSON log line per table; any failure exits
non-zero (the next scheduled run resumes: every step is idempotent).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from changelake.adapters.s3_store import S3ObjectStore
from changelake.logs import configure_logging
from changelake.timeutil import parse_duration
from changelake_lake.compaction import compact_table, expire_table
from changelake_lake.layout import Partition
from changelake_lake.query.s3_objects import S3Objects
from changelake_lake.rewrite import collect_trash

from changelake_catalog import snapshot
from changelake_catalog.bootstrap import build_catalog
from changelake_catalog.settings import CatalogSettings

log = logging.getLogger(__name__)


def configured_tables(settings: CatalogSettings) -> list[str]:
    """The DynamoDB tables of this deployment (one helper: the multi-table setting goes here)."""
    return list(settings.tables)


def snapshot_lake(settings: CatalogSettings) -> snapshot.Lake:
    """What maintenance talks to: the lake's Glue catalog and S3 (objects and store)."""
    return snapshot.Lake(
        catalog=build_catalog(settings),
        objects=S3Objects(),
        store=S3ObjectStore(settings.lake_bucket),
    )


def snapshot_coverage(lake: snapshot.Lake, table: str) -> Callable[[Partition], bool] | None:
    """Which partitions the current-state snapshot holds, or ``None`` when there is none."""
    state = lake.catalog.snapshot_state(table)
    return state.needs if state is not None else None


def run(
    settings: CatalogSettings,
    tables: Sequence[str] | None = None,
    *,
    older_than: timedelta | None = None,
    grace: timedelta | None = None,
    dry_run: bool = False,
    expire: bool | None = None,
    expire_after: timedelta | None = None,
    take_snapshot: bool | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, Any]]:
    """Compact, then snapshot (``take_snapshot``, default ``CHANGELAKE_SNAPSHOT_SCHEDULED``;
    never on a dry run), then, if asked, expire below the snapshot: each table in turn, one
    summary per table."""
    maintained = snapshot_lake(settings)
    lake = maintained.rewrite_lake
    snapshotting = not dry_run and (
        take_snapshot if take_snapshot is not None else settings.snapshot_scheduled
    )
    grace = grace if grace is not None else parse_duration(settings.compact_grace)
    summaries = []
    for table in tables or configured_tables(settings):
        report = compact_table(
            lake,
            table,
            older_than=(
                older_than
                if older_than is not None
                else parse_duration(settings.compact_older_than)
            ),
            grace=grace,
            dry_run=dry_run,
            target_file_bytes=settings.compact_target_file_mb * 1024 * 1024,
            now=now,
        )
        summary: dict[str, Any] = report.summary()
        if snapshotting:
            taken = snapshot.take_snapshot(maintained, table, now=now(), sleep=sleep)
            summary["snapshot"] = dataclasses.asdict(taken)
        if expire if expire is not None else settings.compact_expire:
            expired = expire_table(
                lake,
                table,
                max_age=(
                    expire_after
                    if expire_after is not None
                    else parse_duration(settings.compact_expire_after)
                ),
                covered=snapshot_coverage(maintained, table),
                grace=grace,
                dry_run=dry_run,
                now=now,
            )
            summary["expire"] = expired.summary()
            if not dry_run:  # with no grace, the expired objects go in this same run
                trash = collect_trash(lake, table, now=now)
                summary["expire"]["objects_deleted"] = trash.deleted
        log.info("compaction done", extra={"summary": summary})
        summaries.append(summary)
    return summaries


def main() -> None:
    """The scheduled task: compact, snapshot and expire every configured table per settings."""
    settings = CatalogSettings()
    configure_logging(settings.log_level)
    run(settings)


if __name__ == "__main__":
    main()
