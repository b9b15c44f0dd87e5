"""Producer task (container / ECS): settings → logging → writer → run → summary on stdout.

Progress goes to the log (stderr) every 10 s, so a container's log shows the producer working.
"""

from __future__ import annotations

import logging
import secrets
import signal
import sys
from types import FrameType

import orjson
from changelake.logs import configure_logging

from changelake_producer.bootstrap import produce_tables
from changelake_producer.progress import LogProgress
from changelake_producer.service import TableMissingError
from changelake_producer.settings import ProducerSettings


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    # ECS stop-task / `docker stop`: end the run like Ctrl-C (libraries re-raise it, while
    # botocore retries on any Exception).
    raise KeyboardInterrupt


def main() -> int:
    """Run one production pass configured by ``CHANGELAKE_PRODUCER_*`` on every table of
    ``CHANGELAKE_TABLES`` at once (count, duration and rate apply to each table)."""
    settings = ProducerSettings()
    configure_logging(settings.log_level)
    # As PID 1 in a container, SIGTERM without a handler is ignored until the engine's SIGKILL.
    signal.signal(signal.SIGTERM, _on_sigterm)
    if settings.producer_count is None and settings.producer_duration_s is None:
        print("set CHANGELAKE_PRODUCER_COUNT or CHANGELAKE_PRODUCER_DURATION_S", file=sys.stderr)
        return 2
    seed = settings.producer_seed if settings.producer_seed is not None else secrets.randbits(31)
    try:
        summaries = produce_tables(
            settings.tables,
            count=settings.producer_count,
            duration=settings.producer_duration_s,
            rate=settings.producer_rate,
            mix=settings.producer_mix,
            seed=seed,
            settings=settings,
            batch_size=settings.producer_batch_size,
            progress=lambda table: LogProgress(
                logger=logging.getLogger(f"changelake_producer.{table}")
            ),
        )
    except TableMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # A requested stop, not a failure: the changes written so far are in the table, the
        # rest were never generated.
        logging.getLogger("changelake_producer").info("stopped by a signal")
        return 0
    for table, summary in summaries.items():
        line = {"table": table, **summary.to_dict(with_pks=False)}
        sys.stdout.write(orjson.dumps(line).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
