"""The Firehose data-transformation Lambda handler (entry point ``handler.handler``)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any

from changelake.logs import configure_logging

from changelake_transform.service import transform_records
from changelake_transform.settings import TransformSettings

log = logging.getLogger(__name__)


@functools.cache
def _settings() -> TransformSettings:
    settings = TransformSettings()
    configure_logging(settings.log_level)
    return settings


def handler(event: Mapping[str, Any], context: object = None) -> dict[str, Any]:
    """Transform one Firehose batch: same recordIds, one newline each, bad records flagged."""
    del context
    settings = _settings()
    records = event.get("records")
    if not isinstance(records, list):
        raise ValueError("event has no 'records' list: not a Firehose transformation event")
    result = transform_records(records, max_response_bytes=settings.transform_max_response_bytes)
    # Firehose's error record has a fixed errorMessage: the Lambda's log is where AWS keeps the
    # reason (docs: "emit error logs to CloudWatch Logs"), so every failure gets its line.
    for record_id, reason in result.failures.items():
        log.warning("record ProcessingFailed", extra={"recordId": record_id, "reason": reason})
    log.info(
        "transformed batch",
        extra={
            "invocationId": event.get("invocationId"),
            "records": len(records),
            "ok": result.ok,
            "processing_failed": result.failed,
            "oversize": result.oversize,
        },
    )
    return result.response()
