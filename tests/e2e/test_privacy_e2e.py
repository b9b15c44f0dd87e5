"""Privacy policy end to end: persons with known PII through both paths, then every byte searched.

GIVEN the embedded stack (emulator, Firehose bridge calling the transform Lambda, consumer,
catalog) running a policy that hashes the key, emails and phone, masks birthday and name and
drops address.street, WHEN persons with known personal data are inserted, updated and deleted
and malformed records carrying the same data are put on the stream, THEN no clear-text value
is anywhere in the lake — ``changes/`` (Parquet decoded value by value), ``raw/``, ``errors/``
(with their base64 payloads decoded) and the Glue catalog — while hashes stay joinable,
``<table>_current`` equals a Scan with the same policy applied, and the named queries work
(docs/adr/0027-privacy-policy.md).
"""

from __future__ import annotations

import base64
import io
import time
from datetime import UTC, datetime
from typing import Any

import boto3
import orjson
import pyarrow.parquet as pq
import pytest
from changelake import privacy
from changelake.privacy import PrivacyPolicy
from changelake_cli.local_stack import LocalStack
from changelake_lake.layout import changes_table_name
from changelake_lake.query.current_check import compare
from changelake_lake.query.local_engine import LocalEngine
from changelake_lake.query.model import QueryError
from changelake_lake.query.named import load_all

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

TABLE = "persons"
KEY = b"e2e-privacy-key-0123456789abcdef-0123456789"
POLICY = orjson.dumps(
    {
        TABLE: {
            "pk": "hash",
            "emails": "hash",
            "phone": "hash",
            "birthday": "mask",
            "name": "mask",
            "address.street": "drop",
        }
    }
).decode()
SHARED_EMAIL = "shared.secret@example.org"
# Every clear value the lake must never hold (keys, names, emails, phones, birthdays, streets).
PII = [
    "person-alice-7f3a",
    "person-bob-91c2",
    "person-carol-55d0",
    "Alice Privatova",
    "Bob Secretson",
    "Carol Hiddenberg",
    "alice.private@example.org",
    "bob.hidden@example.net",
    "carol.bad@example.com",
    SHARED_EMAIL,
    "+44 20 7946 0958",
    "+44 20 7946 0000",
    "+1 202 555 0147",
    "+1 303 555 0199",
    "1985-03-14",
    "1985-03-15",
    "1979-11-02",
    "221B Baker Street",
    "10 Downing Street",
    "742 Evergreen Terrace",
]
# Not covered by the policy: the search must find it (proves it reads what it claims to).
CONTROL = "Londonderry-upon-Privacy"


def _person(pk: str, name: str, pii: tuple[list[str], str, str, str]) -> Any:
    emails, phone, birthday, street = pii
    return {
        "pk": {"S": pk},
        "name": {"S": name},
        "emails": {"SS": emails},
        "phone": {"S": phone},
        "birthday": {"S": birthday},
        "address": {"M": {"street": {"S": street}, "city": {"S": CONTROL}}},
        "visits": {"N": "3"},
    }


def _bad_records() -> list[bytes]:
    valid_shape = {
        "awsRegion": "us-east-1",
        "eventID": "bad-carol",
        "eventName": "INSERT",
        "recordFormat": "application/json",
        "tableName": TABLE,
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "ApproximateCreationDateTime": int(time.time() * 1000),
            "Keys": {"pk": {"S": "person-carol-55d0"}},
            "NewImage": {
                **_person(
                    "person-carol-55d0",
                    "Carol Hiddenberg",
                    (
                        ["carol.bad@example.com"],
                        "+1 303 555 0199",
                        "1979-11-02",
                        "10 Downing Street",
                    ),
                ),
                "n": {"N": "not-a-number"},  # the defect: quarantined
            },
            "SizeBytes": 10,
        },
    }
    return [
        orjson.dumps(valid_shape),
        b"not json at all: carol.bad@example.com +1 303 555 0199 Carol Hiddenberg",
        orjson.dumps({"tableName": TABLE, "dynamodb": {"NewImage": "carol.bad@example.com"}}),
    ]


def _lake_texts(bucket: str) -> dict[str, list[str]]:
    """Every object of the lake as searchable texts: raw bytes plus every decoded value."""
    s3 = boto3.client("s3")
    texts: dict[str, list[str]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            found = [body.decode("utf-8", "replace")]
            if key.endswith(".parquet"):
                parquet = pq.ParquetFile(io.BytesIO(body))
                metadata = parquet.schema_arrow.metadata or {}
                found.append(
                    orjson.dumps({k.decode(): v.decode() for k, v in metadata.items()}).decode()
                )
                # Pages decompressed and decoded: every cell of every column, as text.
                table = parquet.read()
                found.append(orjson.dumps(table.to_pylist(), default=repr).decode())
            else:
                for line in body.splitlines():
                    if not line.strip():
                        continue
                    try:
                        entry = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        continue
                    for field in ("data_base64", "rawData"):
                        if isinstance(entry, dict) and isinstance(entry.get(field), str):
                            found.append(base64.b64decode(entry[field]).decode("utf-8", "replace"))
            texts[key] = found
    return texts


def _glue_texts(database: str) -> list[str]:
    glue = boto3.client("glue")
    texts = []
    for table in glue.get_tables(DatabaseName=database)["TableList"]:
        texts.append(orjson.dumps(table, default=str).decode())
        for page in glue.get_paginator("get_partitions").paginate(
            DatabaseName=database, TableName=table["Name"]
        ):
            texts.append(orjson.dumps(page.get("Partitions", []), default=str).decode())
    return texts


def _wait_for(check: Any, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the lake did not catch up in time")
        time.sleep(0.5)


def test_no_clear_value_reaches_the_lake_through_either_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHANGELAKE_PRIVACY_KEY", KEY.decode())
    monkeypatch.setenv("CHANGELAKE_LOG_LEVEL", "WARNING")
    with LocalStack(0, privacy_policy=POLICY, firehose_buffer_seconds=0.5) as stack:
        policy = stack.privacy()
        assert policy is not None
        settings = stack.settings
        ddb = boto3.client("dynamodb")
        alice = _person(
            "person-alice-7f3a",
            "Alice Privatova",
            (
                ["alice.private@example.org", SHARED_EMAIL],
                "+44 20 7946 0958",
                "1985-03-14",
                "221B Baker Street",
            ),
        )
        bob = _person(
            "person-bob-91c2",
            "Bob Secretson",
            (
                ["bob.hidden@example.net", SHARED_EMAIL],
                "+1 202 555 0147",
                "1979-11-02",
                "742 Evergreen Terrace",
            ),
        )
        ddb.put_item(TableName=TABLE, Item=alice)
        ddb.put_item(TableName=TABLE, Item=bob)
        time.sleep(0.01)
        alice2 = {
            **alice,
            "phone": {"S": "+44 20 7946 0000"},
            "birthday": {"S": "1985-03-15"},
            "address": {"M": {"street": {"S": "10 Downing Street"}, "city": {"S": CONTROL}}},
        }
        ddb.put_item(TableName=TABLE, Item=alice2)
        ddb.delete_item(TableName=TABLE, Key={"pk": bob["pk"]})
        kinesis = boto3.client("kinesis")
        for i, data in enumerate(_bad_records()):
            kinesis.put_record(StreamName=settings.stream_name, Data=data, PartitionKey=f"b{i}")

        engine = LocalEngine(settings.database, region=settings.region)
        changes = changes_table_name(TABLE)
        s3 = boto3.client("s3")

        def caught_up() -> bool:
            try:
                rows = engine.run(f"SELECT count(DISTINCT event_id) FROM {changes}").rows
            except QueryError:
                return False
            listed = s3.list_objects_v2(Bucket=settings.lake_bucket).get("Contents", [])
            errors = [o for o in listed if o["Key"].startswith("errors/consumer/")]
            raw_lines = sum(
                s3.get_object(Bucket=settings.lake_bucket, Key=o["Key"])["Body"].read().count(b"\n")
                for o in listed
                if o["Key"].startswith("raw/")
            )
            error_lines = sum(
                s3.get_object(Bucket=settings.lake_bucket, Key=o["Key"])["Body"].read().count(b"\n")
                for o in errors
            )
            return int(rows[0][0]) == 4 and raw_lines == 4 and error_lines == 3

        _wait_for(caught_up)

        # -- not one clear value, anywhere --------------------------------------------------
        lake = _lake_texts(settings.lake_bucket)
        prefixes = {key.split("/")[0] for key in lake}
        assert {"changes", "raw", "errors"} <= prefixes
        glue = _glue_texts(settings.database)
        haystacks = [t for texts in lake.values() for t in texts] + glue
        leaks = sorted({v for v in PII for text in haystacks if v.lower() in text.lower()})
        assert leaks == []
        # The search is real: the uncovered city is found in the decoded Parquet and raw/.
        assert any(CONTROL in t for k, ts in lake.items() if k.startswith("changes/") for t in ts)
        assert any(CONTROL in t for k, ts in lake.items() if k.startswith("raw/") for t in ts)

        # -- hashes: equal for equal values with this key, different with another key --------
        shared = policy.hash_value(SHARED_EMAIL)
        other = PrivacyPolicy(POLICY, b"another-key-0123456789abcdef-0123456789").hash_value(
            SHARED_EMAIL
        )
        assert shared != other
        rows = engine.run(
            f"SELECT item_key, emails__ss FROM {changes} WHERE event_name = 'INSERT'"
        ).rows
        assert len(rows) == 2
        assert all(shared in list(emails) for _, emails in rows)
        assert not any(other in t for t in haystacks)
        alice_key = orjson.dumps({"pk": policy.hash_value("person-alice-7f3a")}).decode()
        assert {key for key, _ in rows} == {
            alice_key,
            orjson.dumps({"pk": policy.hash_value("person-bob-91c2")}).decode(),
        }

        # -- changed_attributes from the clear values (masked birthday, dropped street) -------
        modify = engine.run(
            f"SELECT changed_attributes, birthday FROM {changes} WHERE event_name = 'MODIFY'"
        ).rows
        assert [(sorted(changed), birthday) for changed, birthday in modify] == [
            (["address", "birthday", "phone"], privacy.MASK_TEXT)
        ]

        # -- the current view equals a Scan with the same policy; named queries work ----------
        check = compare(engine, TABLE, privacy=policy)
        assert check.equal, check
        assert check.view_items == 1
        now = datetime.now(UTC).isoformat()  # "as of" now: after every change above
        params = {
            "item_history": {"item_key": alice_key},
            "attribute_changes": {"attribute": "phone"},
            "item_as_of": {"item_key": alice_key, "as_of": now},
            "table_as_of": {"as_of": now},
        }
        for name, query in load_all().items():
            result = engine.run(query.sql(TABLE), query.execution_parameters(params.get(name, {})))
            assert result.rows, name
        history = load_all()["item_history"]
        events = engine.run(
            history.sql(TABLE), history.execution_parameters(params["item_history"])
        ).rows
        assert len(events) == 2

        # -- which policy wrote what: Parquet metadata, raw lines, the Glue table parameter ---
        version = policy.version(TABLE)
        for key, texts in lake.items():
            if key.startswith("changes/"):
                assert orjson.loads(texts[1])[privacy.VERSION_PARAMETER] == version
            if key.startswith("raw/"):
                for line in texts[0].splitlines():
                    assert orjson.loads(line)[privacy.RECORD_MARKER] == version
        params_glue = boto3.client("glue").get_table(DatabaseName=settings.database, Name=changes)[
            "Table"
        ]["Parameters"]
        assert params_glue[privacy.VERSION_PARAMETER] == version
        assert params_glue[privacy.VERSIONS_PARAMETER] == version
        assert orjson.loads(params_glue[privacy.RULES_PARAMETER]) == policy.rules[TABLE]
