"""The transform Lambda is small: no pyarrow installed, no boto3 loaded unless a secret needs it.

ADR 0029. The handler runs in a fresh interpreter (a cold Lambda container) on a real batch;
what it imported is read from that interpreter's ``sys.modules``. The dependency closure is
read from ``uv.lock``: exactly what the image installs (``uv export --package``).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from changelake.privacy import PrivacyPolicy
from changelake_testsupport.records import encode, kinesis_dynamodb_record

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("pyarrow", "boto3", "botocore")
POLICY = '{"persons": {"email": "hash", "name": "mask"}}'
KEY = "k" * 32

# A cold container: imports the handler, transforms the batch on stdin, reports what it loaded.
_COLD_START = """
import json, sys
from changelake_transform.handler import handler
event = json.load(sys.stdin)
loaded_at_import = sorted(m for m in {heavy!r} if m in sys.modules)
response = handler(event)
print(json.dumps({{"import": loaded_at_import, "response": response,
                  "after": sorted(m for m in {heavy!r} if m in sys.modules)}}))
"""


def _event() -> dict[str, Any]:
    data = encode(
        kinesis_dynamodb_record(
            event_name="INSERT",
            keys={"id": "p-1"},
            new_image={"id": "p-1", "email": "ada@example.com", "name": "Ada"},
            event_time_us=1_795_774_530_000_000,
        )
    )
    return {
        "invocationId": "inv-1",
        "records": [
            {
                "recordId": "r-1",
                "approximateArrivalTimestamp": 1_795_774_530_500,
                "data": base64.b64encode(data).decode(),
                "kinesisRecordMetadata": {
                    "sequenceNumber": "49654821367156789012345678901234567890123456789012340001",
                    "subsequenceNumber": 0,
                    "partitionKey": "p-1",
                    "shardId": "shardId-000000000000",
                    "approximateArrivalTimestamp": 1_795_774_530_500,
                },
            }
        ],
    }


def _cold_start(env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _COLD_START.format(heavy=HEAVY)],
        input=json.dumps(_event()),
        capture_output=True,
        text=True,
        env={**os.environ, "CHANGELAKE_LOG_LEVEL": "WARNING", **env},
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _image(response: dict[str, Any]) -> dict[str, Any]:
    (record,) = response["records"]
    assert record["result"] == "Ok", record
    line = orjson.loads(base64.b64decode(record["data"]))
    image: dict[str, Any] = line["dynamodb"]["NewImage"]
    return image


def _expected_email_hash() -> dict[str, str]:
    return {"S": PrivacyPolicy(POLICY, KEY.encode()).hash_value("ada@example.com")}


@pytest.mark.unit
def test_the_handler_loads_no_pyarrow_and_no_boto3_with_a_key_in_the_environment() -> None:
    """A batch with a hashing policy, key in the environment: neither at import nor after."""
    result = _cold_start({"CHANGELAKE_PRIVACY_POLICY": POLICY, "CHANGELAKE_PRIVACY_KEY": KEY})
    assert result["import"] == []
    assert result["after"] == []
    image = _image(result["response"])
    assert image["name"] == {"S": "***"}
    assert image["email"] == _expected_email_hash()
    assert image["id"] == {"S": "p-1"}


@pytest.mark.aws
def test_a_key_in_secrets_manager_loads_boto3_only_then_and_hashes_the_same(
    aws_endpoint: str,
) -> None:
    """The key as a Secrets Manager secret (moto): the adapter reads it, the hash is the same."""
    boto3.client("secretsmanager", endpoint_url=aws_endpoint).create_secret(
        Name="changelake/privacy-key", SecretString=KEY
    )
    result = _cold_start(
        {
            "AWS_ENDPOINT_URL": aws_endpoint,
            "CHANGELAKE_PRIVACY_POLICY": POLICY,
            "CHANGELAKE_PRIVACY_KEY_SECRET": "changelake/privacy-key",
        }
    )
    assert result["import"] == []
    assert "boto3" in result["after"]
    assert "pyarrow" not in result["after"]
    assert _image(result["response"])["email"] == _expected_email_hash()


def _closure(lock: dict[str, Any], root: str) -> set[str]:
    """Names of the packages ``root`` installs, extras followed, as uv.lock resolves them."""
    packages = {p["name"]: p for p in lock["package"]}
    visited: set[tuple[str, tuple[str, ...]]] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [(root, ())]
    while todo:
        node = todo.pop()
        if node in visited:
            continue
        visited.add(node)
        name, extras = node
        package = packages[name]
        deps = list(package.get("dependencies", []))
        for extra in extras:
            deps += package.get("optional-dependencies", {})[extra]
        todo += [(d["name"], tuple(d.get("extra", ()))) for d in deps]
    return {name for name, _ in visited} - {root}


@pytest.mark.unit
def test_the_transform_installs_no_pyarrow_while_the_consumer_does() -> None:
    """What the transform's image installs (its locked closure) holds no pyarrow."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    transform = _closure(lock, "changelake-transform")
    assert "pyarrow" not in transform
    assert {"changelake", "pydantic", "orjson", "boto3"} <= transform
    assert "pyarrow" in _closure(lock, "changelake-consumer")
