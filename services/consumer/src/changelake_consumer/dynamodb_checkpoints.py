"""DynamoDB adapter of :class:`changelake.ports.CheckpointStore` for the local runner.

One item per (stream, shard): ``lease_key`` = ``<stream>/<shard id>``, ``checkpoint`` (the last
durable sequence number) and ``finished`` (the closed shard is fully processed, so its children
may start). The table is created on first use (on-demand capacity).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

    def _item(self, shard_id: str) -> dict[str, Any]:
        """The shard's item (strongly consistent read); empty if it has none."""
        return dict(
            self._db.get_item(
                TableName=self.table, Key=self._key(shard_id), ConsistentRead=True
            ).get("Item", {})
        )

    def load(self, shard_id: str) -> str | None:
        """The last saved sequence number of the shard, if any."""
        item = self._item(shard_id)
        return item["checkpoint"]["S"] if "checkpoint" in item else None

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

    def mark_finished(self, shard_id: str, end: str | None) -> None:
        """Record that the closed shard is fully processed, up to its ending ``end``."""
        names = {"#f": "finished", "#u": "updated_at"}
        values: dict[str, Any] = {
            ":t": {"BOOL": True},
            ":u": {"S": us_to_datetime(now_us()).isoformat()},
        }
        update = "SET #f = :t, #u = :u"
        if end is not None:
            names["#e"] = "ending_sequence"
            values[":e"] = {"S": end}
            update += ", #e = :e"
        self._db.update_item(
            TableName=self.table,
            Key=self._key(shard_id),
            UpdateExpression=update,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def is_finished(self, shard_id: str) -> bool:
        """Whether :meth:`mark_finished` was called for the shard."""
        return bool(self._item(shard_id).get("finished", {}).get("BOOL"))

    def finished_end(self, shard_id: str) -> str | None:
        """The ending sequence number recorded when the shard finished."""
        item = self._item(shard_id)
        return item["ending_sequence"]["S"] if "ending_sequence" in item else None
