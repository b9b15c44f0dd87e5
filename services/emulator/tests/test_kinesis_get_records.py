"""The emulator's own GetRecords answer equals moto's, byte for byte once parsed (ADR 0041)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

import boto3
import pytest
from changelake.settings import ChangelakeSettings
from changelake_emulator import kinesis_shard_end

pytestmark = pytest.mark.aws

SETTINGS = ChangelakeSettings()


def _get_records(endpoint: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        endpoint,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": kinesis_shard_end.GET_RECORDS_TARGET,
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential=testing/20260101/{SETTINGS.region}/kinesis/"
                "aws4_request, SignedHeaders=host, Signature=0"
            ),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _motos_answer(
    endpoint: str, body: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, dict[str, Any]]:
    with monkeypatch.context() as m:
        m.setattr(kinesis_shard_end, "get_records_response", lambda *_: None)
        return _get_records(endpoint, body)


def test_get_records_answer_equals_motos_own(
    emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN records of every data shape on both shards (binary, empty-ish, UTF-8, large)
    kinesis = boto3.client("kinesis", endpoint_url=emulator.endpoint, region_name=SETTINGS.region)
    payloads = [b"\x00\xff\x10", b"x", "é€😀".encode(), b"{}" * 5000, b"plain text"]
    for i in range(40):
        kinesis.put_record(
            StreamName=SETTINGS.stream_name, Data=payloads[i % 5], PartitionKey=f"key-{i}"
        )
    shards = kinesis.list_shards(StreamName=SETTINGS.stream_name)["Shards"]
    assert len(shards) == 2
    for shard in shards:
        iterator = kinesis.get_shard_iterator(
            StreamName=SETTINGS.stream_name,
            ShardId=shard["ShardId"],
            ShardIteratorType="TRIM_HORIZON",
        )["ShardIterator"]
        pages = 0
        while True:
            body = {"ShardIterator": iterator, "Limit": 7}
            # WHEN the same page is asked of the fast path and of moto's handler
            status, ours = _get_records(emulator.endpoint, body)
            moto_status, motos = _motos_answer(emulator.endpoint, body, monkeypatch)
            # THEN both answers are the same JSON
            assert status == moto_status == 200
            assert ours == motos
            pages += 1
            if not ours["Records"]:
                break
            iterator = ours["NextShardIterator"]
        assert pages >= 2
    # AND boto3 reads the fast answer like moto's: the data as put, in order per shard
    got = [
        bytes(r["Data"])
        for shard in shards
        for r in kinesis.get_records(ShardIterator=_trim_horizon(kinesis, shard["ShardId"]))[
            "Records"
        ]
    ]
    assert sorted(got) == sorted(payloads[i % 5] for i in range(40))


def _trim_horizon(kinesis: Any, shard_id: str) -> str:
    return str(
        kinesis.get_shard_iterator(
            StreamName=SETTINGS.stream_name, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
    )


def test_get_records_errors_are_motos(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # A well-formed iterator of a stream that does not exist: moto's ResourceNotFoundException.
    iterator = base64.b64encode(b"no-such-stream:shardId-000000000000:0").decode()
    body = {"ShardIterator": iterator}

    status, ours = _get_records(emulator.endpoint, body)
    moto_status, motos = _motos_answer(emulator.endpoint, body, monkeypatch)

    assert status == moto_status == 400
    assert ours == motos
    assert ours["__type"] == "ResourceNotFoundException"


def test_in_process_reads_give_the_wire_answer_and_the_clients_errors(emulator: Any) -> None:
    # GIVEN records on a shard, read by the Firehose bridge's in-process client (ADR 0047)
    from changelake_emulator.moto_direct import MotoKinesisReads

    kinesis = boto3.client("kinesis", endpoint_url=emulator.endpoint, region_name=SETTINGS.region)
    reads = MotoKinesisReads(kinesis, SETTINGS.region)
    payloads = [b"\x00\xff\x10", "é€😀".encode(), b"{}" * 5000]
    for data in payloads:
        kinesis.put_record(StreamName=SETTINGS.stream_name, Data=data, PartitionKey="same-key")
    shard_id = next(
        s["ShardId"]
        for s in kinesis.list_shards(StreamName=SETTINGS.stream_name)["Shards"]
        if kinesis.get_records(ShardIterator=_trim_horizon(kinesis, s["ShardId"]))["Records"]
    )
    iterator = _trim_horizon(reads, shard_id)  # not GetRecords: the client's own call
    # WHEN the same page is read in process and over HTTP
    ours = reads.get_records(ShardIterator=iterator, Limit=10)
    over_http = _get_records(emulator.endpoint, {"ShardIterator": iterator, "Limit": 10})[1]
    # THEN the in-process page is the HTTP answer's JSON: base64 data, epoch-second stamps
    assert ours == over_http
    assert [base64.b64decode(r["Data"]) for r in ours["Records"]] == payloads
    # AND an iterator the backend rejects gets the client's (the service's) error
    bad = base64.b64encode(b"no-such-stream:shardId-000000000000:0").decode()
    with pytest.raises(kinesis.exceptions.ResourceNotFoundException):
        reads.get_records(ShardIterator=bad, Limit=10)
