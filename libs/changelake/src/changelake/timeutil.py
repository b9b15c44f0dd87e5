"""Event-time normalisation: every timestamp becomes integer microseconds since the epoch, UTC."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Without a precision field only what AWS sends is accepted: 13 digits are epoch milliseconds
# (years 2001-2286), 16 digits epoch microseconds. Anything else (an 11-12-digit value is
# 1970-2001 in ms, or seconds from 5138 on) is ambiguous and quarantined, never guessed.
_MS_MIN = 10**12
_MS_END = 10**13
_US_MIN = 10**15
# An event time later than this after the wall clock is implausible (a wrong unit, a broken
# clock): it would create partitions in the future, so it is quarantined.
FUTURE_TOLERANCE_US = 24 * 3_600_000_000
# The last µs a datetime can hold (9999-12-31T23:59:59.999999Z): anything later would make
# every downstream datetime/partition computation overflow, so it is rejected here as data.
_US_MAX = 253_402_300_799_999_999


def normalize_epoch_us(value: int, precision: str | None = None) -> int:
    """Normalize ``ApproximateCreationDateTime`` to µs: trust the precision field, else digits.

    docs/aws-behaviour.md: the value is epoch milliseconds, or microseconds when
    ``ApproximateCreationDateTimePrecision`` is ``MICROSECOND``; real captures show both 13- and
    16-digit values, so a missing field falls back to the digit count, 13 or 16 and nothing
    else. A time more than :data:`FUTURE_TOLERANCE_US` after now is rejected too.
    """
    if value < 0:
        raise ValueError(f"negative timestamp {value}")
    if precision == "MICROSECOND":
        us = value
    elif precision == "MILLISECOND":
        us = value * 1000
    elif precision is not None:
        raise ValueError(f"unknown ApproximateCreationDateTimePrecision {precision!r}")
    elif value >= _US_MIN:  # 16 digits (more: caught below as the future)
        us = value
    elif _MS_MIN <= value < _MS_END:
        us = value * 1000
    else:
        raise ValueError(
            f"timestamp {value} is not a plausible epoch value: {len(str(value))} digits without "
            "ApproximateCreationDateTimePrecision (AWS sends 13 for ms or 16 for µs)"
        )
    if us > _US_MAX:
        raise ValueError(f"timestamp {value} is beyond year 9999")
    if us > time.time_ns() // 1000 + FUTURE_TOLERANCE_US:
        raise ValueError(
            f"timestamp {value} is in the future: {us_to_datetime(us).isoformat()} is more "
            "than 24 h after now"
        )
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


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``7d`` (or a bare number of seconds) → a ``timedelta``."""
    value = text.strip().lower()
    unit = value[-1:] if value[-1:] in _DURATION_UNITS else "s"
    number = value[:-1] if value[-1:] in _DURATION_UNITS else value
    try:
        amount = float(number)
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90m, 2h, 7d)") from None
    if amount < 0:
        raise ValueError(f"negative duration: {text!r}")
    return timedelta(seconds=amount * _DURATION_UNITS[unit])
