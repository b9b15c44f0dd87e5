"""changelake producer: fake persons written to DynamoDB at a chosen rate and mix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from changelake_producer.generator import Mix, Operation, PersonGenerator
from changelake_producer.service import ProduceSummary, TableMissingError

if TYPE_CHECKING:
    from changelake.settings import ChangelakeSettings

    from changelake_producer import service

__all__ = [
    "Mix",
    "Operation",
    "PersonGenerator",
    "ProduceSummary",
    "TableMissingError",
    "produce",
]


def produce(
    *,
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
    """Write changes to ``settings.table_name`` wherever ``AWS_ENDPOINT_URL`` points.

    Raises :class:`TableMissingError` (with a hint) when the table does not exist.
    """
    from changelake.settings import ChangelakeSettings

    from changelake_producer import service
    from changelake_producer.writer import DynamoDBWriter

    settings = settings or ChangelakeSettings()
    writer = DynamoDBWriter(settings.table_name, region=settings.region)
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
