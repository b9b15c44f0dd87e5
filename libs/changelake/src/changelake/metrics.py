"""Metrics adapters: a logging sink for local runs and CloudWatch EMF on AWS.

EMF (Embedded Metric Format) is a JSON log line CloudWatch turns into metrics; on ECS the
awslogs driver ships stderr, so no API call is needed from the hot path.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import TextIO

import orjson

from changelake.ports import Metrics

log = logging.getLogger(__name__)

_Key = tuple[str, tuple[tuple[str, str], ...]]


class _Aggregating:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[_Key, float] = defaultdict(float)
        self._gauges: dict[_Key, float] = {}

    @staticmethod
    def _key(name: str, dims: Mapping[str, str] | None) -> _Key:
        return name, tuple(sorted((dims or {}).items()))

    def count(self, name: str, value: float = 1, dims: Mapping[str, str] | None = None) -> None:
        """Add to a counter."""
        with self._lock:
            self._counters[self._key(name, dims)] += value

    def gauge(self, name: str, value: float, dims: Mapping[str, str] | None = None) -> None:
        """Set a gauge."""
        with self._lock:
            self._gauges[self._key(name, dims)] = value

    def _drain(self) -> tuple[dict[_Key, float], dict[_Key, float]]:
        with self._lock:
            counters, gauges = dict(self._counters), dict(self._gauges)
            self._counters.clear()
            self._gauges.clear()
        return counters, gauges


class LogMetrics(_Aggregating):
    """Aggregates in memory and logs one structured line per flush."""

    def flush(self) -> None:
        """Log the gathered counters and gauges."""
        counters, gauges = self._drain()
        if not counters and not gauges:
            return
        log.info(
            "metrics",
            extra={
                "counters": {_fmt(k): v for k, v in counters.items()},
                "gauges": {_fmt(k): v for k, v in gauges.items()},
            },
        )


class EmfMetrics(_Aggregating):
    """Writes CloudWatch Embedded Metric Format lines (one per dimension set) on flush."""

    def __init__(self, namespace: str = "changelake", stream: TextIO | None = None) -> None:
        super().__init__()
        self._namespace = namespace
        self._stream = stream or sys.stderr

    def flush(self) -> None:
        """Emit EMF documents for everything gathered since the last flush."""
        counters, gauges = self._drain()
        groups: dict[tuple[tuple[str, str], ...], dict[str, float]] = defaultdict(dict)
        for (name, dims), value in [*counters.items(), *gauges.items()]:
            groups[dims][name] = value
        now_ms = int(time.time() * 1000)
        for dims, values in groups.items():
            doc: dict[str, object] = {
                "_aws": {
                    "Timestamp": now_ms,
                    "CloudWatchMetrics": [
                        {
                            "Namespace": self._namespace,
                            "Dimensions": [[k for k, _ in dims]],
                            "Metrics": [{"Name": n, "Unit": "None"} for n in values],
                        }
                    ],
                },
                **dict(dims),
                **values,
            }
            self._stream.write(orjson.dumps(doc).decode() + "\n")
        self._stream.flush()


def _fmt(key: _Key) -> str:
    name, dims = key
    return name + ("{" + ",".join(f"{k}={v}" for k, v in dims) + "}" if dims else "")


def make_metrics(kind: str, namespace: str = "changelake") -> Metrics:
    """Metrics sink by name: ``log`` (local) or ``emf`` (CloudWatch on AWS)."""
    if kind == "emf":
        return EmfMetrics(namespace)
    if kind == "log":
        return LogMetrics()
    raise ValueError(f"unknown metrics sink {kind!r} (use 'log' or 'emf')")


class PeriodicFlush:
    """Flushes a sink every ``interval_s`` seconds from a daemon thread, until :meth:`stop`.

    For processes whose hot path has no natural flush point (the KCL record processor is
    driven by the daemon's messages): without it, metrics would reach the log or CloudWatch
    only at exit. The sinks aggregate under a lock, so flushing from another thread is safe.
    """

    def __init__(self, metrics: Metrics, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self._metrics = metrics
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-flush", daemon=True)

    def start(self) -> PeriodicFlush:
        """Start flushing; returns self."""
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._metrics.flush()
            except Exception:  # a sink error must never end the process's metrics for good
                log.exception("metrics flush failed")

    def stop(self) -> None:
        """Stop the thread, then flush what is left."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval + 5)
        self._metrics.flush()
