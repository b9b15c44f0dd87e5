"""AWS client factory: the one place that holds retry, timeout and endpoint policy.

Endpoints come only from the standard ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_<SERVICE>``
environment variables, which boto3 reads itself; nothing here hard-codes an endpoint. A client
aimed at a loopback endpoint (the local stack) on a machine with no AWS credentials configured
gets dummy ones, as LocalStack's ``awslocal`` does, and says so once.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from changelake.privacy import PrivacyPolicy
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

log = logging.getLogger(__name__)

# What a client aimed at the local stack uses when nothing else is configured.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "changelake-local",
    "AWS_SECRET_ACCESS_KEY": "changelake-local",
}
# Any of these means the user configured credentials: never override them.
_CREDENTIAL_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
_CREDENTIAL_FILES = (
    ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
    ("AWS_CONFIG_FILE", "~/.aws/config"),
)

# What an AWS call raises on failure (for callers that must not import botocore themselves).
SDK_ERRORS: tuple[type[Exception], ...] = (BotoCoreError, ClientError)

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


def endpoint_for(service: str) -> str | None:
    """The endpoint override boto3 will use for ``service`` (``None``: AWS itself)."""
    specific = os.environ.get(f"AWS_ENDPOINT_URL_{service.upper().replace('-', '_')}")
    return specific or os.environ.get("AWS_ENDPOINT_URL") or None


def is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine (127.0.0.0/8, ::1, localhost)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    return host == "localhost" or host.startswith("127.") or host == "::1"


def credentials_configured() -> bool:
    """Whether the user configured AWS credentials in any way boto3 reads without a network."""
    if any(os.environ.get(name) for name in _CREDENTIAL_ENV):
        return True
    return any(
        Path(os.environ.get(var) or default).expanduser().is_file()
        for var, default in _CREDENTIAL_FILES
    )


@functools.cache
def _say_dummy_credentials(endpoint: str) -> None:
    log.warning(
        "no AWS credentials configured: using dummy ones for the local endpoint",
        extra={"endpoint": endpoint},
    )


def client(service: str, region: str | None = None, **config: Any) -> Any:
    """A boto3 client for ``service`` with the project's policy (thread-safe creation).

    The region is ``region``, else AWS's own resolution (``AWS_REGION``, profile …), else
    :func:`default_region` — so a service never dies with ``NoRegionError``. Aimed at a
    loopback endpoint with no credentials configured, it uses :data:`LOCAL_CREDENTIALS`.
    """
    credentials: dict[str, str] = {}
    endpoint = endpoint_for(service)
    if endpoint and is_loopback(endpoint) and not credentials_configured():
        _say_dummy_credentials(endpoint)
        credentials = {
            "aws_access_key_id": LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        }
    with _lock:
        session = _session(region)
        if not session.region_name:  # stubs say str; boto3 gives None when unset
            session = _session(default_region())
        return session.client(  # type: ignore[call-overload]
            service, config=client_config(**config), **credentials
        )


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


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong with an AWS call, in terms a user can act on (see :func:`failure`)."""

    kind: Literal["credentials", "unreachable", "region", "refused", "other"]
    error: BaseException  # the SDK's own exception
    endpoint: str | None = None
    operation: str = ""
    code: str = "error"
    message: str = ""


def failure(exc: BaseException) -> Failure | None:
    """The AWS SDK error behind ``exc`` (services wrap them), classified; ``None`` for others."""
    seen: BaseException | None = exc
    while seen is not None and not isinstance(seen, BotoCoreError | ClientError):
        seen = seen.__cause__ or seen.__context__
    if seen is None:
        return None
    endpoint = getattr(seen, "kwargs", {}).get("endpoint_url") or endpoint_for("s3")
    if isinstance(seen, NoCredentialsError | PartialCredentialsError):
        return Failure("credentials", seen, endpoint)
    if isinstance(seen, EndpointConnectionError):
        return Failure("unreachable", seen, endpoint)
    if isinstance(seen, NoRegionError):
        return Failure("region", seen, endpoint)
    if isinstance(seen, ClientError):
        return Failure(
            "refused",
            seen,
            endpoint,
            operation=getattr(seen, "operation_name", ""),
            code=error_code(seen) or "error",
            message=seen.response.get("Error", {}).get("Message") or str(seen),
        )
    return Failure("other", seen, endpoint)


def read_secret(secret_id: str, region: str | None = None) -> bytes:
    """A Secrets Manager secret's bytes (its SecretString, UTF-8, or its SecretBinary)."""
    secret = client("secretsmanager", region).get_secret_value(SecretId=secret_id)
    text = secret.get("SecretString")
    return text.encode() if isinstance(text, str) else bytes(secret["SecretBinary"])


def privacy_policy(settings: ChangelakeSettings) -> PrivacyPolicy | None:
    """The settings' privacy policy, its key read from Secrets Manager when configured so."""
    return settings.resolve_privacy(read_secret)
