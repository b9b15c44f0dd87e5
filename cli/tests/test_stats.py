"""The one percentile that the demo and the benchmarks report."""

from __future__ import annotations

import pytest
from changelake_cli.stats import percentile

pytestmark = pytest.mark.unit


def test_percentile_is_nearest_rank_when_rank_is_exact() -> None:
    values = [float(v) for v in range(20, 0, -1)]  # 20..1, unsorted on purpose
    assert percentile(values, 95) == 19.0  # ceil(0.95 * 20) = 19th smallest
    assert percentile(values, 50) == 10.0
    assert percentile(values, 100) == 20.0


def test_percentile_rounds_rank_up_and_clamps_to_the_values() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # ceil(1.5) = 2nd
    assert percentile([3.0, 1.0, 2.0], 0) == 1.0
    assert percentile([5.0], 95) == 5.0


def test_percentile_of_nothing_is_none() -> None:
    assert percentile([], 95) is None
