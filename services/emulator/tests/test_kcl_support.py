"""What the emulator adds for the real KCL 3 (ADR 0015), each checked over real HTTP.

* one port serves HTTP/1.1 (boto3) and cleartext HTTP/2 with prior knowledge (the KCL's Netty
  client), on the same moto state;
* the DynamoDB calls KCL 3 makes on its lease, CoordinatorState and WorkerMetricStats tables:
  a GSI added by UpdateTable (LeaseOwnerToLeaseKeyIndex) queried by owner, conditional
  TransactWriteItems, parallel Scan segments;
* a closed shard's last GetRecords ends with ``ChildShards`` and no iterator, as on AWS.
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import urlparse

import boto3
import h2.config
import h2.connection
import h2.events
import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.aws

LEASES = "kcl-app"
INDEX = "LeaseOwnerToLeaseKeyIndex"


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1")


def h2c_post(endpoint: str, target: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """One request over cleartext HTTP/2 with prior knowledge, as the KCL's Netty client sends.

    The connection starts with the HTTP/2 preface (no HTTP/1.1 upgrade), like Netty's
    ``Http2FrameCodec`` on an ``http://`` endpoint.
    """
    url = urlparse(endpoint)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    payload = json.dumps(body).encode()
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        conn.initiate_connection()
        stream = conn.get_next_available_stream_id()
        conn.send_headers(
            stream,
            [
                (":method", "POST"),
                (":path", "/"),
                (":scheme", "http"),
                (":authority", url.netloc),
                ("content-type", "application/x-amz-json-1.0"),
                ("x-amz-target", target),
                ("content-length", str(len(payload))),
                (
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, "
                    "SignedHeaders=host, Signature=0",
                ),
            ],
        )
        conn.send_data(stream, payload, end_stream=True)
        sock.sendall(conn.data_to_send())
        status, data, ended = 0, bytearray(), False
        while not ended:
            chunk = sock.recv(65536)
            assert chunk, "server closed the HTTP/2 connection"
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    data.extend(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, stream)
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
            sock.sendall(conn.data_to_send())
    return status, json.loads(bytes(data))


def test_one_port_serves_http1_and_h2c_on_the_same_state(emulator: Any) -> None:
    ddb = _client("dynamodb", emulator.endpoint)  # botocore: HTTP/1.1
    ddb.create_table(
        TableName="h2c-check",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    status, listed = h2c_post(emulator.endpoint, "DynamoDB_20120810.ListTables", {})
    assert status == 200
    assert "h2c-check" in listed["TableNames"]
    assert emulator.settings.tables[0] in listed["TableNames"]  # the bootstrap's table too
    status, _ = h2c_post(
        emulator.endpoint,
        "DynamoDB_20120810.PutItem",
        {"TableName": "h2c-check", "Item": {"k": {"S": "over-h2"}}},
    )
    assert status == 200
    assert ddb.get_item(TableName="h2c-check", Key={"k": {"S": "over-h2"}})["Item"] == {
        "k": {"S": "over-h2"}
    }


def test_s3_metadata_keeps_underscores_like_motos_own_server(emulator: Any) -> None:
    s3 = _client("s3", emulator.endpoint)
    s3.put_object(
        Bucket=emulator.settings.lake_bucket,
        Key="meta",
        Body=b"x",
        Metadata={"snake_case": "1", "kebab-case": "2"},
    )
    head = s3.head_object(Bucket=emulator.settings.lake_bucket, Key="meta")
    assert head["Metadata"] == {"snake_case": "1", "kebab-case": "2"}


def _lease_table(ddb: Any) -> None:
    # As DynamoDBLeaseRefresher.createLeaseTableIfNotExists, then createLeaseOwnerToLeaseKeyIndex.
    ddb.create_table(
        TableName=LEASES,
        KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.update_table(
        TableName=LEASES,
        AttributeDefinitions=[
            {"AttributeName": "leaseKey", "AttributeType": "S"},
            {"AttributeName": "leaseOwner", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexUpdates=[
            {
                "Create": {
                    "IndexName": INDEX,
                    "KeySchema": [
                        {"AttributeName": "leaseOwner", "KeyType": "HASH"},
                        {"AttributeName": "leaseKey", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            }
        ],
    )


def test_lease_table_gsi_by_owner_is_active_and_queryable(emulator: Any) -> None:
    ddb = _client("dynamodb", emulator.endpoint)
    _lease_table(ddb)
    indexes = ddb.describe_table(TableName=LEASES)["Table"]["GlobalSecondaryIndexes"]
    assert [(i["IndexName"], i["IndexStatus"]) for i in indexes] == [(INDEX, "ACTIVE")]
    for key, owner in [("shard-0", "w1"), ("shard-1", "w2"), ("shard-2", "w1"), ("shard-3", None)]:
        item = {"leaseKey": {"S": key}, "leaseCounter": {"N": "1"}}
        if owner:
            item["leaseOwner"] = {"S": owner}
        ddb.put_item(TableName=LEASES, Item=item)
    found = ddb.query(
        TableName=LEASES,
        IndexName=INDEX,
        KeyConditionExpression="leaseOwner = :o",
        ExpressionAttributeValues={":o": {"S": "w1"}},
    )["Items"]
    assert sorted(i["leaseKey"]["S"] for i in found) == ["shard-0", "shard-2"]


def test_transact_write_items_is_all_or_nothing_on_a_failed_condition(emulator: Any) -> None:
    ddb = _client("dynamodb", emulator.endpoint)
    _lease_table(ddb)
    ddb.put_item(TableName=LEASES, Item={"leaseKey": {"S": "a"}, "leaseCounter": {"N": "1"}})
    ddb.put_item(TableName=LEASES, Item={"leaseKey": {"S": "b"}, "leaseCounter": {"N": "1"}})

    def bump(counter: str) -> list[dict[str, Any]]:
        return [
            {
                "Update": {
                    "TableName": LEASES,
                    "Key": {"leaseKey": {"S": key}},
                    "UpdateExpression": "SET leaseCounter = leaseCounter + :one",
                    "ConditionExpression": "leaseCounter = :c",
                    "ExpressionAttributeValues": {":one": {"N": "1"}, ":c": {"N": counter}},
                }
            }
            for key in ("a", "b")
        ]

    ddb.transact_write_items(TransactItems=bump("1"))
    with pytest.raises(ClientError) as failed:
        ddb.transact_write_items(TransactItems=bump("1"))  # stale counter: both must stay
    assert failed.value.response["Error"]["Code"] == "TransactionCanceledException"
    items = ddb.scan(TableName=LEASES, ConsistentRead=True)["Items"]
    assert sorted((i["leaseKey"]["S"], i["leaseCounter"]["N"]) for i in items) == [
        ("a", "2"),
        ("b", "2"),
    ]


def test_parallel_scan_segments_are_disjoint_and_cover_the_table(emulator: Any) -> None:
    ddb = _client("dynamodb", emulator.endpoint)
    _lease_table(ddb)
    keys = {f"shardId-{i:012d}" for i in range(40)}
    for key in keys:
        ddb.put_item(TableName=LEASES, Item={"leaseKey": {"S": key}})
    segments = [
        [
            i["leaseKey"]["S"]
            for i in ddb.scan(TableName=LEASES, Segment=s, TotalSegments=4, ConsistentRead=True)[
                "Items"
            ]
        ]
        for s in range(4)
    ]
    seen = [k for segment in segments for k in segment]
    assert sorted(seen) == sorted(keys)  # each key exactly once across the segments


def _read_to_end(kinesis: Any, stream: str, shard_id: str) -> tuple[int, dict[str, Any]]:
    """Records read from a shard and the response that ended it (no NextShardIterator)."""
    iterator = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    count = 0
    for _ in range(20):
        resp = kinesis.get_records(ShardIterator=iterator, Limit=2)
        count += len(resp["Records"])
        if resp.get("NextShardIterator") is None:
            return count, resp
        assert "ChildShards" not in resp
        iterator = resp["NextShardIterator"]
    raise AssertionError(f"{shard_id} never ended")


def test_closed_shards_end_with_child_shards_after_split_and_merge(emulator: Any) -> None:
    kinesis = _client("kinesis", emulator.endpoint)
    kinesis.create_stream(StreamName="reshard", ShardCount=1)
    for i in range(5):
        kinesis.put_record(StreamName="reshard", Data=b"%d" % i, PartitionKey=f"k{i}")
    (parent,) = kinesis.list_shards(StreamName="reshard")["Shards"]
    parent_id = parent["ShardId"]
    middle = str(2**127)
    kinesis.split_shard(StreamName="reshard", ShardToSplit=parent_id, NewStartingHashKey=middle)
    children = [
        s for s in kinesis.list_shards(StreamName="reshard")["Shards"] if s["ShardId"] != parent_id
    ]
    assert len(children) == 2

    # Open shards never end, and never carry ChildShards.
    resp = kinesis.get_records(
        ShardIterator=kinesis.get_shard_iterator(
            StreamName="reshard", ShardId=children[0]["ShardId"], ShardIteratorType="LATEST"
        )["ShardIterator"]
    )
    assert resp.get("NextShardIterator")
    assert "ChildShards" not in resp

    records, end = _read_to_end(kinesis, "reshard", parent_id)
    assert records == 5  # the page with the last record already ends the shard
    assert end["ChildShards"] == [
        {
            "ShardId": c["ShardId"],
            "ParentShards": [parent_id],
            "HashKeyRange": c["HashKeyRange"],
        }
        for c in children
    ]

    left, right = sorted(children, key=lambda c: int(c["HashKeyRange"]["StartingHashKey"]))
    kinesis.merge_shards(
        StreamName="reshard",
        ShardToMerge=left["ShardId"],
        AdjacentShardToMerge=right["ShardId"],
    )
    shards = kinesis.list_shards(StreamName="reshard")["Shards"]
    (merged,) = [s for s in shards if s.get("AdjacentParentShardId")]
    for closed in (left, right):
        _, end = _read_to_end(kinesis, "reshard", closed["ShardId"])
        assert end["ChildShards"] == [
            {
                "ShardId": merged["ShardId"],
                "ParentShards": [left["ShardId"], right["ShardId"]],
                "HashKeyRange": merged["HashKeyRange"],
            }
        ]
