"""Short fuzzing runs in CI (``make fuzz`` runs ≥ 100,000 inputs): both engines, every target.

The properties themselves are in tests/changelake_fuzz/targets.py: no exception escapes the
codec, the record decoder, the consumer's row decode, the transform Lambda or the catalog's S3
event parsing except their typed error with a reason; valid inputs round-trip; the transform
answers one Ok/ProcessingFailed(/Dropped) per record, failures with a reason.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from changelake_fuzz import __main__ as runner
from changelake_fuzz import libfuzzer, properties, targets

pytestmark = [pytest.mark.fuzz, pytest.mark.unit]

REGRESSIONS = sorted(p for p in runner.FIXTURES.glob("*/*") if p.is_file())


def test_fuzz_regression_inputs_are_current_with_their_generator() -> None:
    result = subprocess.run(
        [sys.executable, str(runner.FIXTURES / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert {p.parent.name for p in REGRESSIONS} == {"transform", "notification"}


@pytest.mark.parametrize("path", REGRESSIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_crash_found_by_fuzzing_now_keeps_the_target_properties(path: Path) -> None:
    outcome = targets.TARGETS[path.parent.name](path.read_bytes())

    assert outcome in {"ok", "rejected", "ignored", "event-rejected"}


def test_transform_crash_input_yields_one_failed_result_per_record() -> None:
    from changelake_transform.service import transform_records

    event = targets.firehose_event(
        (runner.FIXTURES / "transform/metadata_not_an_object.json").read_bytes()
    )

    result = transform_records(event["records"])

    assert [(r["recordId"], r["result"]) for r in result.records] == [
        ("1", "ProcessingFailed"),
        ("0", "ProcessingFailed"),
    ]
    assert set(result.failures) == {"1", "0"}
    assert all("invalid JSON" in reason for reason in result.failures.values())


def test_notification_crash_input_is_an_invalid_notification_with_its_reason() -> None:
    from changelake_catalog.exceptions import InvalidNotificationError
    from changelake_catalog.notifications import parse_notification

    body = (runner.FIXTURES / "notification/key_not_a_string.json").read_text()

    with pytest.raises(InvalidNotificationError, match="key is not a string"):
        parse_notification(body, "lake")


@pytest.mark.parametrize("name", list(properties.INPUTS))
def test_property_based_fuzzing_finds_no_failure(name: str) -> None:
    target = properties.INPUTS[name][0]
    before = sum(n for k, n in targets.CALLS.items() if k.startswith(f"{target}:"))

    properties.run(name, examples=60)

    after = sum(n for k, n in targets.CALLS.items() if k.startswith(f"{target}:"))
    assert after - before >= 60


def test_coverage_guided_fuzzing_of_every_target_finds_no_crash(tmp_path: Path) -> None:
    run = runner.run_atheris(libfuzzer.ALL, 3000, tmp_path, max_seconds=25)

    assert run.crashes == [], (tmp_path / "logs" / "atheris-all.log").read_text()[-3000:]
    assert run.inputs == 3000
    assert run.coverage is not None
    assert run.coverage > 500  # instrumented: coverage feedback works
    assert len(list((tmp_path / "corpus" / "all").iterdir())) > len(
        libfuzzer.seeds("all", runner.FIXTURES)
    )


def test_notification_for_a_key_outside_any_valid_table_is_ignored() -> None:
    from changelake_catalog.notifications import parse_notification

    body = (runner.FIXTURES / "notification/table_segment_not_a_table_name.json").read_text()

    assert parse_notification(body, "lake") == []
    assert parse_notification(body.replace("personses%2", "persons"), "lake") != []
