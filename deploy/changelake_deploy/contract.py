"""What the stack hands the services: CHANGELAKE_* variables, entry points, lake-layout strings.

Pure data, no ``aws_cdk`` import: the root test-suite (which has no CDK) loads this file by path
and checks every name against the services' pydantic settings classes and
``changelake_lake.layout``; ``deploy/tests`` checks that the synthesized template uses exactly
these names. The two checks together keep the deployed environment and the code in step without
CDK in the service images.
"""

from __future__ import annotations

import re

ENV_PREFIX = "CHANGELAKE_"

# Settings class of each deployed service ("module:Class"), as the code defines it.
SETTINGS_CLASSES: dict[str, str] = {
    "consumer": "changelake_consumer.settings:ConsumerSettings",
    "catalog": "changelake_catalog.settings:CatalogSettings",
    "transform": "changelake_transform.settings:TransformSettings",
    "producer": "changelake_producer.settings:ProducerSettings",
    "producer-task": "changelake_producer.settings:ProducerSettings",
    "catalog-compact": "changelake_catalog.settings:CatalogSettings",
}

# The CHANGELAKE_* variables the stack sets on each service's container or function. Every name
# must be a field of that service's settings class (env name = prefix + field name upper-cased).
ENVIRONMENT: dict[str, tuple[str, ...]] = {
    "consumer": (
        "CHANGELAKE_REGION",
        "CHANGELAKE_TABLES",
        "CHANGELAKE_STREAM_NAME",
        "CHANGELAKE_LAKE_BUCKET",
        "CHANGELAKE_APPLICATION_NAME",
        "CHANGELAKE_INITIAL_POSITION",
        "CHANGELAKE_LOG_LEVEL",
        "CHANGELAKE_METRICS",
    ),
    "catalog": (
        "CHANGELAKE_REGION",
        "CHANGELAKE_TABLES",
        "CHANGELAKE_LAKE_BUCKET",
        "CHANGELAKE_DATABASE",
        "CHANGELAKE_CATALOG_QUEUE",
        "CHANGELAKE_LOG_LEVEL",
        "CHANGELAKE_METRICS",
    ),
    # The transform and the producer emit no metrics: no CHANGELAKE_METRICS for them (ADR 0024).
    "transform": (
        "CHANGELAKE_REGION",
        "CHANGELAKE_LOG_LEVEL",
    ),
    "producer": (
        "CHANGELAKE_REGION",
        "CHANGELAKE_TABLES",
        "CHANGELAKE_LOG_LEVEL",
    ),
    # The producer as an on-demand ECS task (`aws ecs run-task`, overrides per run).
    "producer-task": (
        "CHANGELAKE_REGION",
        "CHANGELAKE_TABLES",
        "CHANGELAKE_LOG_LEVEL",
        "CHANGELAKE_PRODUCER_DURATION_S",
        "CHANGELAKE_PRODUCER_RATE",
    ),
    # Lake maintenance: the catalog image as a scheduled task (EventBridge -> RunTask, ADR 0033).
    "catalog-compact": (
        "CHANGELAKE_REGION",
        "CHANGELAKE_TABLES",
        "CHANGELAKE_LAKE_BUCKET",
        "CHANGELAKE_DATABASE",
        "CHANGELAKE_LOG_LEVEL",
        "CHANGELAKE_COMPACT_OLDER_THAN",
        "CHANGELAKE_COMPACT_GRACE",
        "CHANGELAKE_COMPACT_EXPIRE",
        "CHANGELAKE_COMPACT_EXPIRE_AFTER",
        "CHANGELAKE_SNAPSHOT_SCHEDULED",
    ),
}

# Added to these services' environment when the `privacy_policy` context is set (README
# "Privacy", ADR 0027): the policy's JSON and the Secrets Manager secret holding its key.
PRIVACY_SERVICES = ("consumer", "transform")
PRIVACY_ENVIRONMENT = ("CHANGELAKE_PRIVACY_POLICY", "CHANGELAKE_PRIVACY_KEY_SECRET")

# Container commands and Lambda handlers (the Dockerfiles' defaults, restated for the stack).
CONSUMER_COMMAND = ("/usr/local/bin/kcl-entrypoint.sh",)
CATALOG_COMMAND = ("python", "-m", "changelake_catalog")
PRODUCER_COMMAND = ("python", "-m", "changelake_producer")
COMPACT_COMMAND = ("python", "-m", "changelake_catalog.maintenance")
LAMBDA_HANDLERS: dict[str, str] = {
    "transform": "changelake_transform.handler.handler",
    "producer": "changelake_producer.lambda_handler.handler",
}
# Dockerfile of each image (relative to the repository root, the build context) and its stage.
IMAGES: dict[str, tuple[str, str | None]] = {
    "consumer": ("services/consumer/Dockerfile", None),
    "catalog": ("services/catalog/Dockerfile", None),
    "transform": ("services/transform/Dockerfile", "lambda"),
    "producer": ("services/producer/Dockerfile", "lambda"),
    "producer-task": ("services/producer/Dockerfile", "runtime"),
    "catalog-compact": ("services/catalog/Dockerfile", None),
}

# The uid:gid every service image runs as (its Dockerfile's USER); the task definitions say it
# again, so a task never runs as root even if an image forgot its USER line.
RUNTIME_USER = "10001:10001"

# ONE list of writable paths per long-running container: ECS runs every container with a
# read-only root file system and mounts a Fargate bind volume (empty, task-scoped) at exactly
# these paths; docker-compose.yml mounts a fresh volume at the same paths under `read_only`
# (tests/test_deploy_contract.py checks images, compose and this list agree). On Fargate
# a bind volume is root-owned 0755 unless the image declares ``VOLUME <path>`` on a directory it
# prepared for the runtime user: the ECS data plane then copies the directory (and its owner and
# mode) into the volume (ADR 0024, ADR 0020). So each image ``VOLUME``s every path listed here.
WRITABLE_PATHS: dict[str, tuple[str, ...]] = {
    # The rendered KCL .properties (CHANGELAKE_KCL_PROPERTIES_PATH), Python's and Java's temp
    # files (tempfile, java.io.tmpdir, hsperfdata).
    "consumer": ("/tmp",),
    "catalog": ("/tmp",),
    "producer-task": ("/tmp",),
    "catalog-compact": ("/tmp",),
}

# Metrics the stack's alarms, dashboard and scaling read, by the namespace the code emits them
# in (``make_metrics(..., namespace=…)``; EMF on ECS). The root suite greps the services' source
# for each name in a metrics call of that service; deploy/tests checks the template uses only
# these names. AWS-published metrics (AWS/SQS, AWS/Firehose, …) are not listed here.
CONSUMER_NAMESPACE = "changelake/consumer"
CATALOG_NAMESPACE = "changelake"
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    # service: (namespace, names)
    "consumer": (
        CONSUMER_NAMESPACE,
        (
            "lag_ms",  # gauge per shard: MillisBehindLatest of the last batch
            "records_in",
            "rows_written",
            "duplicate_rows_skipped",
            "decode_failures",  # records quarantined under errors/consumer/
        ),
    ),
    "catalog": (CATALOG_NAMESPACE, ("catalog_objects", "catalog_messages_failed")),
}
# The one dimension of the consumer's per-shard gauges.
CONSUMER_SHARD_DIMENSION = "shard"
# The KCL daemon's own lag metric (its ProcessTask, per shard, and ApplicationTracker, the
# application's max), published with PutMetricData in the namespace named after the KCL
# application (CHANGELAKE_APPLICATION_NAME): independent of our processor's EMF lines. The root
# suite checks the installed KCL jars publish it under that default namespace.
KCL_LAG_METRIC = "MillisBehindLatest"

# Lake layout (copies of changelake_lake.layout; the root test-suite asserts they are equal).
CHANGES_PREFIX = "changes/"
SNAPSHOTS_PREFIX = "snapshots/"
RAW_PREFIX = "raw/"
ERRORS_PREFIX = "errors/"
FIREHOSE_RAW_PREFIX = (
    "raw/!{partitionKeyFromLambda:table}/dt=!{partitionKeyFromLambda:dt}/"
    "hour=!{partitionKeyFromLambda:hour}/"
)
FIREHOSE_ERROR_PREFIX = "errors/firehose/!{firehose:error-output-type}/!{timestamp:yyyy-MM-dd}/"
ATHENA_RESULTS_PREFIX = "athena-results/"
# errors/<source>/...: the sources whose writers the stack lets write there.
CONSUMER_ERROR_SOURCE = "consumer"
FIREHOSE_ERROR_SOURCE = "firehose"

# DynamoDB key of the demo table (the emulator's bootstrap creates the same).
TABLE_PARTITION_KEY = "pk"


def construct_name(table: str) -> str:
    """A table's name as a CDK construct-id part: ``orders.v2-eu`` → ``OrdersV2Eu``."""
    return "".join(part.title() for part in re.split(r"[^A-Za-z0-9]+", table))
