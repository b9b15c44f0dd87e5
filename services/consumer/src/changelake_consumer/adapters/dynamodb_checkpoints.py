"""DynamoDB adapter of :class:`changelake.ports.CheckpointStore` and of the local runner's
shard leases (ADR 0017).

One item per (stream, shard): ``lease_key`` = ``<stream>/<shard id>``, ``checkpoint`` (the last
durable sequence number), ``finished`` (the closed shard is fully processed, so its children
may start) with its ``ending_sequence``, and the lease: ``owner`` (a runner's worker id) and
``lease_counter`` (incremented by the owner at every renewal). One item per running runner,
``<stream>/#worker/<worker id>``, carries its heartbeat ``lease_counter`` so runners can count
each other. With a ``worker_id``, every checkpoint write is conditional on still owning the
lease. A lease (or a runner) whose counter has not moved for the lease timeout, by the
observer's own clock, is expired: the KCL's rule, free of clock skew. The table is created on
first use (on-demand capacity).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from changelake.adapters import aws
from changelake.timeutil import now_us, us_to_datetime

from changelake_consumer.ports import LeaseItem, LeaseLostError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KEY = "lease_key"
WORKER_PREFIX = "#worker/"
_CONDITION_FAILED = "ConditionalCheckFailedException"


class DynamoDBCheckpointStore:
    """Shard checkpoints of one consumer of one stream, in a DynamoDB table."""

    def __init__(
        self,
        table: str,
        stream_name: str,
        client: DynamoDBClient | None = None,
        *,
        worker_id: str | None = None,
    ) -> None:
        self.table = table
        self.stream_name = stream_name
        self.worker_id = worker_id
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
        """Persist the checkpoint (raises on failure; :class:`LeaseLostError` if not owner)."""
        self._update(
            shard_id,
            "SET #c = :c, #u = :u",
            {"#c": "checkpoint", "#u": "updated_at"},
            {":c": {"S": sequence_number}, ":u": {"S": _now()}},
        )

    def _update(
        self,
        shard_id: str,
        update: str,
        names: dict[str, str],
        values: dict[str, Any],
        *,
        owned: bool = True,
    ) -> None:
        """One UpdateItem, conditional on this worker's lease when it has a worker id."""
        kwargs: dict[str, Any] = {}
        if owned and self.worker_id is not None:
            kwargs["ConditionExpression"] = "#o = :me"
            names = {**names, "#o": "owner"}
            values = {**values, ":me": {"S": self.worker_id}}
        try:
            self._db.update_item(
                TableName=self.table,
                Key=self._key(shard_id),
                UpdateExpression=update,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                **kwargs,
            )
        except ClientError as exc:
            if aws.error_code(exc) == _CONDITION_FAILED:
                raise LeaseLostError(
                    f"lease of {shard_id} is no longer {self.worker_id}'s"
                ) from exc
            raise

    def mark_finished(self, shard_id: str, end: str | None) -> None:
        """Record that the closed shard is fully processed, up to its ending ``end``."""
        names = {"#f": "finished", "#u": "updated_at"}
        values: dict[str, Any] = {":t": {"BOOL": True}, ":u": {"S": _now()}}
        update = "SET #f = :t, #u = :u"
        if end is not None:
            names["#e"] = "ending_sequence"
            values[":e"] = {"S": end}
            update += ", #e = :e"
        self._update(shard_id, update, names, values)

    def is_finished(self, shard_id: str) -> bool:
        """Whether :meth:`mark_finished` was called for the shard."""
        return bool(self._item(shard_id).get("finished", {}).get("BOOL"))

    def finished_end(self, shard_id: str) -> str | None:
        """The ending sequence number recorded when the shard finished."""
        item = self._item(shard_id)
        return item["ending_sequence"]["S"] if "ending_sequence" in item else None

    # -- leases (local runner, ADR 0017) --------------------------------------------------

    def _worker_key(self) -> str:
        if self.worker_id is None:
            raise RuntimeError("leases need a worker_id")
        return f"{WORKER_PREFIX}{self.worker_id}"

    def heartbeat(self) -> None:
        """Tell the other runners this one is alive (its own counter moves)."""
        self._db.update_item(
            TableName=self.table,
            Key=self._key(self._worker_key()),
            UpdateExpression="SET #n = if_not_exists(#n, :zero) + :one, #u = :u",
            ExpressionAttributeNames={"#n": "lease_counter", "#u": "updated_at"},
            ExpressionAttributeValues={
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
                ":u": {"S": _now()},
            },
        )

    def retire(self) -> None:
        """Remove this runner's heartbeat (clean shutdown)."""
        self._db.delete_item(TableName=self.table, Key=self._key(self._worker_key()))

    def scan(self) -> list[LeaseItem]:
        """Every shard and worker item of this stream (strongly consistent)."""
        prefix = f"{self.stream_name}/"
        items: list[LeaseItem] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "ConsistentRead": True,
            "FilterExpression": "begins_with(#k, :p)",
            "ExpressionAttributeNames": {"#k": KEY},
            "ExpressionAttributeValues": {":p": {"S": prefix}},
        }
        while True:
            resp = self._db.scan(**kwargs)
            for item in resp.get("Items", []):
                name = item[KEY]["S"][len(prefix) :]
                worker = name.startswith(WORKER_PREFIX)
                items.append(
                    LeaseItem(
                        shard_id=name[len(WORKER_PREFIX) :] if worker else name,
                        owner=item["owner"]["S"] if "owner" in item else None,
                        counter=int(item["lease_counter"]["N"]) if "lease_counter" in item else 0,
                        finished=bool(item.get("finished", {}).get("BOOL")),
                        ending_sequence=item["ending_sequence"]["S"]
                        if "ending_sequence" in item
                        else None,
                        is_worker=worker,
                    )
                )
            if "LastEvaluatedKey" not in resp:
                return items
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def acquire(self, shard_id: str, expired: LeaseItem | None) -> bool:
        """Take the shard's lease: free, or ``expired`` (as observed: same owner and counter)."""
        names = {"#o": "owner", "#n": "lease_counter", "#u": "updated_at"}
        values: dict[str, Any] = {
            ":me": {"S": self.worker_id or ""},
            ":zero": {"N": "0"},
            ":one": {"N": "1"},
            ":u": {"S": _now()},
        }
        if expired is None or expired.owner is None:
            condition = "attribute_not_exists(#o)"
        else:
            condition = "#o = :old AND #n = :seen"
            values[":old"] = {"S": expired.owner}
            values[":seen"] = {"N": str(expired.counter)}
        try:
            self._db.update_item(
                TableName=self.table,
                Key=self._key(shard_id),
                UpdateExpression="SET #o = :me, #n = if_not_exists(#n, :zero) + :one, #u = :u",
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if aws.error_code(exc) == _CONDITION_FAILED:
                return False  # another runner was faster
            raise
        return True

    def renew(self, shard_id: str) -> None:
        """Move the lease's counter (raises :class:`LeaseLostError` if no longer the owner)."""
        self._update(
            shard_id,
            "SET #n = #n + :one, #u = :u",
            {"#n": "lease_counter", "#u": "updated_at"},
            {":one": {"N": "1"}, ":u": {"S": _now()}},
        )

    def release(self, shard_id: str) -> None:
        """Give the lease up (after the last checkpoint), so another runner takes it at once."""
        with contextlib.suppress(LeaseLostError):  # another owner already: nothing to give up
            self._update(
                shard_id, "REMOVE #o SET #u = :u", {"#u": "updated_at"}, {":u": {"S": _now()}}
            )


def _now() -> str:
    return us_to_datetime(now_us()).isoformat()
