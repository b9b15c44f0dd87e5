"""Move an object that would break every query of a table out of the table's prefix.

Athena (and the local engine) read every object under a registered partition; one 0-byte or
non-Parquet object makes ``SELECT count(*)`` fail (``HIVE_CANNOT_OPEN_SPLIT``). The catalog
moves such an object to ``quarantine/<original key>`` and writes next to it
``quarantine/<original key>.reason.json`` (original key, size, reason, time): nothing is
deleted without a copy, and the record says what was moved and why (docs/adr/0019).

Only *definitive* reasons quarantine: a name that is not a change object, or bytes that are
not Parquet (:class:`~.exceptions.InvalidParquetError`). A failed read (S3 error) is retried.
"""

from __future__ import annotations

import logging

import orjson
from changelake.ports import Metrics, ObjectStore
from changelake.timeutil import now_us, us_to_datetime
from changelake_lake.layout import quarantine_key

log = logging.getLogger(__name__)

REASON_SUFFIX = ".reason.json"


def quarantine_object(store: ObjectStore, key: str, reason: str, metrics: Metrics) -> str | None:
    """Copy ``key`` to the quarantine with its reason record, then delete it from the table.

    Returns the quarantine key, or ``None`` if the object was already gone.
    """
    try:
        data = store.get(key)
    except KeyError:
        return None
    target = quarantine_key(key)
    record = {
        "original_key": key,
        "quarantine_key": target,
        "size": len(data),
        "reason": reason,
        "moved_at": us_to_datetime(now_us()).isoformat(),
    }
    store.put(target, data)
    store.put(target + REASON_SUFFIX, orjson.dumps(record) + b"\n", "application/json")
    store.delete(key)
    log.warning("object quarantined", extra=record)
    metrics.count("objects_quarantined", 1)
    return target
