"""Per-user rate limits and token quotas as an OpenAI client meets them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import openai
import pytest

from localapi.server import LocalApi, Server
from localapi.template import read_application
from simpleai import runtime
from simpleai.settings import Settings
from tests.conftest import ROOT


@pytest.fixture
def limited_api(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., str]]:
    servers: list[Server] = []

    def start(**limits: int) -> str:
        runtime.configure(make_settings(**limits))
        server = Server(LocalApi(read_application(ROOT / "template.yaml"), workers=2)).start()
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()
    runtime.configure(None)


def chat(url: str, token: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {token}"},
        json={"messages": [{"role": "user", "content": "hi"}]},
    )


def test_allowed_requests_count_down_the_openai_headers(
    limited_api: Callable[..., str], token: Callable[..., str]
) -> None:
    url = limited_api(rate_limit_requests_per_minute=3)

    remaining = [
        chat(url, token("alice")).headers["x-ratelimit-remaining-requests"] for _ in range(3)
    ]

    assert remaining == ["2", "1", "0"]


def test_the_request_over_the_rate_is_refused_for_that_user_only(
    limited_api: Callable[..., str], token: Callable[..., str]
) -> None:
    url = limited_api(rate_limit_requests_per_minute=2)
    for _ in range(2):
        assert chat(url, token("alice")).status_code == 200

    refused = chat(url, token("alice"))

    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-limit-requests"] == "2"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert chat(url, token("bob")).status_code == 200


def test_refusals_do_not_count_against_the_rate(
    limited_api: Callable[..., str], token: Callable[..., str]
) -> None:
    url = limited_api(rate_limit_requests_per_minute=1)
    assert chat(url, token("alice")).status_code == 200

    statuses = [chat(url, token("alice")).status_code for _ in range(3)]

    assert statuses == [429, 429, 429]
    now = datetime.now(UTC)
    usage = runtime.components().audit.usage(
        "alice", window_start=now - timedelta(minutes=1), day_start=now - timedelta(days=1)
    )
    assert usage.requests_in_window == 1


def test_the_daily_token_quota_refuses_once_spent(
    limited_api: Callable[..., str], token: Callable[..., str]
) -> None:
    url = limited_api(token_quota_per_day=30)  # each stand-in answer costs 12 + 7 tokens
    first = chat(url, token("alice"))
    assert first.headers["x-ratelimit-remaining-tokens"] == "30"
    assert chat(url, token("alice")).headers["x-ratelimit-remaining-tokens"] == "11"

    client = openai.OpenAI(base_url=f"{url}/v1", api_key=token("alice"), max_retries=0)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(
            model="llama3.2", messages=[{"role": "user", "content": "hi"}]
        )

    assert raised.value.code == "insufficient_quota"
    assert raised.value.response.headers["x-ratelimit-remaining-tokens"] == "0"
    assert int(raised.value.response.headers["retry-after"]) > 0
