"""The classic loader Lambda: ``{"batchSize": N}`` writes N fake persons to each table."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from changelake.logs import configure_logging
from changelake.settings import parse_tables

from changelake_producer.bootstrap import produce_tables
from changelake_producer.generator import Mix
from changelake_producer.settings import ProducerSettings

log = logging.getLogger(__name__)

MAX_BATCH_SIZE = 100_000

# Each invocation starts without knowing which persons exist, so by default it only inserts;
# an event may ask for another mix ({"mix": "insert=..,update=..,delete=.."}).
DEFAULT_LAMBDA_MIX = "insert=1"


def handler(event: Mapping[str, Any], context: object = None) -> dict[str, Any]:
    """Write ``event["batchSize"]`` changes to each table; optional ``seed``, ``mix`` and
    ``tables`` (a list or comma-separated text; default: every table of ``CHANGELAKE_TABLES``);
    return the totals and a summary per table."""
    del context
    settings = ProducerSettings()
    configure_logging(settings.log_level)
    size = event.get("batchSize")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_BATCH_SIZE:
        raise ValueError(f"batchSize must be an integer within 1..{MAX_BATCH_SIZE}, got {size!r}")
    seed = event.get("seed")
    if seed is None:
        # A fresh seed per invocation: a fixed one would rewrite the same pks every time.
        seed = (
            settings.producer_seed if settings.producer_seed is not None else secrets.randbits(31)
        )
    mix = Mix.parse(str(event.get("mix", DEFAULT_LAMBDA_MIX)))
    tables = parse_tables(event["tables"]) if "tables" in event else settings.tables
    summaries = produce_tables(tables, count=size, mix=mix, seed=int(seed), settings=settings)
    per_table = {t: s.to_dict(with_pks=False) for t, s in summaries.items()}
    result: dict[str, Any] = {"batchSize": size}
    for key in ("inserts", "updates", "deletes", "total", "live"):
        result[key] = sum(int(summary[key]) for summary in per_table.values())
    result["tables"] = per_table
    log.info("produced", extra=result)
    return result
