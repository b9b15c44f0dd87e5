"""The KCL MultiLangDaemon's ``.properties``, rendered from settings, and the daemon command.

Endpoints are written only when the standard ``AWS_ENDPOINT_URL[_<SERVICE>]`` variables are set
(local emulator); on AWS the daemon resolves the regional endpoints itself.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from changelake_consumer.settings import ConsumerSettings

DAEMON_CLASS = "software.amazon.kinesis.multilang.MultiLangDaemon"
PROCESSOR_MODULE = "changelake_consumer.kcl_processor"


class KclUnavailableError(RuntimeError):
    """Java or the KCL jars are missing: the KCL runner cannot start here."""


def _endpoint(env: Mapping[str, str], service: str) -> str | None:
    return env.get(f"AWS_ENDPOINT_URL_{service}") or env.get("AWS_ENDPOINT_URL") or None


def render(settings: ConsumerSettings, env: Mapping[str, str] | None = None) -> str:
    """The daemon's properties for this consumer (stream, application, region, position …)."""
    env = os.environ if env is None else env
    lines = [
        "# Rendered by changelake_consumer.kcl_properties from CHANGELAKE_* settings.",
        f"executableName = {sys.executable} -m {PROCESSOR_MODULE}",
        f"streamName = {settings.stream_name}",
        f"applicationName = {settings.application_name}",
        "AWSCredentialsProvider = DefaultCredentialsProvider",
        f"processingLanguage = python/{sys.version_info.major}.{sys.version_info.minor}",
        f"initialPositionInStream = {settings.initial_position}",
        f"regionName = {settings.region}",
        # Time-based flushing needs a call even when a poll returns nothing (docs/aws-behaviour.md).
        "callProcessRecordsEvenForEmptyRecordList = true",
        f"maxRecords = {settings.get_records_limit}",
        f"idleTimeBetweenReadsInMillis = {round(1000 / settings.get_records_per_s)}",
        "failoverTimeMillis = 10000",
        "shardSyncIntervalMillis = 60000",
    ]
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


def daemon_command(settings: ConsumerSettings, properties_file: Path) -> list[str]:
    """``java -cp <jars> MultiLangDaemon --properties-file …``; clear error if unavailable."""
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
    return [
        java,
        "-cp",
        os.pathsep.join(jars),
        DAEMON_CLASS,
        "--properties-file",
        str(properties_file),
    ]
