"""The Kinesis-for-DynamoDB record exactly as AWS emits it (see docs/aws-behaviour.md).

Field names are AWS's own. Images stay DynamoDB JSON here (``dict[str, Any]``): the strict
codec in :mod:`changelake.ddb_json` validates them once, column-wise, further in; validating
whole images with pydantic per record would double the cost of the hot path.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

EventName = Literal["INSERT", "MODIFY", "REMOVE"]
Precision = Literal["MILLISECOND", "MICROSECOND"]

TTL_PRINCIPAL = "dynamodb.amazonaws.com"


# Kinesis-for-DynamoDB eventIDs are UUIDs (36 characters), DynamoDB Streams ones 32 hex: an
# eventID longer than this is not AWS's and would bloat every row and error line (issue 18).
MAX_EVENT_ID_LENGTH = 128


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", strict=False)


class UserIdentity(_Wire):
    """Who made the change; ``Service``/``dynamodb.amazonaws.com`` marks a TTL delete."""

    type: str
    principalId: str  # noqa: N815 - AWS field name


class StreamPayload(_Wire):
    """The ``dynamodb`` member of the record."""

    # Strict ints: a quoted or boolean timestamp is not what AWS emits, so it is not coerced.
    ApproximateCreationDateTime: int = Field(ge=0, strict=True)
    ApproximateCreationDateTimePrecision: Precision | None = None
    Keys: dict[str, Any]
    NewImage: dict[str, Any] | None = None
    OldImage: dict[str, Any] | None = None
    SizeBytes: int = Field(ge=0, strict=True)


class KinesisDynamoRecord(_Wire):
    """One DynamoDB change as put on the Kinesis stream by the streaming destination.

    Has no ``SequenceNumber``, ``StreamViewType`` or ``eventVersion`` (DynamoDB *Streams*
    fields); the Kinesis sequence number lives on the Kinesis record around it.
    """

    awsRegion: str  # noqa: N815
    eventID: str = Field(min_length=1, max_length=MAX_EVENT_ID_LENGTH)  # noqa: N815
    eventName: EventName  # noqa: N815
    userIdentity: UserIdentity | None = None  # noqa: N815
    recordFormat: Literal["application/json"] = "application/json"  # noqa: N815
    tableName: str = Field(min_length=1)  # noqa: N815
    eventSource: Literal["aws:dynamodb"] = "aws:dynamodb"  # noqa: N815
    dynamodb: StreamPayload

    @property
    def is_ttl_delete(self) -> bool:
        """True for a REMOVE made by DynamoDB's TTL process."""
        return (
            self.eventName == "REMOVE"
            and self.userIdentity is not None
            and self.userIdentity.type == "Service"
            and self.userIdentity.principalId == TTL_PRINCIPAL
        )
