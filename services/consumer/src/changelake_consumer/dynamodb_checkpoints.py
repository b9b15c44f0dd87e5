"""DynamoDB adapter of :class:`changelake.ports.CheckpointStore` for the local runner.

One item per (stream, shard): ``lease_key`` = ``<stream>/<shard id>``, ``checkpoint`` (the last
durable sequence number) and ``finished`` (the closed shard is fully processed, so its children
may start). The table is created on first use (on-demand capacity).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError
from changelake import aws
from changelake.timeutil import now_us, us_to_datetime

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KEY = "lease_key"


class DynamoDBCheckpointStore:
    """Shard checkpoints of one consumer of one stream, in a DynamoDB table."""

    def __init__(self, table: str, stream_name: str, client: DynamoDBClient | None = None) -> None:
        self.table = table
        self.stream_name = stream_name
        self._db = client or aws.dynamodb()

    def _key(self, shard_id: str) -> dict[str, dict[str, str]]:
        return {KEY: {"S": f"{self.stream_name}/{shard_id}"}}

    def ensure_table(self) -> None:
        """Create the table if it does not exist and wait until it is active."""
        try:
            self._db.describe_table(TableName=self.table)
        except ClientError as exc:
            if aws.error_code(exc) != "ResourceNotFoundException":
                raise
            try:
                self._db.create_table(
                    TableName=self.table,
                    AttributeDefinitions=[{"AttributeName": KEY, "AttributeType": "S"}],
                    KeySchema=[{"AttributeName": KEY, "KeyType": "HASH"}],
                    BillingMode="PAY_PER_REQUEST",
                )
            except ClientError as create_exc:  # another runner created it meanwhile
                if aws.error_code(create_exc) != "ResourceInUseException":
                    raise
        self._db.get_waiter("table_exists").wait(
            TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )

    def load(self, shard_id: str) -> str | None:
        """The last saved sequence number of the shard, if any (strongly consistent read)."""
        item = self._db.get_item(
            TableName=self.table, Key=self._key(shard_id), ConsistentRead=True
        ).get("Item")
        if not item or "checkpoint" not in item:
            return None
        return item["checkpoint"]["S"]

    def save(self, shard_id: str, sequence_number: str) -> None:
        """Persist the checkpoint (raises on failure)."""
        self._db.update_item(
            TableName=self.table,
            Key=self._key(shard_id),
            UpdateExpression="SET #c = :c, #u = :u",
            ExpressionAttributeNames={"#c": "checkpoint", "#u": "updated_at"},
            ExpressionAttributeValues={
                ":c": {"S": sequence_number},
                ":u": {"S": us_to_datetime(now_us()).isoformat()},
            },
        )

    def mark_finished(self, shard_id: str) -> None:
        """Record that the closed shard is fully processed."""
        self._db.update_item(
            TableName=self.table,
            Key=self._key(shard_id),
            UpdateExpression="SET #f = :t, #u = :u",
            ExpressionAttributeNames={"#f": "finished", "#u": "updated_at"},
            ExpressionAttributeValues={
                ":t": {"BOOL": True},
                ":u": {"S": us_to_datetime(now_us()).isoformat()},
            },
        )

    def is_finished(self, shard_id: str) -> bool:
        """Whether :meth:`mark_finished` was called for the shard."""
        item = self._db.get_item(
            TableName=self.table, Key=self._key(shard_id), ConsistentRead=True
        ).get("Item")
        return bool(item and item.get("finished", {}).get("BOOL"))
