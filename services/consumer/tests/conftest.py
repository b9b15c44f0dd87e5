"""Consumer test configuration (builders live in changelake_testsupport.person_changes)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest


class KclLeaseTable:
    """A table shaped like the KCL's lease table (hash key ``leaseKey``) on the moto server."""

    name = "orders-consumer"  # the KCL names its lease table after the application

    def put(self, shard_id: str, **attributes: str) -> None:
        """One lease item (``leaseOwner=…``, ``checkpointOwner=…``)."""
        item = {"leaseKey": {"S": shard_id}, "leaseCounter": {"N": "7"}}
        item.update({name: {"S": value} for name, value in attributes.items()})
        boto3.client("dynamodb").put_item(TableName=self.name, Item=item)


@pytest.fixture
def kcl_lease_table(aws_endpoint: str) -> Iterator[KclLeaseTable]:
    """An empty KCL-shaped lease table, deleted afterwards."""
    table = KclLeaseTable()
    ddb = boto3.client("dynamodb")
    ddb.create_table(
        TableName=table.name,
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield table
    ddb.delete_table(TableName=table.name)
