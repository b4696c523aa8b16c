"""Per-user request rate and daily token quota, counted from the audit store.

Counting from the audit log (instead of an in-memory counter) makes the limits hold across every
warm function that shares the store. `assess` is pure: it turns a user's usage into the
`x-ratelimit-*` headers OpenAI clients read and, when a limit is spent, a 429.

The request window slides over the last 60 seconds; the token quota runs per UTC calendar day.
Requests still in flight are not yet in the log, so a burst of concurrent calls can overshoot
the rate by at most the number of concurrent calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from simpleai.errors import RateLimitError

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Usage:
    requests_in_window: int
    oldest_in_window: datetime | None
    """When the oldest request still counted in the window was made."""
    tokens_today: int


@dataclass(frozen=True)
class Verdict:
    headers: dict[str, str]
    refusal: RateLimitError | None = None


def window_starts(now: datetime) -> tuple[datetime, datetime]:
    """(start of the sliding request window, start of the UTC day) for `now`."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return now - timedelta(seconds=WINDOW_SECONDS), day


def assess(
    usage: Usage, *, requests_per_minute: int, tokens_per_day: int, now: datetime
) -> Verdict:
    """The headers for this request and, if a limit is already spent, the 429 to answer with."""
    headers: dict[str, str] = {}
    refusal: RateLimitError | None = None
    if requests_per_minute > 0:
        remaining = max(0, requests_per_minute - usage.requests_in_window - 1)
        oldest = usage.oldest_in_window or now
        reset = max(0.0, (oldest + timedelta(seconds=WINDOW_SECONDS) - now).total_seconds())
        headers |= {
            "x-ratelimit-limit-requests": str(requests_per_minute),
            "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": duration(reset),
        }
        if usage.requests_in_window >= requests_per_minute:
            headers["x-ratelimit-remaining-requests"] = "0"
            refusal = _refusal(
                f"Rate limit reached: {requests_per_minute} requests per minute. "
                f"Try again in {duration(reset)}.",
                "rate_limit_exceeded",
                reset,
            )
    if tokens_per_day > 0:
        remaining_tokens = max(0, tokens_per_day - usage.tokens_today)
        _, day_start = window_starts(now)
        reset = (day_start + timedelta(days=1) - now).total_seconds()
        headers |= {
            "x-ratelimit-limit-tokens": str(tokens_per_day),
            "x-ratelimit-remaining-tokens": str(remaining_tokens),
            "x-ratelimit-reset-tokens": duration(reset),
        }
        if refusal is None and remaining_tokens == 0:
            refusal = _refusal(
                f"Daily token quota of {tokens_per_day} tokens used up. "
                f"It renews in {duration(reset)} (midnight UTC).",
                "insufficient_quota",
                reset,
            )
    if refusal is not None:
        refusal.headers.update(headers)
    return Verdict(headers=headers, refusal=refusal)


def _refusal(message: str, code: str, reset: float) -> RateLimitError:
    return RateLimitError(
        message, code=code, headers={"Retry-After": str(max(1, math.ceil(reset)))}
    )


def duration(seconds: float) -> str:
    """OpenAI's reset format: `0.5s`, `20s`, `6m0s`, `3h2m5s`."""
    if seconds < 1:
        return f"{round(seconds, 3):g}s"
    total = math.ceil(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
