"""AWS adapters against a real moto server over HTTP (the ``aws_endpoint`` fixture)."""

from __future__ import annotations

from typing import Any

import pytest
from changelake.adapters import aws
from changelake.adapters.s3_store import S3ObjectStore

pytestmark = pytest.mark.aws


def test_aws_factory_client_reaches_moto_through_aws_endpoint_url(aws_endpoint: str) -> None:
    s3 = aws.s3()

    s3.create_bucket(Bucket="factory-bucket")

    assert s3.meta.endpoint_url == aws_endpoint
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["factory-bucket"]


def test_aws_factory_applies_one_retry_and_timeout_policy(aws_endpoint: str) -> None:
    config: Any = aws.kinesis().meta.config  # botocore's Config attributes are dynamic

    # botocore counts max_attempts as retries after the first call.
    assert config.retries == {"mode": "adaptive", "total_max_attempts": aws.RETRY_ATTEMPTS + 1}
    assert config.connect_timeout == aws.CONNECT_TIMEOUT_S
    assert config.read_timeout == aws.READ_TIMEOUT_S


def test_aws_error_code_reads_client_errors(aws_endpoint: str) -> None:
    s3 = aws.s3()

    with pytest.raises(s3.exceptions.ClientError) as info:
        s3.head_bucket(Bucket="does-not-exist")

    assert aws.error_code(info.value) == "404"
    assert aws.error_code(ValueError("x")) is None


@pytest.fixture
def store(aws_endpoint: str) -> S3ObjectStore:
    """An S3ObjectStore over a fresh moto bucket."""
    aws.s3().create_bucket(Bucket="lake")
    return S3ObjectStore("lake")


def test_s3_object_store_put_then_get_returns_the_bytes(store: S3ObjectStore) -> None:
    store.put("changes/persons/a.parquet", b"\x00PAR1 data", "application/vnd.apache.parquet")

    assert store.get("changes/persons/a.parquet") == b"\x00PAR1 data"
    assert store.get("changes/persons/a.parquet", (1, 4)) == b"PAR1"
    assert store.size("changes/persons/a.parquet") == 10


def test_s3_object_store_put_same_key_replaces_object(store: S3ObjectStore) -> None:
    store.put("k", b"first")
    store.put("k", b"second")

    assert store.get("k") == b"second"


def test_s3_object_store_list_returns_keys_under_prefix_in_order(store: S3ObjectStore) -> None:
    for key in ("changes/b/2", "changes/a/1", "raw/a/1", "changes/a/0"):
        store.put(key, b"x")

    assert list(store.list("changes/")) == ["changes/a/0", "changes/a/1", "changes/b/2"]
    assert list(store.list("nothing/")) == []


def test_s3_object_store_missing_key_raises_key_error(store: S3ObjectStore) -> None:
    with pytest.raises(KeyError):
        store.get("missing")
    with pytest.raises(KeyError):
        store.get("missing", (0, 1))
    with pytest.raises(KeyError):
        store.size("missing")


def test_aws_factory_uses_changelake_region_when_aws_config_names_none(
    aws_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN no AWS region anywhere (env or config file) but CHANGELAKE_REGION set
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("CHANGELAKE_REGION", "eu-west-1")
    aws._session.cache_clear()
    try:
        # WHEN a client is made without a region THEN it uses the setting and works
        sqs = aws.sqs()  # SQS has no global default: without the fallback, NoRegionError
        assert sqs.meta.region_name == "eu-west-1"
        url = sqs.create_queue(QueueName="regional")["QueueUrl"]
        assert url in sqs.list_queues()["QueueUrls"]
    finally:
        aws._session.cache_clear()
