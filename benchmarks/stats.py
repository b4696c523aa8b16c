"""Summaries of timing samples."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
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


def paired_samples(
    through_gateway: Callable[[], float],
    straight: Callable[[], float],
    *,
    count: int,
    warmup: int,
    budget_seconds: float,
    failures: tuple[type[BaseException], ...],
) -> Paired:
    """Time both paths `count` times (bounded by `budget_seconds`) after `warmup` rounds,
    alternating which goes first so neither always follows the other's work."""
    for _ in range(warmup):
        through_gateway()
        straight()
    paired = Paired()
    deadline = time.monotonic() + budget_seconds
    for index in range(count):
        if time.monotonic() > deadline:
            break
        try:
            if index % 2:
                gateway_time = through_gateway()
                direct_time = straight()
            else:
                direct_time = straight()
                gateway_time = through_gateway()
        except failures:
            paired.errors += 1
            continue
        paired.gateway_ms.append(gateway_time)
        paired.direct_ms.append(direct_time)
    return paired
