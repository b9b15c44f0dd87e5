"""The catalog service's one composition root: settings → logging → adapters → service.

``python -m changelake_catalog`` calls :func:`main`; the local stack and the benchmarks call
:func:`local_service`; maintenance, ``repair``, ``snapshot``, ``erase`` and ``reconcile`` call
:func:`build_catalog` (the lake's one Glue :class:`~changelake_lake.catalog.Catalog`). The service
module never imports this one, so the two form no cycle.
"""

from __future__ import annotations

import os
import signal
import threading

from changelake.adapters.s3_store import S3ObjectStore
from changelake.logs import configure_logging
from changelake.metrics import make_metrics
from changelake_lake.adapters.glue_catalog import GlueCatalog

from changelake_catalog.adapters.sqs_queue import SqsQueue
from changelake_catalog.service import CatalogRunner, CatalogService
from changelake_catalog.settings import CatalogSettings


def build_catalog(settings: CatalogSettings) -> GlueCatalog:
    """The lake's Glue catalog configured from settings."""
    return GlueCatalog(
        settings.lake_bucket,
        settings.database,
        attempts=settings.catalog_glue_attempts,
        backoff_seconds=settings.catalog_glue_backoff_seconds,
    )


def build_service(settings: CatalogSettings) -> CatalogService:
    """Wire the service to SQS, S3 and Glue (resolves the queue URL; creates the database)."""
    catalog = build_catalog(settings)
    catalog.ensure_database()
    return CatalogService(
        SqsQueue.from_name(settings.catalog_queue),
        S3ObjectStore(settings.lake_bucket),
        catalog,
        make_metrics(settings.metrics),
        batch_size=settings.catalog_batch_size,
        max_batch=settings.catalog_max_batch,
        wait_seconds=settings.catalog_wait_seconds,
        retry_delay_seconds=settings.catalog_retry_delay_seconds,
        workers=settings.catalog_workers,
        footer_bytes=settings.catalog_footer_bytes,
        snapshot_state_ttl_s=settings.catalog_snapshot_state_ttl_seconds,
    )


def main() -> None:
    """Run the catalog service until SIGINT/SIGTERM."""
    settings = CatalogSettings()
    configure_logging(settings.log_level)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    build_service(settings).run(stop)


def local_service() -> CatalogRunner:
    """The catalog as a background service of the local stack, built from env settings.

    Unless ``CHANGELAKE_CATALOG_WAIT_SECONDS`` is set, the long poll is 1 s here: in-process
    stacks start and stop often, and ``stop()`` waits for the poll in flight.
    """
    settings = CatalogSettings()
    if "CHANGELAKE_CATALOG_WAIT_SECONDS" not in {k.upper() for k in os.environ}:
        settings = settings.model_copy(update={"catalog_wait_seconds": 1})
    return CatalogRunner(lambda: build_service(settings), settings.catalog_wait_seconds + 30.0)
