"""Catalog service settings: environment variables with the prefix ``CHANGELAKE_``."""

from __future__ import annotations

from changelake.settings import ChangelakeSettings
from changelake.timeutil import parse_duration
from pydantic import Field, field_validator


class CatalogSettings(ChangelakeSettings):
    """What the catalog service needs beyond the shared settings (all optional)."""

    catalog_batch_size: int = Field(
        10, ge=1, le=10, description="SQS messages received per call (SQS allows at most 10)"
    )
    catalog_max_batch: int = Field(
        100,
        ge=1,
        le=1000,
        description="Messages handled as one batch: after a receive returns, the queue is drained "
        "without waiting up to this many, so a burst costs one footer fan-out and one "
        "registration per table",
    )
    catalog_wait_seconds: int = Field(
        5,
        ge=0,
        le=20,
        description="SQS long-poll wait; a receive returns at once when a message is there, so "
        "this bounds only idle polling and how long stop() takes",
    )
    catalog_retry_delay_seconds: int = Field(
        5,
        ge=0,
        le=900,
        description="Visibility timeout set on a message whose work failed (its next attempt); "
        "after the queue's maxReceiveCount attempts SQS moves it to the dead-letter queue",
    )
    catalog_footer_bytes: int = Field(
        65536, ge=1024, description="Bytes of an object's tail fetched first to read its footer"
    )
    catalog_workers: int = Field(
        8, ge=1, le=64, description="Parallel Parquet footer reads (service and repair)"
    )
    catalog_glue_attempts: int = Field(
        6, ge=1, le=20, description="Attempts for a throttled Glue call or failed partitions"
    )
    catalog_glue_backoff_seconds: float = Field(
        0.2, ge=0, le=10, description="First backoff delay of Glue retries (doubles, jittered)"
    )
    catalog_snapshot_state_ttl_seconds: float = Field(
        10.0,
        ge=0,
        le=300,
        description="How long the service trusts its copy of the current view's snapshot state "
        "when checking new objects for late data; `changelake snapshot` waits longer than this "
        "before its late-data re-list (ADR 0035)",
    )
    # Lake maintenance: `changelake compact` and the scheduled compaction task (ADR 0033).
    compact_older_than: str = Field(
        "2h",
        description="Compact only partition-hours that ended at least this long ago (sealed): "
        "a duration like 90m, 2h, 1d",
    )
    compact_grace: str = Field(
        "1h",
        description="Delete the objects a compaction replaced only this long after the swap: "
        "longer than the longest query (a duration)",
    )
    compact_target_file_mb: int = Field(
        128,
        ge=1,
        description="Target size of a compacted file; a partition-hour is cut into "
        "several only when its objects hold more than this",
    )
    compact_expire: bool = Field(
        False,
        description="Also drop partitions older than CHANGELAKE_COMPACT_EXPIRE_AFTER, only "
        "those a current-state snapshot covers (off by default: history is the product)",
    )
    compact_expire_after: str = Field(
        "365d", description="Age of the partitions --expire drops (a duration)"
    )
    snapshot_scheduled: bool = Field(
        True,
        description="The scheduled maintenance task also takes a current-state snapshot of each "
        "table between compaction and expiry (ADR 0035); false leaves it to `changelake snapshot`",
    )

    @field_validator("compact_older_than", "compact_grace", "compact_expire_after")
    @classmethod
    def _valid_duration(cls, value: str) -> str:
        parse_duration(value)
        return value
