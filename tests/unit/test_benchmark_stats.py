"""The percentile the benchmark report quotes (benchmarks/stats.py)."""

from __future__ import annotations

import pytest

from benchmarks.machine import steal_share
from benchmarks.stats import Summary, percentile


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [(0.5, 50.0), (0.95, 95.0), (0.99, 99.0), (1.0, 100.0), (0.0, 1.0)],
)
def test_nearest_rank_percentile_of_one_to_a_hundred(fraction: float, expected: float) -> None:
    samples = [float(n) for n in range(100, 0, -1)]  # order must not matter

    assert percentile(samples, fraction) == expected


def test_percentile_of_a_single_sample_is_that_sample() -> None:
    assert percentile([7.0], 0.99) == 7.0


def test_percentile_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 0.5)


def test_summary_of_a_skewed_sample() -> None:
    summary = Summary.of([1.0] * 98 + [50.0, 100.0])

    assert (summary.count, summary.median, summary.p95, summary.p99, summary.maximum) == (
        100,
        1.0,
        1.0,
        50.0,
        100.0,
    )
    assert summary.mean == pytest.approx(2.48)


def test_paired_samples_alternate_which_path_goes_first_and_count_failures() -> None:
    from benchmarks.stats import paired_samples

    calls: list[str] = []
    failing = iter([False, False, True, False, False, False, False, False])

    def gateway() -> float:
        calls.append("gateway")
        if next(failing):
            raise RuntimeError("refused")
        return 5.0

    def direct() -> float:
        calls.append("direct")
        return 2.0

    paired = paired_samples(
        gateway, direct, count=4, warmup=1, budget_seconds=60, failures=(RuntimeError,)
    )

    assert calls[:2] == ["gateway", "direct"]  # warm-up
    assert calls[2:4] == ["direct", "gateway"]  # even rounds start straight
    assert calls[4] == "gateway"  # odd rounds start through the gateway
    assert paired.errors == 1
    assert paired.added().median == 3.0
    assert len(paired.gateway_ms) == len(paired.direct_ms) == 3


def test_steal_is_the_hypervisors_share_of_all_cpu_time() -> None:
    before = [100, 0, 50, 800, 0, 0, 0, 50]
    after = [160, 0, 70, 850, 0, 0, 0, 70]  # 60 user, 20 system, 50 idle, 20 stolen

    assert steal_share(before, after) == "13.3%"
    assert steal_share(None, after) == "unknown"
