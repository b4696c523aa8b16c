"""The percentile the benchmark report quotes (benchmarks/stats.py)."""

from __future__ import annotations

import pytest

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
