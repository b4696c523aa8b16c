"""Upstream resilience: retry what is safe to retry, and stop calling an Ollama that is down.

`RetryPolicy` decides how long to wait before each new attempt (exponential backoff with full
jitter, never past the request's deadline). `CircuitBreaker` opens after a run of consecutive
connection failures, answers at once while open, and lets a single probe through after the
cool-down. Both take their clock and random source, so tests drive them without sleeping.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal

import httpx

from simpleai.errors import UpstreamUnavailableError
from simpleai.transport import Timeouts, Transport, UpstreamResponse

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    base_delay: float = 0.2
    max_delay: float = 2.0
    rand: Callable[[], float] = field(default=random.random, repr=False)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1-based): full jitter over 2^n steps."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (retry - 1)))
        return float(ceiling * self.rand())

    def next_delay(self, retry: int, remaining: float | None) -> float | None:
        """The wait before retry `retry`, or None when no retry is left or time would run out."""
        if retry > self.max_retries:
            return None
        wait = self.delay(retry)
        if remaining is not None and wait >= remaining:
            return None
        return wait


class CircuitBreaker:
    """Shared by every request of a process: a warm function stops hammering a dead Ollama."""

    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state()

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cooldown:
            return "half_open"
        return "open"

    def retry_after(self) -> float:
        """Seconds until the breaker lets a probe through (0 when it would now)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.cooldown - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """May a call go upstream now? In half-open state only one probe at a time may."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return True
            if state == "open" or self._probing:
                return False
            self._probing = True
            return True

    def record_success(self) -> None:
        """Ollama answered (any HTTP status: a 400 or a busy 503 still proves it is up)."""
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._probing = False

    def record_failure(self) -> None:
        """A connection-level failure (refused, reset, unreachable)."""
        with self._lock:
            self._failures += 1
            if self._probing or self._failures >= self.threshold:
                self._opened_at = self._clock()
            self._probing = False

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {"state": self._state(), "consecutive_failures": self._failures}


request_deadline: ContextVar[float | None] = ContextVar("request_deadline", default=None)
"""`time.monotonic()` by which the current request must be answered (from the Lambda context)."""


class ResilientTransport:
    """Wraps the transport to Ollama: retries what is safe, honours the deadline, trips a breaker.

    Retried: a connection that could not be made (nothing was sent) and Ollama's 503 (busy).
    Never retried: anything after the request reached Ollama, because a generation may be
    under way. Each attempt's timeouts are cut to the time the request has left.
    """

    def __init__(
        self,
        inner: Transport,
        *,
        policy: RetryPolicy,
        breaker: CircuitBreaker,
        base_url: str,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._policy = policy
        self._breaker = breaker
        self._base_url = base_url
        self._sleep = sleep
        self._clock = clock

    async def request(
        self, method: str, path: str, body: bytes | None, timeouts: Timeouts
    ) -> UpstreamResponse:
        retry = 0
        while True:
            if not self._breaker.allow():
                wait = math.ceil(self._breaker.retry_after()) or 1
                raise UpstreamUnavailableError(
                    f"Ollama at {self._base_url} is failing; calls are paused for {wait} s.",
                    code="circuit_open",
                    headers={"Retry-After": str(wait)},
                )
            try:
                response = await self._inner.request(method, path, body, self._cut(timeouts))
            except (httpx.ConnectError, httpx.ConnectTimeout):
                self._breaker.record_failure()
                if not await self._backoff(retry := retry + 1):
                    raise
                continue
            self._breaker.record_success()
            if response.status != 503:
                return response
            if not await self._backoff(retry := retry + 1):
                return response
            await response.aclose()

    async def _backoff(self, retry: int) -> bool:
        """Wait before retry number `retry`; False when no retry is allowed."""
        deadline = request_deadline.get()
        remaining = None if deadline is None else deadline - self._clock()
        wait = self._policy.next_delay(retry, remaining)
        if wait is None:
            return False
        await self._sleep(wait)
        return True

    def _cut(self, timeouts: Timeouts) -> Timeouts:
        """`timeouts`, none longer than the time the request has left."""
        deadline = request_deadline.get()
        if deadline is None:
            return timeouts
        return timeouts.at_most(max(0.001, deadline - self._clock()))

    async def aclose(self) -> None:
        await self._inner.aclose()
