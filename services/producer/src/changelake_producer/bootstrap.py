"""The producer's composition root: settings → DynamoDB writer (adapter) → progress → run.

Every entry point (``python -m changelake_producer``, the Lambda handler, ``changelake
produce`` and the demo) builds its run here; nothing else wires an adapter (ADR 0029).
"""

from __future__ import annotations

from changelake.settings import ChangelakeSettings

from changelake_producer import service
from changelake_producer.adapters.dynamodb_writer import DynamoDBWriter
from changelake_producer.generator import Mix
from changelake_producer.service import ProduceSummary


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
