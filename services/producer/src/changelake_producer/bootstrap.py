"""The producer's composition root: settings → DynamoDB writer (adapter) → progress → run.

Every entry point (``python -m changelake_producer``, the Lambda handler, ``changelake
produce`` and the demo) builds its run here; nothing else wires an adapter (ADR 0029).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

from changelake.settings import ChangelakeSettings

from changelake_producer import service
from changelake_producer.adapters.dynamodb_writer import DynamoDBWriter
from changelake_producer.generator import Mix
from changelake_producer.service import ProduceSummary


def produce(
    *,
    table: str | None = None,
    count: int | None = None,
    duration: float | None = None,
    rate: float | None = None,
    mix: Mix | str | None = None,
    seed: int = 0,
    settings: ChangelakeSettings | None = None,
    progress: bool | service.Progress = False,
    keep_operations: bool = False,
    batch_size: int | None = None,
) -> ProduceSummary:
    """Write changes to ``table`` wherever ``AWS_ENDPOINT_URL`` points.

    ``table`` defaults to the one table of ``settings.tables`` (several: name one, or use
    :func:`produce_tables`). Raises :class:`TableMissingError` (with a hint) when the table
    does not exist.
    """
    settings = settings or ChangelakeSettings()
    writer = DynamoDBWriter(settings.single_table(table), region=settings.region)
    bar: service.Progress | None = None
    if progress is True:
        from changelake_producer.progress import RichProgress

        bar = RichProgress()
    elif progress is not False:
        bar = progress
    return service.produce(
        writer,
        count=count,
        duration=duration,
        rate=rate,
        mix=Mix.parse(mix) if isinstance(mix, str) else mix,
        seed=seed,
        progress=bar,
        keep_operations=keep_operations,
        batch_size=batch_size or service.MAX_BATCH,
    )


def produce_tables(
    tables: Sequence[str],
    *,
    count: int | Mapping[str, int] | None = None,
    duration: float | None = None,
    rate: float | None = None,
    mix: Mix | str | None = None,
    seed: int = 0,
    settings: ChangelakeSettings | None = None,
    progress: Callable[[str], service.Progress] | None = None,
    keep_operations: bool = False,
    batch_size: int | None = None,
) -> dict[str, ProduceSummary]:
    """Write to every table of ``tables`` at once, one thread per table; summaries by table.

    Table number *i* (from 0) gets seed ``seed + i``, so one table alone with ``seed``
    writes what it always did and two tables never share keys. ``progress(table)`` gives each
    table's display; ``count`` is per table (or a mapping table → count); the other options
    are :func:`produce`'s, applied to each table. The first
    failure (e.g. :class:`TableMissingError`) is re-raised once every thread has ended.
    """
    if not tables:
        raise ValueError("name at least one table")
    if len(set(tables)) != len(tables):
        raise ValueError(f"a table is named twice in {list(tables)}")
    summaries: dict[str, ProduceSummary] = {}
    failures: list[BaseException] = []

    def run(index: int, table: str) -> None:
        try:
            summaries[table] = produce(
                table=table,
                count=count[table] if isinstance(count, Mapping) else count,
                duration=duration,
                rate=rate,
                mix=mix,
                seed=seed + index,
                settings=settings,
                progress=progress(table) if progress else False,
                keep_operations=keep_operations,
                batch_size=batch_size,
            )
        except BaseException as exc:  # re-raised by the caller's thread
            failures.append(exc)

    if len(tables) == 1:
        run(0, tables[0])
    else:
        threads = [
            threading.Thread(target=run, args=(i, t), name=f"produce-{t}", daemon=True)
            for i, t in enumerate(tables)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]
    return {table: summaries[table] for table in tables}
