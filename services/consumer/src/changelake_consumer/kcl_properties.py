"""The KCL MultiLangDaemon's ``.properties``, rendered from settings, and the daemon command.

Endpoints are written only when the standard ``AWS_ENDPOINT_URL[_<SERVICE>]`` variables are set
(local emulator); on AWS the daemon resolves the regional endpoints itself. Against an endpoint
the daemon also publishes no KCL metrics (no CloudWatch endpoint key exists) and its JVM sends
JSON instead of CBOR (``-Daws.cborEnabled=false``); ADR 0016 lists every difference from ECS.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

from changelake_consumer.settings import ConsumerSettings

DAEMON_CLASS = "software.amazon.kinesis.multilang.MultiLangDaemon"
# What the daemon starts once per leased shard: the consumer's composition root
# (changelake_consumer.bootstrap) in its record-processor role.
PROCESSOR_ARGS = "-m changelake_consumer record-processor"
LOGBACK_CONFIG = Path(__file__).with_name("logback.xml")
CBOR_OFF = "-Daws.cborEnabled=false"
# On SIGTERM the daemon asks every record processor to checkpoint and waits this long; the
# daemon's own default is 0 (no wait). ECS sends SIGKILL 30 s after SIGTERM by default.
SHUTDOWN_GRACE_MS = 25_000


class KclUnavailableError(RuntimeError):
    """Java or the KCL jars are missing: the KCL runner cannot start here."""


def _endpoint(env: Mapping[str, str], service: str) -> str | None:
    return env.get(f"AWS_ENDPOINT_URL_{service}") or env.get("AWS_ENDPOINT_URL") or None


def is_local(env: Mapping[str, str] | None = None) -> bool:
    """Whether the KCL's Kinesis or DynamoDB client is pointed at an endpoint (the emulator)."""
    env = os.environ if env is None else env
    return bool(_endpoint(env, "KINESIS") or _endpoint(env, "DYNAMODB"))


def render(settings: ConsumerSettings, env: Mapping[str, str] | None = None) -> str:
    """The daemon's properties for this consumer (stream, application, region, position …)."""
    env = os.environ if env is None else env
    lines = [
        "# Rendered by changelake_consumer.kcl_properties from CHANGELAKE_* settings.",
        f"executableName = {sys.executable} {PROCESSOR_ARGS}",
        f"streamName = {settings.stream_name}",
        f"applicationName = {settings.application_name}",
        "AWSCredentialsProvider = DefaultCredentialsProvider",
        f"processingLanguage = python/{sys.version_info.major}.{sys.version_info.minor}",
        f"initialPositionInStream = {settings.initial_position}",
        f"regionName = {settings.region}",
        # Time-based flushing needs a call even when a poll returns nothing (docs/aws-behaviour.md).
        "callProcessRecordsEvenForEmptyRecordList = true",
        # Polling everywhere (ADR 0016): the consumer and Firehose share each shard's 5 reads/s;
        # enhanced fan-out (the KCL default) would need SubscribeToShard, which the deployed
        # role does not grant and the emulator does not serve.
        "retrievalMode = POLLING",
        f"maxRecords = {settings.get_records_limit}",
        f"idleTimeBetweenReadsInMillis = {round(1000 / settings.get_records_per_s)}",
        f"failoverTimeMillis = {settings.kcl_failover_ms}",
        # KCL 3's leader reassigns a dead worker's leases only once that worker's metrics are
        # 2 reports old: report as often as leases expire (KCL default 30 s, i.e. 60 s).
        f"workerMetricsReporterFreqInMillis = {settings.kcl_failover_ms}",
        # Also how long the first shard sync idles after creating leases (ShardSyncTask).
        f"shardSyncIntervalMillis = {round(settings.shard_sync_s * 1000)}",
        # How often a child shard checks that its parents are finished (KCL default 10 s).
        f"parentShardPollIntervalMillis = {round(settings.shard_sync_s * 1000)}",
        f"shutdownGraceMillis = {SHUTDOWN_GRACE_MS}",
    ]
    if settings.kcl_worker_id is not None:
        # The multilang property `workerId` (MultiLangDaemonConfiguration.setWorkerId) is the
        # KCL's workerIdentifier: the lease owner and the leader lock's owner name (ADR 0042).
        lines.append(f"workerId = {settings.kcl_worker_id}")
    if settings.kcl_max_leases_for_worker is not None:
        lines.append(f"maxLeasesForWorker = {settings.kcl_max_leases_for_worker}")
    kinesis = _endpoint(env, "KINESIS")
    dynamodb = _endpoint(env, "DYNAMODB")
    if kinesis:
        lines.append(f"kinesisEndpoint = {kinesis}")
    if dynamodb:
        lines.append(f"dynamoDBEndpoint = {dynamodb}")
    if kinesis or dynamodb:
        # A local emulator has no CloudWatch for the KCL's own metrics.
        lines.append("metricsLevel = NONE")
    return "\n".join(lines) + "\n"


def with_worker_id(settings: ConsumerSettings) -> ConsumerSettings:
    """``settings`` with a KCL worker id: the configured one, else a new random one (ADR 0042).

    The id is fixed before the daemon starts so its record processors can be told it
    (``CHANGELAKE_KCL_WORKER_ID``: they fence their S3 writes with the lease, ADR 0043) and so
    a worker that died can be started again as itself.
    """
    if settings.kcl_worker_id is not None:
        return settings
    return settings.model_copy(update={"kcl_worker_id": str(uuid.uuid4())})


def jars_dir(settings: ConsumerSettings) -> Path:
    """Where the KCL jars are expected: the setting, else amazon_kclpy's ``jars`` folder."""
    if settings.kcl_jars_dir:
        return Path(settings.kcl_jars_dir)
    import importlib.util

    spec = importlib.util.find_spec("amazon_kclpy")
    if spec is None or spec.origin is None:
        raise KclUnavailableError(
            "amazon_kclpy is not installed: install changelake-consumer[kcl] "
            "(its build downloads the KCL jars), or use --runner local"
        )
    return Path(spec.origin).parent / "jars"


def check_available(settings: ConsumerSettings) -> tuple[str, list[str]]:
    """Java and the KCL jars, or one KclUnavailableError naming the fix."""
    java = shutil.which(settings.kcl_java)
    if java is None:
        raise KclUnavailableError(
            f"the KCL runner needs Java: {settings.kcl_java!r} was not found on PATH "
            "(install a JRE 17+ or set CHANGELAKE_KCL_JAVA), or use --runner local"
        )
    folder = jars_dir(settings)
    jars = sorted(glob.glob(str(folder / "*.jar")))
    if not jars:
        raise KclUnavailableError(
            f"the KCL runner needs the KCL jars, and {folder} has none: install amazon-kclpy "
            "normally (its build downloads them from Maven Central) or set "
            "CHANGELAKE_KCL_JARS_DIR, or use --runner local"
        )
    if not any(Path(jar).name.startswith("amazon-kinesis-client-multilang") for jar in jars):
        raise KclUnavailableError(
            f"the KCL runner needs the KCL jars, and {folder} has no "
            "amazon-kinesis-client-multilang jar: reinstall amazon-kclpy or fix "
            "CHANGELAKE_KCL_JARS_DIR, or use --runner local"
        )
    return java, jars


def daemon_command(
    settings: ConsumerSettings, properties_file: Path, env: Mapping[str, str] | None = None
) -> list[str]:
    """``java -cp <jars> MultiLangDaemon --properties-file …``; clear error if unavailable."""
    java, jars = check_available(settings)
    jvm_flags = [CBOR_OFF] if is_local(env) else []
    return [
        java,
        *jvm_flags,
        "-cp",
        os.pathsep.join(jars),
        DAEMON_CLASS,
        "--properties-file",
        str(properties_file),
        "--log-configuration",
        str(LOGBACK_CONFIG),
    ]


def kcl_command(settings: ConsumerSettings) -> list[str]:
    """Write the ``.properties`` and return the daemon command (raises KclUnavailableError)."""
    path = (
        Path(settings.kcl_properties_path)
        if settings.kcl_properties_path
        else Path(tempfile.gettempdir()) / f"{settings.application_name}.properties"
    )
    command = daemon_command(settings, path)
    path.write_text(render(settings), encoding="utf-8")
    return command
