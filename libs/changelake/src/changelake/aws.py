"""AWS client factory: the one place that holds retry, timeout and endpoint policy.

Endpoints come only from the standard ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``
environment variables, which boto3 reads itself; nothing here hard-codes an endpoint.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from changelake.settings import ENV_PREFIX, ChangelakeSettings

if TYPE_CHECKING:
    from mypy_boto3_athena import AthenaClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_firehose import FirehoseClient
    from mypy_boto3_glue import GlueClient
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

RETRY_ATTEMPTS = 8
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 30

_lock = threading.Lock()


def client_config(**overrides: Any) -> Config:
    """The one botocore policy: adaptive retries with backoff, bounded timeouts, pooled."""
    params: dict[str, Any] = {
        "retries": {"mode": "adaptive", "max_attempts": RETRY_ATTEMPTS},
        "connect_timeout": CONNECT_TIMEOUT_S,
        "read_timeout": READ_TIMEOUT_S,
        "max_pool_connections": 32,
        "tcp_keepalive": True,
    }
    params.update(overrides)
    return Config(**params)


@functools.cache
def _session(region: str | None) -> boto3.session.Session:
    return boto3.session.Session(region_name=region)


def default_region() -> str:
    """The region when AWS's own configuration names none: ``CHANGELAKE_REGION`` (documented)."""
    region = os.environ.get(f"{ENV_PREFIX}REGION")
    return region or str(ChangelakeSettings.model_fields["region"].default)


def client(service: str, region: str | None = None, **config: Any) -> Any:
    """A boto3 client for ``service`` with the project's policy (thread-safe creation).

    The region is ``region``, else AWS's own resolution (``AWS_REGION``, profile …), else
    :func:`default_region` — so a service never dies with ``NoRegionError``.
    """
    with _lock:
        session = _session(region)
        if not session.region_name:  # stubs say str; boto3 gives None when unset
            session = _session(default_region())
        return session.client(service, config=client_config(**config))  # type: ignore[call-overload]


def s3(region: str | None = None) -> S3Client:
    """S3 client."""
    return client("s3", region)  # type: ignore[no-any-return]


def dynamodb(region: str | None = None) -> DynamoDBClient:
    """DynamoDB client."""
    return client("dynamodb", region)  # type: ignore[no-any-return]


def dynamodbstreams(region: str | None = None) -> DynamoDBStreamsClient:
    """DynamoDB Streams client."""
    return client("dynamodbstreams", region)  # type: ignore[no-any-return]


def kinesis(region: str | None = None) -> KinesisClient:
    """Kinesis client."""
    return client("kinesis", region)  # type: ignore[no-any-return]


def firehose(region: str | None = None) -> FirehoseClient:
    """Firehose client."""
    return client("firehose", region)  # type: ignore[no-any-return]


def glue(region: str | None = None) -> GlueClient:
    """Glue client."""
    return client("glue", region)  # type: ignore[no-any-return]


def sqs(region: str | None = None) -> SQSClient:
    """SQS client."""
    return client("sqs", region)  # type: ignore[no-any-return]


def athena(region: str | None = None) -> AthenaClient:
    """Athena client."""
    return client("athena", region)  # type: ignore[no-any-return]


def lambda_(region: str | None = None) -> LambdaClient:
    """Lambda client."""
    return client("lambda", region)  # type: ignore[no-any-return]


def cloudwatch(region: str | None = None) -> CloudWatchClient:
    """CloudWatch client."""
    return client("cloudwatch", region)  # type: ignore[no-any-return]


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError`` (``None`` for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None
