"""AWS faults injected by the loopback fault proxy (ADR 0038) in front of the emulator.

The consumer (local runner) and the catalog run in this process with their S3, Glue, SQS and
DynamoDB clients pointed at the proxy (``AWS_ENDPOINT_URL_<SERVICE>``); the emulator's own
integrations (streaming destination, Firehose) talk to it directly. Transient faults must be
absorbed by bounded retries; a fault that outlasts the retry budget must stop the consumer
with no checkpoint past what is durable, and a restart must recover everything. Every test
ends in a clean reconcile (tests/changelake_faults.py).
"""

from __future__ import annotations

import time

import boto3
import pytest
from changelake_consumer.settings import ConsumerSettings
from changelake_emulator.fault_proxy import FaultRule
from changelake_faults import (
    SETTINGS,
    TABLE,
    Pipeline,
    reconcile,
    throttled,
    wait_reconciled,
    wait_until,
)
from changelake_producer.bootstrap import produce

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.timeout(240)]

SERVICES = ("s3", "glue", "sqs", "dynamodb")
CHANGES = f"/{SETTINGS.lake_bucket}/changes/"


def _checkpoints() -> dict[str, str]:
    items = boto3.client("dynamodb").scan(
        TableName=ConsumerSettings().checkpoint_table, ConsistentRead=True
    )["Items"]
    return {i["lease_key"]["S"]: i["checkpoint"]["S"] for i in items if "checkpoint" in i}


def test_s3_slowdown_500_and_timeouts_are_retried_within_the_write_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Pipeline(monkeypatch, proxied=SERVICES, seed=1) as pipeline:
        proxy = pipeline.fault_proxy()
        rules = [
            proxy.add(
                FaultRule(
                    "error",
                    "s3",
                    "PutObject",
                    probability=0.15,
                    status=503,
                    code="SlowDown",
                    contains=CHANGES,
                )
            ),
            proxy.add(
                FaultRule(
                    "error",
                    "s3",
                    "PutObject",
                    probability=0.15,
                    status=500,
                    code="InternalError",
                    contains=CHANGES,
                )
            ),
            proxy.add(FaultRule("drop", "s3", "PutObject", probability=0.1, contains=CHANGES)),
            # the write happens, its answer is lost: the retry must overwrite, not duplicate
            proxy.add(
                FaultRule("drop_after", "s3", "PutObject", probability=0.1, contains=CHANGES)
            ),
        ]
        produce(count=300, rate=100, seed=31, settings=SETTINGS)
        verdict, took = wait_reconciled(90)
        assert pipeline.consumer.failure is None
        injected = {
            rule.kind + (f" {rule.status}" if rule.kind == "error" else ""): rule.injected
            for rule in rules
        }
    assert all(injected.values()), injected  # every kind of fault happened at least once
    print(f"S3 faults {injected}: {verdict.summary()}; clean after {took:.1f} s")


def test_s3_outage_beyond_the_write_budget_stops_without_checkpoint_then_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHANGELAKE_WRITE_TIMEOUT_S", "1.5")
    with Pipeline(monkeypatch, proxied=SERVICES, seed=2) as pipeline:
        proxy = pipeline.fault_proxy()
        produce(count=100, seed=32, settings=SETTINGS)
        wait_reconciled(60)
        before = _checkpoints()
        outage = proxy.add(
            FaultRule("error", "s3", "PutObject", status=503, code="SlowDown", contains=CHANGES)
        )
        produce(count=100, seed=33, settings=SETTINGS)
        consumer = pipeline.consumer
        wait_until(lambda: consumer.failure is not None, 60, "the consumer to give up")
        attempts = outage.injected
        consumer.stop()
        pipeline.consumer = None
        # no checkpoint past what is durable: nothing new was written, so nothing moved
        assert _checkpoints() == before
        assert reconcile(views=False).lost  # the new changes are not in the lake...
        proxy.clear()  # S3 is back
        restarted = time.monotonic()
        pipeline.start_consumer()  # ...until a restarted consumer reads them again
        verdict, _ = wait_reconciled(90)
        recovered = time.monotonic() - restarted
    assert "WriteError" in type(consumer.failure).__name__, consumer.failure
    assert 2 <= attempts <= 40, attempts  # bounded: backoff within the 1.5 s budget, per shard
    print(
        f"S3 outage ({attempts} attempts then stop): {verdict.summary()}; "
        f"recovered {recovered:.1f} s after restart"
    )


def test_glue_throttling_and_sqs_errors_are_retried_then_everything_is_catalogued(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Pipeline(monkeypatch, proxied=SERVICES, seed=3) as pipeline:
        proxy = pipeline.fault_proxy()
        rules = [
            proxy.add(
                FaultRule("error", "glue", probability=0.3, status=400, code="ThrottlingException")
            ),
            proxy.add(
                FaultRule(
                    "error",
                    "sqs",
                    "ReceiveMessage",
                    probability=0.3,
                    status=500,
                    code="InternalError",
                )
            ),
            proxy.add(
                FaultRule(
                    "error",
                    "sqs",
                    "DeleteMessageBatch",
                    after=1,
                    times=2,
                    status=500,
                    code="InternalError",
                )
            ),
        ]
        produce(count=150, rate=100, seed=34, settings=SETTINGS)
        verdict, _ = wait_reconciled(120)
        # then Glue down for good: the catalog keeps its messages, catalogs after recovery
        proxy.clear()
        outage = proxy.add(FaultRule("error", "glue", status=500, code="InternalServiceException"))
        # a new attribute: the catalog must add a column (a Glue call it cannot skip)
        boto3.resource("dynamodb").Table(TABLE).put_item(
            Item={"pk": "outage", "added_during_the_outage": "yes"}
        )
        produce(count=50, seed=35, settings=SETTINGS)
        wait_until(lambda: outage.injected >= 3, 60, "the catalog to hit the outage")
        proxy.clear()
        restored = time.monotonic()
        verdict, _ = wait_reconciled(120)
        recovered = time.monotonic() - restored
        columns = boto3.client("glue").get_table(
            DatabaseName=SETTINGS.database, Name=f"{TABLE}_changes"
        )["Table"]["StorageDescriptor"]["Columns"]
        assert "added_during_the_outage" in {c["Name"] for c in columns}
        injected = {f"{r.service} {r.operation or ''} {r.code}".strip(): r.injected for r in rules}
    assert all(injected.values()), injected
    print(
        f"Glue/SQS faults {injected}, then {outage.injected} failed Glue calls: "
        f"{verdict.summary()}; recovered {recovered:.1f} s after Glue came back"
    )


def test_lease_table_throttling_is_retried_without_loss(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = ConsumerSettings().checkpoint_table
    with Pipeline(monkeypatch, proxied=SERVICES, seed=4) as pipeline:
        proxy = pipeline.fault_proxy()
        rule = proxy.add(throttled(f'"TableName": "{table}"'))
        produce(count=300, rate=100, seed=36, settings=SETTINGS)
        verdict, took = wait_reconciled(90)
        assert pipeline.consumer.failure is None
    assert rule.injected >= 5, rule.injected
    print(
        f"lease-table throttling ({rule.injected} throttled calls): {verdict.summary()}; "
        f"clean after {took:.1f} s"
    )
