"""Settings: environment variables with the one prefix ``CHANGELAKE_``, validated and frozen.

AWS endpoints are *not* settings: every client honours the standard ``AWS_ENDPOINT_URL`` and
``AWS_ENDPOINT_URL_<SERVICE>`` variables (boto3 reads them itself), so the same code runs
against AWS and the local emulator.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from changelake.privacy import PrivacyPolicy, parse_rules
from changelake.table_name import check_table_name

ENV_PREFIX = "CHANGELAKE_"
# (secret id, region) -> the secret's bytes: how a service reads the privacy key on AWS.
SecretReader = Callable[[str, str], bytes]
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
METRICS_SINKS = ("log", "emf")
RETIRED_TABLE_NAME = f"{ENV_PREFIX}TABLE_NAME"


class ChangelakeSettings(BaseSettings):
    """Settings every service shares; services subclass and add their own fields."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="ignore", case_sensitive=False
    )

    region: str = Field(
        "us-east-1",
        description="AWS region of every resource (clients use it when AWS_REGION is unset)",
    )
    tables: Annotated[tuple[str, ...], NoDecode] = Field(
        ("persons",),
        description="DynamoDB tables whose changes are captured, comma-separated (all stream"
        " to the one Kinesis stream)",
    )
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

    @field_validator("tables", mode="before")
    @classmethod
    def _valid_tables(cls, value: Any) -> tuple[str, ...]:
        return parse_tables(value)

    def single_table(self, name: str | None = None) -> str:
        """The one table a single-table command works on: ``name`` if given (checked), else
        the only configured table; ``ValueError`` naming the choices when several are."""
        if name is not None:
            return check_table_name(name)
        if len(self.tables) > 1:
            raise ValueError(
                f"{len(self.tables)} tables are configured ({', '.join(self.tables)}):"
                " name one (--table)"
            )
        return self.tables[0]

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

    @model_validator(mode="before")
    @classmethod
    def _no_retired_table_name(cls, data: Any) -> Any:
        # A deployment still setting the old variable would silently capture `persons` only.
        if os.environ.get(RETIRED_TABLE_NAME) is not None:
            raise ValueError(
                f"{RETIRED_TABLE_NAME} was replaced by {ENV_PREFIX}TABLES (comma-separated"
                f" table names): set {ENV_PREFIX}TABLES={os.environ[RETIRED_TABLE_NAME]}"
            )
        return data


def parse_tables(value: Any) -> tuple[str, ...]:
    """``"persons, orders"`` (or a sequence) → ``("persons", "orders")``, each name checked.

    Raises ``ValueError`` naming the bad entry: an invalid DynamoDB table name, a repeated one,
    or an empty list.
    """
    parts = value.split(",") if isinstance(value, str) else list(value)
    names = [str(part).strip() for part in parts]
    if not any(names):
        raise ValueError("tables must name at least one DynamoDB table")
    seen: set[str] = set()
    for position, name in enumerate(names, 1):
        try:
            check_table_name(name)
        except ValueError as exc:
            raise ValueError(f"tables entry {position}: {exc}") from None
        if name in seen:
            raise ValueError(f"tables entry {position}: {name!r} is listed twice")
        seen.add(name)
    return tuple(names)
