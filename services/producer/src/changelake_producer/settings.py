"""Producer settings (environment, prefix ``CHANGELAKE_``)."""

from __future__ import annotations

from changelake.settings import ChangelakeSettings
from pydantic import Field, field_validator

from changelake_producer.generator import Mix


class ProducerSettings(ChangelakeSettings):
    """What the producer task writes when run as a container or Lambda."""

    producer_count: int | None = Field(None, ge=0, description="Changes to write (task mode)")
    producer_duration_s: float | None = Field(None, gt=0, description="Or: seconds to run")
    producer_rate: float | None = Field(None, gt=0, description="Target changes/s (unset: max)")
    producer_mix: str = Field(
        "insert=0.6,update=0.3,delete=0.1", description="Weights of inserts, updates, deletes"
    )
    producer_seed: int | None = Field(None, description="Data seed (unset: random per run)")
    producer_batch_size: int = Field(25, ge=1, le=25, description="Items per BatchWriteItem")

    @field_validator("producer_mix")
    @classmethod
    def _valid_mix(cls, value: str) -> str:
        Mix.parse(value)
        return value
