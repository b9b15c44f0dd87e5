"""Consumer settings: environment variables with the prefix ``CHANGELAKE_`` (frozen, validated)."""

from __future__ import annotations

from typing import Literal

from changelake.settings import ChangelakeSettings
from pydantic import Field


class ConsumerSettings(ChangelakeSettings):
    """Everything the consumer reads from the environment (README: consumer settings table)."""

    application_name: str = Field(
        "changelake-consumer",
        description="KCL application name (also the KCL lease table name)",
    )
    checkpoint_table: str = Field(
        "changelake-consumer-checkpoints",
        description="DynamoDB table of the local runner's shard checkpoints (created if missing)",
    )
    initial_position: Literal["TRIM_HORIZON", "LATEST"] = Field(
        "TRIM_HORIZON", description="Where a shard without a checkpoint starts"
    )
    flush_rows: int = Field(20_000, ge=1, description="Flush a partition buffer at this many rows")
    flush_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Flush a partition buffer at this many input bytes"
    )
    flush_age_s: float = Field(
        2.0, gt=0, description="Flush a partition buffer this many seconds after its first record"
    )
    max_buffered_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Flush the oldest buffers when a shard holds more input bytes than this",
    )
    max_open_partitions: int = Field(
        48, ge=1, description="Flush the oldest buffer when a shard has more partitions open"
    )
    get_records_per_s: float = Field(
        2.0,
        gt=0,
        le=5,
        description="GetRecords calls per shard per second (Kinesis allows 5, Firehose uses ~1)",
    )
    get_records_limit: int = Field(
        10_000, ge=1, le=10_000, description="Max records per GetRecords call"
    )
    write_timeout_s: float = Field(
        60.0,
        ge=0,
        description="Total time one S3 write may keep failing (all retries, SDK's included) "
        "before the consumer exits",
    )
    write_backoff_s: float = Field(
        0.5, ge=0, description="First backoff between S3 write attempts (doubles, max 8 s)"
    )
    shard_sync_s: float = Field(
        5.0,
        gt=0,
        description=(
            "How often shards are listed for resharding (local runner; KCL shardSyncIntervalMillis)"
        ),
    )
    metrics_flush_s: float = Field(
        10.0, gt=0, description="Flush the consumer's metrics (log or EMF) this often, in seconds"
    )
    lease_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Local runner: a shard lease or runner not renewed for this long is taken over",
    )
    kcl_java: str = Field("java", description="Java executable running the MultiLangDaemon")
    kcl_jars_dir: str | None = Field(
        None, description="Folder of the KCL jars (default: amazon_kclpy's jars folder)"
    )
    kcl_properties_path: str | None = Field(
        None, description="Where `consumer run --runner kcl` writes the .properties file"
    )
    kcl_failover_ms: int = Field(
        10_000,
        ge=1000,
        description=(
            "KCL failoverTimeMillis (lease expiry) and workerMetricsReporterFreqInMillis: a dead "
            "worker's leases move after about 2-3 times this"
        ),
    )
    kcl_worker_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._:-]{1,128}$",
        description=(
            "KCL workerId (unset: a random one per start). A worker restarted under the id it "
            "died with keeps its leases and the leader lock at once; never give two live "
            "workers one id (ADR 0042)"
        ),
    )
    kcl_max_leases_for_worker: int | None = Field(
        None, ge=1, description="KCL maxLeasesForWorker (unset: KCL default)"
    )
