"""Request shape limits and the rate/quota verdicts, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from simpleai.errors import InvalidRequestError
from simpleai.limits import MAX_JSON_DEPTH, check_chat_request
from simpleai.quota import Usage, assess, duration

MESSAGE = {"role": "user", "content": "hi"}


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [MESSAGE] * 11}, "messages"),
        ({"messages": [MESSAGE], "tools": [{}] * 129}, "tools"),
        ({"messages": [MESSAGE], "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"messages": [MESSAGE], "model": "m" * 257}, "model"),
        ({"messages": [MESSAGE], "user": "u" * 257}, "user"),
        ({"messages": [MESSAGE], "metadata": nested(MAX_JSON_DEPTH)}, None),
    ],
)
def test_oversized_requests_are_refused_naming_the_field(body: Any, param: str | None) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        check_chat_request(body, max_messages=10)

    assert raised.value.param == param
    assert raised.value.status == 400


def test_a_request_within_every_limit_passes() -> None:
    check_chat_request(
        {
            "messages": [MESSAGE] * 10,
            "stop": ["a"] * 4,
            "model": "m" * 256,
            "metadata": nested(MAX_JSON_DEPTH - 2),
        },
        max_messages=10,
    )


def test_depth_check_survives_nesting_beyond_the_recursion_limit() -> None:
    with pytest.raises(InvalidRequestError):
        check_chat_request({"messages": nested(100_000)}, max_messages=10)


NOW = datetime(2026, 11, 23, 22, 0, 0, tzinfo=UTC)


def test_allowed_requests_carry_the_openai_headers() -> None:
    usage = Usage(
        requests_in_window=3, oldest_in_window=NOW - timedelta(seconds=45), tokens_today=1500
    )

    verdict = assess(usage, requests_per_minute=10, tokens_per_day=10_000, now=NOW)

    assert verdict.refusal is None
    assert verdict.headers == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "6",
        "x-ratelimit-reset-requests": "15s",
        "x-ratelimit-limit-tokens": "10000",
        "x-ratelimit-remaining-tokens": "8500",
        "x-ratelimit-reset-tokens": "2h0m0s",
    }


def test_the_request_over_the_rate_is_a_429_with_retry_after() -> None:
    usage = Usage(
        requests_in_window=10, oldest_in_window=NOW - timedelta(seconds=50.5), tokens_today=0
    )

    verdict = assess(usage, requests_per_minute=10, tokens_per_day=0, now=NOW)

    assert verdict.refusal is not None
    assert verdict.refusal.status == 429
    assert verdict.refusal.type == "rate_limit_error"
    assert verdict.refusal.headers["Retry-After"] == "10"
    assert verdict.refusal.headers["x-ratelimit-remaining-requests"] == "0"


def test_a_spent_token_quota_is_a_429_until_midnight_utc() -> None:
    usage = Usage(requests_in_window=0, oldest_in_window=None, tokens_today=10_250)

    verdict = assess(usage, requests_per_minute=0, tokens_per_day=10_000, now=NOW)

    assert verdict.refusal is not None
    assert verdict.refusal.code == "insufficient_quota"
    assert verdict.refusal.headers["Retry-After"] == str(2 * 3600)
    assert verdict.headers["x-ratelimit-remaining-tokens"] == "0"


def test_no_limits_means_no_headers() -> None:
    verdict = assess(Usage(99, NOW, 99), requests_per_minute=0, tokens_per_day=0, now=NOW)

    assert verdict == type(verdict)(headers={})


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "0.25s"), (1, "1s"), (59.2, "1m0s"), (360, "6m0s"), (10925, "3h2m5s")],
)
def test_durations_read_like_openais(seconds: float, text: str) -> None:
    assert duration(seconds) == text
