"""Emulator settings for its own process / container (environment, prefix ``CHANGELAKE_``)."""

from __future__ import annotations

from typing import Literal

from changelake.settings import ChangelakeSettings
from pydantic import Field

from changelake_emulator.faults import FaultConfig


class EmulatorSettings(ChangelakeSettings):
    """Where the emulator listens and how faithful (or faulty) it is."""

    emulator_host: str = Field("127.0.0.1", description="Interface (0.0.0.0 only in a container)")
    emulator_port: int = Field(4566, ge=0, le=65535, description="Port of the AWS endpoint")
    emulator_precision: Literal["MILLISECOND", "MICROSECOND"] = Field(
        "MILLISECOND", description="ApproximateCreationDateTime precision of the stream records"
    )
    emulator_shards: int = Field(2, ge=1, le=16, description="Shards of the Kinesis stream")
    emulator_firehose_buffer_seconds: float = Field(1.0, gt=0, description="Firehose interval")
    emulator_firehose_buffer_mb: float = Field(1.0, gt=0, description="Firehose buffer size")
    emulator_fault_seed: int | None = Field(None, description="Set to switch faults on")
    emulator_duplicate_rate: float = Field(0, ge=0, le=1, description="Share duplicated")
    emulator_reorder_window: int = Field(0, ge=0, description="Reorder within N records")
    emulator_ttl_rate: float = Field(0, ge=0, le=1, description="Share of REMOVEs marked TTL")
    emulator_precision_mix: bool = Field(False, description="Mix ms and µs timestamps")

    def faults(self) -> FaultConfig | None:
        """The fault configuration, or ``None`` when no seed is set."""
        if self.emulator_fault_seed is None:
            return None
        return FaultConfig(
            seed=self.emulator_fault_seed,
            duplicate_rate=self.emulator_duplicate_rate,
            reorder_window=self.emulator_reorder_window,
            ttl_rate=self.emulator_ttl_rate,
            precision_mix=self.emulator_precision_mix,
        )
