"""Retry timing and the circuit breaker, driven by a fake clock."""

from __future__ import annotations

import pytest

from simpleai.resilience import CircuitBreaker, RetryPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("retry", "ceiling"), [(1, 0.2), (2, 0.4), (3, 0.8), (5, 2.0), (9, 2.0)])
def test_backoff_doubles_up_to_the_cap(retry: int, ceiling: float) -> None:
    assert RetryPolicy(max_retries=9, rand=lambda: 1.0).delay(retry) == pytest.approx(ceiling)


def test_jitter_spreads_the_wait_below_the_ceiling() -> None:
    assert RetryPolicy(rand=lambda: 0.25).delay(2) == pytest.approx(0.1)


def test_no_retry_past_the_maximum() -> None:
    policy = RetryPolicy(max_retries=2, rand=lambda: 0.5)

    assert policy.next_delay(2, remaining=None) is not None
    assert policy.next_delay(3, remaining=None) is None


def test_no_retry_that_would_outlive_the_deadline() -> None:
    policy = RetryPolicy(max_retries=5, rand=lambda: 1.0)

    assert policy.next_delay(3, remaining=0.5) is None
    assert policy.next_delay(3, remaining=5.0) == pytest.approx(0.8)


def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    breaker = CircuitBreaker(threshold=3, cooldown=30, clock=Clock())

    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()

    assert breaker.state == "open"
    assert not breaker.allow()


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(threshold=2, clock=Clock())

    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()

    assert breaker.state == "closed"


def test_after_the_cooldown_exactly_one_probe_goes_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=30, clock=clock)
    breaker.record_failure()
    clock.now += 29.9
    assert not breaker.allow()
    assert breaker.retry_after() == pytest.approx(0.1)

    clock.now += 0.1
    assert breaker.state == "half_open"
    assert breaker.allow()
    assert not breaker.allow()  # a second caller waits for the probe's outcome


def test_a_failed_probe_reopens_for_a_full_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=5, cooldown=30, clock=clock)
    for _ in range(5):
        breaker.record_failure()
    clock.now += 30
    assert breaker.allow()

    breaker.record_failure()

    assert breaker.state == "open"
    assert breaker.retry_after() == pytest.approx(30)


def test_a_successful_probe_closes_the_breaker() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=30, clock=clock)
    breaker.record_failure()
    clock.now += 30
    assert breaker.allow()

    breaker.record_success()

    assert breaker.state == "closed"
    assert breaker.allow() and breaker.allow()
