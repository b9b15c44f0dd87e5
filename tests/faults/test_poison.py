"""Poison records of every malformed kind, through the real pipeline on both paths.

Every golden record (tests/fixtures/records: 11 valid, every malformed kind) goes on the
Kinesis stream, interleaved. The consumer (local runner) must quarantine each malformed one
under ``errors/consumer/`` with the manifest's reason and its original bytes, and land every
valid one exactly once; the Firehose path (the transform Lambda in the emulator's Firehose)
must write each malformed one to ``errors/firehose/processing-failed/`` with the same reason
and its original bytes, and each valid one to ``raw/`` once.
"""

from __future__ import annotations

import base64
from collections import Counter

import orjson
import pytest
from changelake_faults import Pipeline, objects, quarantine_lines, wait_reconciled, wait_until
from changelake_testsupport import golden

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.timeout(180)]

VALID = golden.load_valid()
MALFORMED = golden.load_malformed()


def test_every_malformed_kind_is_quarantined_with_its_reason_on_both_paths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = [f.raw for f in MALFORMED]
    for i, fixture in enumerate(VALID):  # valid ones spread between the bad ones
        records.insert(i * 7, fixture.raw)
    with Pipeline(monkeypatch) as pipeline:
        pipeline.put_raw(records)
        # the valid golden items exist only on the stream, never in the DynamoDB table
        stream_only = frozenset(f.item_key for f in VALID)
        verdict, took = wait_reconciled(90, stream_only_items=stream_only)
        emulator = pipeline.emulator
        wait_until(
            lambda: emulator.stats().firehose_ok + emulator.stats().firehose_failed >= len(records),
            60,
            "the Firehose path to deliver every record",
        )
        wait_until(
            lambda: len(quarantine_lines("firehose")) >= len(MALFORMED), 30, "Firehose errors"
        )
        firehose_errors = quarantine_lines("firehose")
        consumer_errors = quarantine_lines()
        raw_lines = [
            orjson.loads(line)
            for _key, data in objects("raw/")
            for line in data.splitlines()
            if line.strip()
        ]
    # Consumer path: every valid record once, every malformed one quarantined with its reason.
    assert verdict.bad_records == len(MALFORMED), verdict.summary()
    assert verdict.lake_events == len({f.event_id for f in VALID})
    assert verdict.lake_rows == len(VALID)
    by_bytes = {base64.b64decode(line["data_base64"]): line for line in consumer_errors}
    for bad in MALFORMED:
        line = by_bytes.get(bad.raw)
        assert line is not None, f"{bad.name} not quarantined by the consumer"
        assert bad.reason in line["reason"], (bad.name, line["reason"])
    # Firehose path: the same, in Firehose's error-record format.
    failed = Counter(base64.b64decode(e["rawData"]) for e in firehose_errors)
    for bad in MALFORMED:
        assert failed[bad.raw] == 1, f"{bad.name}: {failed[bad.raw]} error records"
        message = next(
            e["errorMessage"] for e in firehose_errors if base64.b64decode(e["rawData"]) == bad.raw
        )
        assert bad.reason in message, (bad.name, message)
    assert sorted(r["eventID"] for r in raw_lines) == sorted(f.event_id for f in VALID)
    print(f"poison: {verdict.summary()}; clean after {took:.1f} s")
