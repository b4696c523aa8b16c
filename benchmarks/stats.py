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

    def extend(self, more: Paired) -> None:
        """`more`'s rounds after these."""
        self.gateway_ms.extend(more.gateway_ms)
        self.direct_ms.extend(more.direct_ms)
        self.errors += more.errors

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


def paired_in_blocks(
    sides: Mapping[str, Callable[[], float]],
    straight: Callable[[], float],
    *,
    count: int,
    block: int,
    warmup: int,
    budget_seconds: float,
    failures: tuple[type[BaseException], ...],
    rand: random.Random | None = None,
) -> dict[str, Paired]:
    """Each side paired with `straight`, `count` rounds each (bounded by `budget_seconds`):
    rounds of the side and `straight` in shuffled order (`interleaved_samples`), `block` at a
    time, the sides taking turns in an order shuffled every turn. So a round holds only the
    two requests it compares, as `paired_samples`'s do, and every side still sees the same
    minutes of the machine. Putting every side in every round let each wait through the
    others' requests between two of its own, and a local API's worker that idled that much
    longer came back ~0.06-0.1 ms slower."""
    rand = rand or random.Random()
    names = list(sides)
    paired = {name: Paired() for name in names}

    def rounds(name: str, todo: int, warm: int, seconds: float) -> None:
        paired[name].extend(
            paired_samples(
                sides[name],
                straight,
                count=todo,
                warmup=warm,
                budget_seconds=seconds,
                failures=failures,
                rand=rand,
            )
        )

    def left(name: str) -> int:
        return count - len(paired[name].gateway_ms) - paired[name].errors

    for name in names:
        rounds(name, 0, warmup, budget_seconds)
    deadline = time.monotonic() + budget_seconds
    while any(left(name) > 0 for name in names) and time.monotonic() < deadline:
        rand.shuffle(names)
        for name in names:
            if left(name) > 0:
                rounds(name, min(block, left(name)), 0, deadline - time.monotonic())
    return paired


def paired_samples(
    through_gateway: Callable[[], float],
    straight: Callable[[], float],
    *,
    count: int,
    warmup: int,
    budget_seconds: float,
    failures: tuple[type[BaseException], ...],
    rand: random.Random | None = None,
) -> Paired:
    """Both paths `count` times, interleaved in shuffled order (`interleaved_samples`)."""
    samples, errors = interleaved_samples(
        {"gateway": through_gateway, "direct": straight},
        count=count,
        warmup=warmup,
        budget_seconds=budget_seconds,
        failures=failures,
        rand=rand,
    )
    return Paired(samples["gateway"], samples["direct"], errors)
