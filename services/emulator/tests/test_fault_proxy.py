"""The fault proxy over real HTTP: boto3 sees AWS's faults, parses the codes, retries."""

from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError
from changelake_emulator.fault_proxy import FaultProxy, FaultRule, aws_operation

pytestmark = pytest.mark.aws

NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1})


def test_operation_names_from_every_protocol() -> None:
    assert aws_operation("s3", "PUT", "/lake/changes/a.parquet", {}, b"") == "PutObject"
    assert aws_operation("s3", "GET", "/lake?list-type=2&prefix=x", {}, b"") == "ListObjectsV2"
    assert aws_operation("s3", "HEAD", "/lake", {}, b"") == "HeadBucket"
    target = {"X-Amz-Target": "AWSGlue.CreatePartition"}
    assert aws_operation("glue", "POST", "/", target, b"") == "CreatePartition"
    form = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    assert aws_operation("sts", "POST", "/", form, b"Action=GetCallerIdentity&V=1") == (
        "GetCallerIdentity"
    )


def test_s3_slowdown_is_retried_by_the_sdk_then_succeeds(aws_endpoint: str) -> None:
    with FaultProxy(aws_endpoint) as proxy:
        s3 = boto3.client("s3", endpoint_url=proxy.url, config=Config(retries={"mode": "standard"}))
        s3.create_bucket(Bucket="bkt")
        rule = proxy.add(
            FaultRule("error", "s3", "PutObject", status=503, code="SlowDown", times=2)
        )
        s3.put_object(Bucket="bkt", Key="k", Body=b"data")
        assert rule.injected == 2
        assert proxy.count("s3", "PutObject") == 3  # two SlowDown, then the write
        assert s3.get_object(Bucket="bkt", Key="k")["Body"].read() == b"data"
        assert s3.head_object(Bucket="bkt", Key="k")["ContentLength"] == 4


def test_error_codes_reach_the_client_in_each_protocol(aws_endpoint: str) -> None:
    with FaultProxy(aws_endpoint) as proxy:
        ddb = boto3.client("dynamodb", endpoint_url=proxy.url, config=NO_RETRY)
        glue = boto3.client("glue", endpoint_url=proxy.url, config=NO_RETRY)
        sqs = boto3.client("sqs", endpoint_url=proxy.url, config=NO_RETRY)
        s3 = boto3.client("s3", endpoint_url=proxy.url, config=NO_RETRY)
        proxy.add(
            FaultRule(
                "error", "dynamodb", status=400, code="ProvisionedThroughputExceededException"
            )
        )
        proxy.add(FaultRule("error", "glue", status=400, code="ThrottlingException"))
        proxy.add(FaultRule("error", "sqs", status=500, code="InternalError"))
        proxy.add(FaultRule("error", "s3", status=500, code="InternalError"))
        calls = [
            (ddb.list_tables, "ProvisionedThroughputExceededException"),
            (glue.get_databases, "ThrottlingException"),
            (sqs.list_queues, "InternalError"),
            (s3.list_buckets, "InternalError"),
        ]
        for call, code in calls:
            with pytest.raises(ClientError) as info:
                call()
            assert info.value.response["Error"]["Code"] == code
        proxy.clear()
        assert ddb.list_tables()["TableNames"] == []  # recovered: forwarded again


def test_drop_after_applies_the_write_but_loses_the_answer(aws_endpoint: str) -> None:
    with FaultProxy(aws_endpoint) as proxy:
        s3 = boto3.client("s3", endpoint_url=proxy.url, config=NO_RETRY)
        s3.create_bucket(Bucket="bkt")
        proxy.add(FaultRule("drop_after", "s3", "PutObject", times=1))
        with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
            s3.put_object(Bucket="bkt", Key="k", Body=b"written")
        assert s3.get_object(Bucket="bkt", Key="k")["Body"].read() == b"written"
        proxy.add(FaultRule("drop", "s3", "PutObject", contains="/bkt/never", times=1))
        with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
            s3.put_object(Bucket="bkt", Key="never", Body=b"x")
        assert "Contents" not in s3.list_objects_v2(Bucket="bkt", Prefix="never")


def test_probability_is_seeded_and_callback_runs_before_forwarding(aws_endpoint: str) -> None:
    seen: list[int] = []
    counts = []
    for _ in range(2):
        with FaultProxy(aws_endpoint, seed=3) as proxy:
            ddb = boto3.client("dynamodb", endpoint_url=proxy.url, config=NO_RETRY)
            rule = proxy.add(
                FaultRule(
                    "callback",
                    "dynamodb",
                    "ListTables",
                    probability=0.5,
                    callback=lambda: seen.append(1),
                )
            )
            for _ in range(40):
                ddb.list_tables()
            counts.append(rule.injected)
    assert counts[0] == counts[1]  # same seed, same faults
    assert 8 <= counts[0] <= 32
    assert len(seen) == sum(counts)
