"""The one percentile the demo and every benchmark report (so their p95s mean the same)."""

from __future__ import annotations

import math


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``pct``% of values ≤ it.

    ``pct`` is in 0..100; ``None`` for no values. p95 of 20 values is the 19th smallest.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(pct / 100 * len(ordered))))
    return ordered[rank - 1]
