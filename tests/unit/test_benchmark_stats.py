"""The percentile the benchmark report quotes (benchmarks/stats.py)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

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


class Paths:
    """Timed paths that note each call; path "b" fails on its call numbered `b_fails_on_call`."""

    def __init__(self, b_fails_on_call: int) -> None:
        self.calls: list[str] = []
        self._fails_on = b_fails_on_call

    def timed(self, name: str, elapsed: float) -> Callable[[], float]:
        def run() -> float:
            self.calls.append(name)
            if name == "b" and self.calls.count("b") == self._fails_on:
                raise RuntimeError("refused")
            return elapsed

        return run


def test_interleaved_samples_shuffle_the_order_and_drop_a_failed_round() -> None:
    import random

    from benchmarks.stats import interleaved_samples

    class Recording(random.Random):
        orders: list[list[str]] = []

        def shuffle(self, x: Any) -> None:
            super().shuffle(x)
            self.orders.append(list(x))

    paths = Paths(b_fails_on_call=6)
    timed, calls = paths.timed, paths.calls

    order = Recording(7)
    samples, errors = interleaved_samples(
        {"a": timed("a", 5.0), "b": timed("b", 3.0), "c": timed("c", 1.0)},
        count=20,
        warmup=1,
        budget_seconds=60,
        failures=(RuntimeError,),
        rand=order,
    )

    assert calls[:3] == ["a", "b", "c"]  # the warm-up round, in the given order
    assert len(order.orders) == 20
    assert all(sorted(names) == ["a", "b", "c"] for names in order.orders)
    assert len({names[0] for names in order.orders}) == 3  # every path has gone first
    assert errors == 1
    assert {name: len(times) for name, times in samples.items()} == {"a": 19, "b": 19, "c": 19}
    assert set(samples["a"]) == {5.0} and set(samples["c"]) == {1.0}


def test_steal_is_the_hypervisors_share_of_all_cpu_time() -> None:
    before = [100, 0, 50, 800, 0, 0, 0, 50]
    after = [160, 0, 70, 850, 0, 0, 0, 70]  # 60 user, 20 system, 50 idle, 20 stolen

    assert steal_share(before, after) == "13.3%"
    assert steal_share(None, after) == "unknown"


def test_paired_in_blocks_pairs_each_side_with_the_straight_request_in_turns() -> None:
    from benchmarks.stats import paired_in_blocks

    paths = Paths(b_fails_on_call=13)
    timed, calls = paths.timed, paths.calls

    paired = paired_in_blocks(
        {"a": timed("a", 5.0), "b": timed("b", 3.0)},
        timed("d", 1.0),
        count=25,
        block=10,
        warmup=2,
        budget_seconds=60,
        failures=(RuntimeError,),
    )

    warm, measured = calls[:8], calls[8:]
    assert sorted(warm[:4]) == ["a", "a", "d", "d"] and sorted(warm[4:]) == ["b", "b", "d", "d"]
    sides = [name for name in measured if name != "d"]
    turns = [list(group) for _, group in itertools.groupby(sides)]
    # Blocks of 10, 10 and 5 rounds a side (b's failed round among them); when a side goes
    # last in one turn and first in the next, two of its blocks meet.
    assert len(turns) >= 3 and all(len(turn) in (5, 10, 15, 20) for turn in turns)
    assert sides.count("a") == 25 and sides.count("b") == 25
    assert measured.count("d") in (49, 50)  # once a round, unless b failed before it
    assert len(paired["a"].gateway_ms) == 25 and paired["a"].errors == 0
    assert len(paired["b"].gateway_ms) == 24 and paired["b"].errors == 1
    assert set(paired["b"].gateway_ms) == {3.0} and set(paired["b"].direct_ms) == {1.0}
    assert paired["a"].added().median == 4.0
