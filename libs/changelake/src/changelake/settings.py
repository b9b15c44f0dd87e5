"""Settings: environment variables with the one prefix ``CHANGELAKE_``, validated and frozen.

AWS endpoints are *not* settings: every client honours the standard ``AWS_ENDPOINT_URL`` and
``AWS_ENDPOINT_URL_<SERVICE>`` variables (boto3 reads them itself), so the same code runs
against AWS and the local emulator.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from changelake.privacy import PrivacyPolicy, parse_rules
from changelake.table_name import check_table_name

ENV_PREFIX = "CHANGELAKE_"
# (secret id, region) -> the secret's bytes: how a service reads the privacy key on AWS.
SecretReader = Callable[[str, str], bytes]
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
METRICS_SINKS = ("log", "emf")


class ChangelakeSettings(BaseSettings):
    """Settings every service shares; services subclass and add their own fields."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="ignore", case_sensitive=False
    )

    region: str = Field(
        "us-east-1",
        description="AWS region of every resource (clients use it when AWS_REGION is unset)",
    )
    table_name: str = Field("persons", description="DynamoDB table whose changes are captured")
    stream_name: str = Field("changelake-persons", description="Kinesis stream of the changes")
    lake_bucket: str = Field("changelake-lake", description="S3 bucket of the lake")
    database: str = Field("changelake", description="Glue database of the lake's tables")
    catalog_queue: str = Field(
        "changelake-catalog", description="SQS queue fed by the lake's ObjectCreated events"
    )
    firehose_name: str = Field(
        "changelake-raw", description="Firehose delivery stream writing the raw prefix"
    )
    log_level: str = Field("INFO", description="Log level (stderr, JSON lines)")
    metrics: str = Field("log", description="Metrics sink: 'log' or 'emf' (CloudWatch EMF)")
    privacy_policy: str | None = Field(
        None,
        description="Privacy policy per table, JSON {table: {path: hash|mask|drop}}, applied"
        " before anything is written (README: Privacy)",
    )
    privacy_key: SecretStr | None = Field(
        None, description="Key of the policy's keyed hashes, ≥32 bytes (locally)"
    )
    privacy_key_secret: str | None = Field(
        None, description="Or: Secrets Manager secret id holding that key (on AWS)"
    )

    # Fail at start-up with the variable's name, not later deep inside a service.
    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("metrics")
    @classmethod
    def _known_metrics_sink(cls, value: str) -> str:
        if value not in METRICS_SINKS:
            raise ValueError(f"metrics must be one of {', '.join(METRICS_SINKS)}")
        return value

    @field_validator("privacy_policy")
    @classmethod
    def _valid_privacy_policy(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parse_rules(value)  # a bad path or action fails here, at start
        return value

    @field_validator("table_name")
    @classmethod
    def _valid_table_name(cls, value: str) -> str:
        return check_table_name(value)

    def resolve_privacy(self, read_secret: SecretReader) -> PrivacyPolicy | None:
        """The privacy policy with its key resolved (``None`` without a policy).

        The key is ``CHANGELAKE_PRIVACY_KEY`` when set, else the secret named by
        ``CHANGELAKE_PRIVACY_KEY_SECRET`` read through ``read_secret`` (on AWS,
        :func:`changelake.adapters.aws.read_secret`, called only then). Raises
        :class:`~changelake.privacy.PrivacyPolicyError` at start when a hash rule has no key.
        """
        if not self.privacy_policy:
            return None
        key: bytes | None = None
        if self.privacy_key is not None:
            key = self.privacy_key.get_secret_value().encode()
        elif self.privacy_key_secret:
            key = read_secret(self.privacy_key_secret, self.region)
        return PrivacyPolicy(self.privacy_policy, key)
