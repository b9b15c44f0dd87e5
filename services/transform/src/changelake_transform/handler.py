"""The Firehose data-transformation Lambda handler (entry point ``handler.handler``).

The transform's composition root: settings, logging and the privacy policy, built once per
container. It loads no boto3 and no pyarrow: the one AWS call it can make (the privacy key from
Secrets Manager) imports the AWS adapter only when such a secret is configured (ADR 0029).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from typing import Any

from changelake.logs import configure_logging
from changelake.privacy import PrivacyPolicy
from changelake.settings import ENV_PREFIX

from changelake_transform.service import transform_records
from changelake_transform.settings import TransformSettings

log = logging.getLogger(__name__)


@functools.cache
def _settings() -> TransformSettings:
    settings = TransformSettings()
    configure_logging(settings.log_level)
    return settings


_PRIVACY_VARIABLES = tuple(
    f"{ENV_PREFIX}{name}" for name in ("PRIVACY_POLICY", "PRIVACY_KEY", "PRIVACY_KEY_SECRET")
)


def _privacy() -> PrivacyPolicy | None:
    """The policy, resolved once per configuration (a secret is fetched once per container)."""
    return _privacy_for(tuple(os.environ.get(name) for name in _PRIVACY_VARIABLES))


@functools.lru_cache(maxsize=4)
def _privacy_for(_variables: tuple[str | None, ...]) -> PrivacyPolicy | None:
    return TransformSettings().resolve_privacy(_read_secret)


def _read_secret(secret_id: str, region: str) -> bytes:
    from changelake.adapters.aws import read_secret  # boto3: only when a key secret is configured

    return read_secret(secret_id, region)


def handler(event: Mapping[str, Any], context: object = None) -> dict[str, Any]:
    """Transform one Firehose batch: same recordIds, one newline each, bad records flagged."""
    del context
    settings = _settings()
    privacy = _privacy()
    records = event.get("records")
    if not isinstance(records, list):
        raise ValueError("event has no 'records' list: not a Firehose transformation event")
    result = transform_records(
        records, max_response_bytes=settings.transform_max_response_bytes, privacy=privacy
    )
    # Firehose's error record has a fixed errorMessage: the Lambda's log is where AWS keeps the
    # reason (docs: "emit error logs to CloudWatch Logs"), so every failure gets its line.
    # With a privacy policy the reasons are computed on the redacted record (no clear values).
    for record_id, reason in result.failures.items():
        log.warning("record ProcessingFailed", extra={"recordId": record_id, "reason": reason})
    log.info(
        "transformed batch",
        extra={
            "invocationId": event.get("invocationId"),
            "records": len(records),
            "ok": result.ok,
            "processing_failed": result.failed,
            "dropped_private": result.dropped,
            "oversize": result.oversize,
        },
    )
    return result.response()
