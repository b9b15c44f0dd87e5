"""Pure units of the shared library: time, layout, settings, metrics, logs, wire, fakes."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime, timedelta, timezone

import pytest
from changelake import logs, metrics, timeutil
from changelake.settings import ENV_PREFIX, ChangelakeSettings
from changelake.wire import KinesisDynamoRecord
from changelake_lake import layout
from changelake_testsupport.fakes import (
    InMemoryCheckpointStore,
    InMemoryObjectStore,
    RecordingMetrics,
)
from pydantic import ValidationError

pytestmark = pytest.mark.unit

INSTANT_US = 1795778553444000  # 2026-11-27T11:22:33.444Z


# --- timeutil --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "precision"),
    [
        (1795778553444, None),  # 13 digits: epoch ms
        (1795778553444000, None),  # 16 digits: epoch µs, by magnitude
        (1795778553444000, "MICROSECOND"),
        (1795778553444, "MILLISECOND"),
    ],
)
def test_normalize_epoch_us_gives_same_instant_for_ms_us_and_precision(
    value: int, precision: str | None
) -> None:
    us = timeutil.normalize_epoch_us(value, precision)

    assert us // 1_000_000 == INSTANT_US // 1_000_000
    if value >= 10**12:
        assert us == INSTANT_US


def test_normalize_epoch_us_accepts_times_up_to_a_day_ahead() -> None:
    soon_ms = timeutil.now_us() // 1000 + 23 * 3_600_000

    assert timeutil.normalize_epoch_us(soon_ms) == soon_ms * 1000


def test_normalize_epoch_us_trusts_precision_field_over_magnitude() -> None:
    # docs/aws-behaviour.md: use the field when present; a MICROSECOND 13-digit value is µs.
    assert timeutil.normalize_epoch_us(1795778553444, "MICROSECOND") == 1795778553444


@pytest.mark.parametrize(
    ("value", "precision", "reason"),
    [
        (-1, None, "negative"),
        (12345, None, "not a plausible epoch"),
        # issue 18, finding 4: 1971 in ms was read as seconds (dt=2969-05-03)
        (31536000000, None, "11 digits without ApproximateCreationDateTimePrecision"),
        (315360000000, None, "12 digits without"),
        (1795778553, None, "10 digits without"),
        (17957785534440, None, "14 digits without"),
        (179577855344400, None, "15 digits without"),
        (4102444800000, None, "in the future"),  # 2100-01-01 in ms
        (4102444800000000, "MICROSECOND", "in the future"),
        (10**16, None, "in the future"),
        (10**19, None, "beyond year 9999"),
        (10**18, "MICROSECOND", "beyond year 9999"),
        (1795778553444, "NANOSECOND", "unknown ApproximateCreationDateTimePrecision"),
    ],
)
def test_normalize_epoch_us_rejects_implausible_values(
    value: int, precision: str | None, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        timeutil.normalize_epoch_us(value, precision)


def test_us_to_datetime_is_exact_and_utc_at_end_of_day() -> None:
    moment = timeutil.us_to_datetime(1709251199999999)

    assert moment == datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)
    assert timeutil.datetime_to_us(moment) == 1709251199999999


def test_datetime_to_us_converts_other_zones_and_rejects_naive() -> None:
    plus2 = datetime(2024, 3, 1, 1, 59, 59, 999999, tzinfo=timezone(timedelta(hours=2)))

    assert timeutil.datetime_to_us(plus2) == 1709251199999999
    with pytest.raises(ValueError, match="naive"):
        timeutil.datetime_to_us(datetime(2024, 1, 1))  # noqa: DTZ001 - the point of the test


def test_now_us_is_close_to_the_clock() -> None:
    before = timeutil.datetime_to_us(datetime.now(UTC))
    now = timeutil.now_us()
    after = timeutil.datetime_to_us(datetime.now(UTC))

    assert before <= now <= after


# --- layout ----------------------------------------------------------------------------------


def test_partition_for_us_edges_of_hour_and_day() -> None:
    assert layout.partition_for_us(1709251199999999) == layout.Partition("2024-02-29", "23")
    assert layout.partition_for_us(1709251200000000) == layout.Partition("2024-03-01", "00")
    assert layout.partition_for_us(0) == layout.Partition("1970-01-01", "00")
    assert layout.partition_for_us(3_599_999_999) == layout.Partition("1970-01-01", "00")
    assert layout.partition_for_us(3_600_000_000) == layout.Partition("1970-01-01", "01")


def test_partition_for_converts_aware_datetimes_and_rejects_naive() -> None:
    local = datetime(2024, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))

    assert layout.partition_for(local) == layout.Partition("2024-02-29", "23")
    with pytest.raises(ValueError, match="naive"):
        layout.partition_for(datetime(2024, 1, 1))  # noqa: DTZ001 - the point of the test


def test_partition_path_values_and_bounds() -> None:
    part = layout.Partition("2024-02-29", "23")

    assert part.path == "dt=2024-02-29/hour=23/"
    assert part.values == ["2024-02-29", "23"]
    assert part.start() == datetime(2024, 2, 29, 23, tzinfo=UTC)
    assert part.end() == datetime(2024, 3, 1, 0, tzinfo=UTC)
    assert layout.Partition("2024-02-29", "09") < layout.Partition("2024-02-29", "10")


def test_change_object_key_is_deterministic_and_parses_back() -> None:
    part = layout.Partition("2026-11-27", "11")
    args = ("persons", part, "shardId-000000000001", "4965001", "4965099")

    key = layout.change_object_key(*args)

    assert key == layout.change_object_key(*args)
    assert key == (
        "changes/persons/dt=2026-11-27/hour=11/shardId-000000000001-4965001-4965099.parquet"
    )
    parsed = layout.parse_change_object_key(key)
    assert parsed == layout.ChangeObject(
        "persons", part, "shardId-000000000001-4965001-4965099.parquet"
    )


@pytest.mark.parametrize(
    "key",
    [
        "raw/persons/dt=2026-11-27/hour=11/x.parquet",
        "changes/persons/dt=2026-11-27/hour=11/x.json",
        "changes/persons/dt=2026-11-27/x.parquet",
        "changes/persons/dt=26-11-27/hour=11/x.parquet",
        "changes/persons/dt=2026-11-27/hour=11/sub/x.parquet",
    ],
)
def test_parse_change_object_key_returns_none_outside_changes(key: str) -> None:
    assert layout.parse_change_object_key(key) is None


@pytest.mark.parametrize("part", ["../x", "a/b", "", "a b", "shard\n", "x%2F"])
def test_change_object_key_rejects_unsafe_components(part: str) -> None:
    partition = layout.Partition("2026-11-27", "11")

    with pytest.raises(ValueError, match="unsafe"):
        layout.change_object_key("persons", partition, part, "1", "2")
    with pytest.raises(ValueError, match="unsafe"):
        layout.error_object_key("consumer", "persons", partition, "s", part, "2")


@pytest.mark.parametrize("table", ["ab", "a/b", "a b", "x" * 256, "tbl!"])
def test_check_table_name_rejects_invalid_dynamodb_names(table: str) -> None:
    with pytest.raises(ValueError, match="invalid DynamoDB table name"):
        layout.changes_prefix(table)


def test_prefixes_and_error_keys_follow_the_layout() -> None:
    part = layout.Partition("2026-11-27", "11")

    assert layout.changes_partition_prefix("persons", part) == (
        "changes/persons/dt=2026-11-27/hour=11/"
    )
    assert layout.raw_partition_prefix("persons", part) == "raw/persons/dt=2026-11-27/hour=11/"
    assert layout.errors_prefix("consumer") == "errors/consumer/_unknown/"
    assert layout.error_object_key("consumer", "persons", part, "shardId-1", "1", "9") == (
        "errors/consumer/persons/dt=2026-11-27/hour=11/shardId-1-1-9.jsonl"
    )
    assert "partitionKeyFromLambda:dt" in layout.firehose_raw_prefix_expression()
    assert layout.firehose_error_prefix_expression().startswith("errors/firehose/")
    with pytest.raises(ValueError, match="unsafe error source"):
        layout.errors_prefix("a/b")


def test_glue_names_are_lower_case_and_underscore_only() -> None:
    assert layout.changes_table_name("Persons-V2.prod") == "persons_v2_prod_changes"
    assert layout.raw_table_name("persons") == "persons_raw"
    assert layout.current_view_name("persons") == "persons_current"


# --- settings --------------------------------------------------------------------------------


def test_settings_read_prefixed_env_and_ignore_unprefixed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{ENV_PREFIX}LAKE_BUCKET", "my-lake")
    monkeypatch.setenv("changelake_tables", "orders")  # case-insensitive
    monkeypatch.setenv("STREAM_NAME", "not-mine")

    settings = ChangelakeSettings()

    assert settings.lake_bucket == "my-lake"
    assert settings.tables == ("orders",)
    assert settings.stream_name == "changelake-persons"


def test_settings_are_frozen() -> None:
    settings = ChangelakeSettings()

    with pytest.raises(ValidationError, match="frozen"):
        settings.region = "eu-west-1"  # type: ignore[misc]


def test_settings_validation_error_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    class WorkerSettings(ChangelakeSettings):
        batch_size: int = 100

    monkeypatch.setenv("CHANGELAKE_BATCH_SIZE", "lots")

    with pytest.raises(ValidationError) as info:
        WorkerSettings()

    assert "batch_size" in str(info.value)
    assert "valid integer" in str(info.value)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("metrics", "statsd", "metrics"),
        ("log_level", "LOUD", "log_level"),
        ("tables", "a/b", "tables entry 1: invalid DynamoDB table name 'a/b'"),
        ("tables", "persons,,orders", "tables entry 2: invalid DynamoDB table name ''"),
        ("tables", "persons,persons", "tables entry 2: 'persons' is listed twice"),
        ("tables", " , ", "tables must name at least one DynamoDB table"),
        ("table_name", "orders", "CHANGELAKE_TABLE_NAME was replaced by CHANGELAKE_TABLES"),
    ],
)
def test_settings_reject_invalid_shared_values(
    monkeypatch: pytest.MonkeyPatch, field: str, value: str, message: str
) -> None:
    monkeypatch.setenv(f"CHANGELAKE_{field.upper()}", value)

    with pytest.raises(ValidationError) as info:
        ChangelakeSettings()

    assert message in str(info.value)


def test_settings_take_a_comma_separated_list_of_tables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert ChangelakeSettings().tables == ("persons",)

    monkeypatch.setenv("CHANGELAKE_TABLES", " persons , orders.v2,Line-Items ")

    assert ChangelakeSettings().tables == ("persons", "orders.v2", "Line-Items")


def test_settings_normalise_log_level_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHANGELAKE_LOG_LEVEL", "debug")

    assert ChangelakeSettings().log_level == "DEBUG"


# --- metrics ---------------------------------------------------------------------------------


def test_emf_metrics_flush_writes_one_emf_document_per_dimension_set() -> None:
    stream = io.StringIO()
    sink = metrics.EmfMetrics("changelake-test", stream=stream)
    sink.count("records", 3, {"shard": "s-1"})
    sink.count("records", 2, {"shard": "s-1"})
    sink.gauge("lag_ms", 120.5, {"shard": "s-1"})
    sink.count("errors")

    sink.flush()

    docs = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(docs) == 2
    by_dims = {tuple(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]): d for d in docs}
    shard = by_dims[("shard",)]
    assert shard["shard"] == "s-1"
    assert shard["records"] == 5
    assert shard["lag_ms"] == 120.5
    directive = shard["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "changelake-test"
    assert {m["Name"] for m in directive["Metrics"]} == {"records", "lag_ms"}
    assert isinstance(shard["_aws"]["Timestamp"], int)
    assert by_dims[()]["errors"] == 1


def test_emf_metrics_flush_resets_counters() -> None:
    stream = io.StringIO()
    sink = metrics.EmfMetrics(stream=stream)
    sink.count("records")
    sink.flush()
    stream.truncate(0)
    stream.seek(0)

    sink.flush()

    assert stream.getvalue() == ""


def test_log_metrics_logs_counters_and_gauges(caplog: pytest.LogCaptureFixture) -> None:
    sink = metrics.LogMetrics()
    sink.count("records", 2, {"shard": "s-1"})
    sink.gauge("lag_ms", 7)

    with caplog.at_level(logging.INFO, logger="changelake.metrics"):
        sink.flush()

    (record,) = caplog.records
    assert record.counters == {"records{shard=s-1}": 2}  # type: ignore[attr-defined]
    assert record.gauges == {"lag_ms": 7}  # type: ignore[attr-defined]


def test_make_metrics_by_name() -> None:
    assert isinstance(metrics.make_metrics("log"), metrics.LogMetrics)
    assert isinstance(metrics.make_metrics("emf"), metrics.EmfMetrics)
    with pytest.raises(ValueError, match="unknown metrics sink"):
        metrics.make_metrics("statsd")


# --- logs ------------------------------------------------------------------------------------


def test_configure_logging_writes_json_to_stderr_and_nothing_to_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved_level = root.level
    try:
        logs.configure_logging("INFO")
        logs.configure_logging("INFO")  # idempotent: still one line per record
        logging.getLogger("changelake.test").info("hello", extra={"shard": "s-1", "n": 3})
        logging.getLogger("changelake.test").debug("hidden")
        captured = capsys.readouterr()
    finally:
        for handler in list(root.handlers):
            if getattr(handler, "_changelake", False):
                root.removeHandler(handler)
        root.setLevel(saved_level)

    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["message"] == "hello"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "changelake.test"
    assert entry["shard"] == "s-1"
    assert entry["n"] == 3
    assert datetime.fromisoformat(entry["time"]).utcoffset() == timedelta(0)


def test_json_formatter_includes_exception_text() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())

    entry = json.loads(logs.JsonFormatter().format(record))

    assert "RuntimeError: boom" in entry["exception"]


# --- wire ------------------------------------------------------------------------------------


def test_wire_record_is_frozen_and_flags_ttl_deletes() -> None:
    record = KinesisDynamoRecord.model_validate(
        {
            "awsRegion": "us-east-1",
            "eventID": "e-1",
            "eventName": "REMOVE",
            "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
            "recordFormat": "application/json",
            "tableName": "persons",
            "dynamodb": {
                "ApproximateCreationDateTime": 1795778553444,
                "Keys": {"id": {"S": "a"}},
                "OldImage": {"id": {"S": "a"}},
                "SizeBytes": 10,
            },
            "eventSource": "aws:dynamodb",
        }
    )

    assert record.is_ttl_delete
    assert record.dynamodb.NewImage is None
    with pytest.raises(ValidationError):
        record.eventID = "other"  # type: ignore[misc]


# --- fakes -----------------------------------------------------------------------------------


def test_in_memory_object_store_honours_the_port_contract() -> None:
    store = InMemoryObjectStore()
    store.fail_next = 1

    with pytest.raises(OSError, match="injected"):
        store.put("a/1", b"x")
    store.put("a/2", b"hello")
    store.put("b/1", b"y")

    assert store.get("a/2", (1, 3)) == b"ell"
    assert store.size("a/2") == 5
    assert list(store.list("a/")) == ["a/2"]
    with pytest.raises(KeyError):
        store.get("a/1")


def test_in_memory_checkpoints_and_metrics_record_history() -> None:
    checkpoints = InMemoryCheckpointStore()
    checkpoints.save("s-1", "10")
    checkpoints.save("s-1", "20")
    checkpoints.mark_finished("s-1", "25")
    recorded = RecordingMetrics()
    recorded.count("records", 2)
    recorded.count("records")

    assert checkpoints.load("s-1") == "20"
    assert checkpoints.load("s-2") is None
    assert checkpoints.history == [("s-1", "10"), ("s-1", "20")]
    assert checkpoints.is_finished("s-1")
    assert checkpoints.finished_end("s-1") == "25"
    assert not checkpoints.is_finished("s-2")
    assert recorded.counters["records"] == 3
