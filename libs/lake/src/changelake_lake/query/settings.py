"""Settings of ``changelake query`` (environment, prefix ``CHANGELAKE_``)."""

from __future__ import annotations

from changelake.settings import ChangelakeSettings
from pydantic import Field


class QuerySettings(ChangelakeSettings):
    """Where Athena or Trino runs queries and how long the CLI waits for one."""

    athena_workgroup: str = Field("primary", description="Athena workgroup of StartQueryExecution")
    athena_output_location: str | None = Field(
        None, description="s3:// result location; unset = the workgroup's own setting"
    )
    athena_timeout_s: float = Field(900.0, gt=0, description="Give up (and cancel) after this")
    athena_poll_max_s: float = Field(5.0, gt=0, description="Longest pause between status polls")
    trino_url: str | None = Field(
        None,
        description="http(s):// URL of the Trino coordinator (`local up --with-trino` prints it)",
    )
    trino_catalog: str = Field(
        "awsdatacatalog", description="Trino catalog whose Hive connector reads the Glue catalog"
    )
    trino_user: str = Field("changelake", description="User name sent to Trino (X-Trino-User)")
    trino_timeout_s: float = Field(900.0, gt=0, description="Give up (and cancel) after this")
