"""Event-time normalisation: every timestamp becomes integer microseconds since the epoch, UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# A 13-digit epoch value is milliseconds (years 2001-2286), a 16-digit one microseconds.
# DynamoDB *Streams* records carry seconds (10 digits); those are accepted too.
_MS_MIN = 10**12
_US_MIN = 10**15
_S_MIN = 10**9
# The last µs a datetime can hold (9999-12-31T23:59:59.999999Z): anything later would make
# every downstream datetime/partition computation overflow, so it is rejected here as data.
_US_MAX = 253_402_300_799_999_999


def normalize_epoch_us(value: int, precision: str | None = None) -> int:
    """Normalize ``ApproximateCreationDateTime`` to µs: trust the precision field, else magnitude.

    docs/aws-behaviour.md: the value is epoch milliseconds, or microseconds when
    ``ApproximateCreationDateTimePrecision`` is ``MICROSECOND``; real captures show both 13- and
    16-digit values, so a missing field falls back to the number's magnitude.
    """
    if value < 0:
        raise ValueError(f"negative timestamp {value}")
    if precision == "MICROSECOND":
        us = value
    elif precision == "MILLISECOND":
        us = value * 1000
    elif precision is not None:
        raise ValueError(f"unknown ApproximateCreationDateTimePrecision {precision!r}")
    elif value >= _US_MIN:
        us = value
    elif value >= _MS_MIN:
        us = value * 1000
    elif value >= _S_MIN:
        us = value * 1_000_000
    else:
        raise ValueError(f"timestamp {value} is not a plausible epoch value")
    if us > _US_MAX:
        raise ValueError(f"timestamp {value} is beyond year 9999")
    return us


def us_to_datetime(us: int) -> datetime:
    """Epoch µs → aware UTC datetime (exact, no float)."""
    return _EPOCH + timedelta(microseconds=us)


def datetime_to_us(moment: datetime) -> int:
    """Aware datetime → epoch µs (exact). Naive datetimes are rejected."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: changelake uses timezone-aware UTC everywhere")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def now_us() -> int:
    """Current time in epoch µs."""
    return datetime_to_us(datetime.now(UTC))
