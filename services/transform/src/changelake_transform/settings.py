"""Settings of the transform Lambda (environment, prefix ``CHANGELAKE_``)."""

from __future__ import annotations

from changelake.settings import ChangelakeSettings
from pydantic import Field

from changelake_transform.service import MAX_RESPONSE_BYTES


class TransformSettings(ChangelakeSettings):
    """The Lambda's settings: only the response limit is its own."""

    transform_max_response_bytes: int = Field(
        MAX_RESPONSE_BYTES,
        gt=0,
        le=MAX_RESPONSE_BYTES,
        description="Largest response the handler returns (Lambda's limit is 6 MB)",
    )
