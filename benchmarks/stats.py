"""Summaries of timing samples."""

from __future__ import annotations

import math
import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` in 0..1) of a non-empty sample."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    count: int
    mean: float
    median: float
    p95: float
    p99: float
    maximum: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        return cls(
            count=len(samples),
            mean=statistics.fmean(samples),
            median=statistics.median(samples),
            p95=percentile(samples, 0.95),
            p99=percentile(samples, 0.99),
            maximum=max(samples),
        )


@dataclass
class Paired:
    """Timings of the same request taken through the gateway and straight to the stand-in."""

    gateway_ms: list[float] = field(default_factory=list)
    direct_ms: list[float] = field(default_factory=list)
    errors: int = 0

    def added(self) -> Summary:
        """What the gateway adds, request by request."""
        return Summary.of([g - d for g, d in zip(self.gateway_ms, self.direct_ms, strict=True)])


def interleaved_samples(
    paths: Mapping[str, Callable[[], float]],
    *,
    count: int,
    warmup: int,
    budget_seconds: float,
    failures: tuple[type[BaseException], ...],
    rand: random.Random | None = None,
) -> tuple[dict[str, list[float]], int]:
    """Time every path once a round, `count` rounds (bounded by `budget_seconds`) after
    `warmup` rounds; the samples of each path (round by round) and the rounds lost to a
    failure. The order is shuffled every round: a fixed order, even an alternating one, lets
    one path inherit another's after-effects (a cache or a process woken up), and an A/A run
    of identical servers showed ~0.3 ms of exactly that."""
    shuffle = (rand or random.Random()).shuffle
    names = list(paths)
    for _ in range(warmup):
        for name in names:
            paths[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    errors = 0
    deadline = time.monotonic() + budget_seconds
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        shuffle(names)
        try:
            timings = {name: paths[name]() for name in names}
        except failures:
            errors += 1
            continue
        for name, elapsed in timings.items():
            samples[name].append(elapsed)
    return samples, errors


def paired_samples(
    through_gateway: Callable[[], float],
    straight: Callable[[], float],
    *,
    count: int,
    warmup: int,
    budget_seconds: float,
    failures: tuple[type[BaseException], ...],
) -> Paired:
    """Both paths `count` times, interleaved in shuffled order (`interleaved_samples`)."""
    samples, errors = interleaved_samples(
        {"gateway": through_gateway, "direct": straight},
        count=count,
        warmup=warmup,
        budget_seconds=budget_seconds,
        failures=failures,
    )
    return Paired(samples["gateway"], samples["direct"], errors)
