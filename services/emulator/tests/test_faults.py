"""Fault injection: the faults claimed, and deterministic by seed (docs/aws-behaviour.md)."""

from __future__ import annotations

import pytest
from changelake_emulator.faults import FaultConfig, FaultInjector

pytestmark = pytest.mark.unit


def _run(
    config: FaultConfig | None, n: int, removes: set[int] | None = None
) -> tuple[list[tuple[int, int]], FaultInjector[int], list[bool]]:
    injector: FaultInjector[int] = FaultInjector(config)
    out: list[tuple[int, int]] = []
    ttl: list[bool] = []
    for ordinal in range(n):
        decision = injector.decide(ordinal, is_remove=ordinal in (removes or set()))
        ttl.append(decision.ttl)
        out += [
            (e.ordinal, e.copy)
            for e in injector.push(ordinal, ordinal, duplicate=decision.duplicate)
        ]
    out += [(e.ordinal, e.copy) for e in injector.drain()]
    return out, injector, ttl


def test_injector_passes_records_through_unchanged_when_no_faults() -> None:
    out, injector, _ = _run(None, 50)
    assert out == [(i, 0) for i in range(50)]
    assert (injector.duplicates, injector.out_of_order) == (0, 0)


def test_injector_duplicates_records_when_duplicate_rate_set() -> None:
    out, injector, _ = _run(FaultConfig(seed=7, duplicate_rate=0.3), 1000)
    copies = [o for o, c in out if c == 1]
    assert len(copies) == injector.duplicates
    assert 230 <= len(copies) <= 370  # 30 % of 1000, loosely
    assert len(out) == 1000 + len(copies)
    # Without reordering a duplicate follows its original at once.
    for i, (ordinal, copy) in enumerate(out):
        if copy == 1:
            assert out[i - 1] == (ordinal, 0)


def test_injector_reorders_only_within_window_when_window_set() -> None:
    window = 8
    out, injector, _ = _run(FaultConfig(seed=3, reorder_window=window), 203)
    assert sorted(out) == [(i, 0) for i in range(203)]  # nothing lost, nothing added
    assert out != sorted(out)
    assert injector.out_of_order > 0
    for position, (ordinal, _) in enumerate(out):
        assert position // window == ordinal // window  # never leaves its window


def test_injector_is_deterministic_when_seed_repeats() -> None:
    config = FaultConfig(seed=42, duplicate_rate=0.2, reorder_window=5, ttl_rate=0.5)
    removes = set(range(0, 300, 3))
    first = _run(config, 300, removes)
    second = _run(config, 300, removes)
    other = _run(
        FaultConfig(seed=43, duplicate_rate=0.2, reorder_window=5, ttl_rate=0.5), 300, removes
    )
    assert first[0] == second[0]
    assert first[2] == second[2]
    assert first[0] != other[0]


def test_injector_result_is_independent_of_batching_when_seed_repeats() -> None:
    config = FaultConfig(seed=9, duplicate_rate=0.25, reorder_window=4)
    whole, _, _ = _run(config, 40)
    # Same records, drained (as on idle) only at the end but pushed one by one either way:
    # the decisions depend on (seed, ordinal) alone.
    injector: FaultInjector[int] = FaultInjector(config)
    pieces: list[tuple[int, int]] = []
    for ordinal in range(40):
        d = injector.decide(ordinal, is_remove=False)
        pieces += [
            (e.ordinal, e.copy) for e in injector.push(ordinal, ordinal, duplicate=d.duplicate)
        ]
    pieces += [(e.ordinal, e.copy) for e in injector.drain()]
    assert pieces == whole


def test_injector_marks_ttl_only_on_removes_when_ttl_rate_is_one() -> None:
    removes = {1, 5, 9}
    _, injector, ttl = _run(FaultConfig(seed=1, ttl_rate=1.0), 12, removes)
    assert [i for i, t in enumerate(ttl) if t] == sorted(removes)
    assert injector.ttl_marked == 3


def test_injector_mixes_precisions_when_precision_mix_set() -> None:
    injector: FaultInjector[int] = FaultInjector(FaultConfig(seed=5, precision_mix=True))
    precisions = [injector.decide(i, is_remove=False).precision for i in range(200)]
    assert set(precisions) == {"MILLISECOND", "MICROSECOND"}


@pytest.mark.parametrize(
    "kwargs", [{"duplicate_rate": 1.5}, {"ttl_rate": -0.1}, {"reorder_window": -1}]
)
def test_fault_config_rejects_out_of_range_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        FaultConfig(seed=1, **kwargs)  # type: ignore[arg-type]


def test_fault_config_is_off_by_default() -> None:
    assert not FaultConfig(seed=1).enabled
    assert FaultConfig(seed=1, reorder_window=3).enabled
