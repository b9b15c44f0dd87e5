"""The KCL lease of one shard, read by its record processor to fence S3 writes (ADR 0043).

The MultiLangDaemon renews leases in the JVM; the Python record processor only learns that a
lease moved when the KCL tells it (``lease_lost``, a refused checkpoint), which can be after a
stalled worker woke up and flushed. :class:`KclLeaseFence` reads the lease item right before a
PUT instead: the KCL's own rule for who may checkpoint is the ``checkpointOwner`` while a
graceful hand-off is pending, else the ``leaseOwner`` (``Lease.actualOwner``), and that must
be this worker (``workerId``, handed to the processors by the daemon as
``CHANGELAKE_KCL_WORKER_ID``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from changelake.adapters import aws

from changelake_consumer.ports import LeaseLostError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class KclLeaseFence:
    """Raises :class:`LeaseLostError` unless ``worker_id`` still owns ``shard_id``'s lease."""

    def __init__(
        self, lease_table: str, shard_id: str, worker_id: str, client: DynamoDBClient | None = None
    ) -> None:
        self.lease_table = lease_table
        self.shard_id = shard_id
        self.worker_id = worker_id
        self._db = client or aws.dynamodb()

    def owner(self) -> str | None:
        """Who may write for the shard now (None: no lease, e.g. deleted after a reshard)."""
        item = self._db.get_item(
            TableName=self.lease_table,
            Key={"leaseKey": {"S": self.shard_id}},
            ConsistentRead=True,
            ProjectionExpression="leaseOwner, checkpointOwner",
        ).get("Item")
        if item is None:
            return None
        for name in ("checkpointOwner", "leaseOwner"):
            value = item.get(name, {}).get("S")
            if value:
                return value
        return None

    def __call__(self) -> None:
        owner = self.owner()
        if owner != self.worker_id:
            raise LeaseLostError(
                f"the KCL lease of {self.shard_id} is held by {owner!r}, not {self.worker_id!r}"
            )
