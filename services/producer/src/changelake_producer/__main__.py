"""Producer task (container / ECS): settings → logging → writer → run → summary on stdout."""

from __future__ import annotations

import secrets
import sys

import orjson
from changelake.logs import configure_logging

from changelake_producer import TableMissingError, produce
from changelake_producer.settings import ProducerSettings


def main() -> int:
    """Run one production pass configured by ``CHANGELAKE_PRODUCER_*``."""
    settings = ProducerSettings()
    configure_logging(settings.log_level)
    if settings.producer_count is None and settings.producer_duration_s is None:
        print("set CHANGELAKE_PRODUCER_COUNT or CHANGELAKE_PRODUCER_DURATION_S", file=sys.stderr)
        return 2
    seed = settings.producer_seed if settings.producer_seed is not None else secrets.randbits(31)
    try:
        summary = produce(
            count=settings.producer_count,
            duration=settings.producer_duration_s,
            rate=settings.producer_rate,
            mix=settings.producer_mix,
            seed=seed,
            settings=settings,
            batch_size=settings.producer_batch_size,
        )
    except TableMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(orjson.dumps(summary.to_dict(with_pks=False)).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
