"""An Ollama reached over https (behind a TLS proxy): its certificate is checked, and one from
an internal CA is trusted once `SSL_CERT_FILE` names that CA, as for other Python clients."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from simpleai import runtime
from simpleai.settings import Settings
from tests.support.fake_ollama import FakeOllama
from tests.support.tls import self_signed, trusting


def test_an_ollama_certified_by_an_internal_ca_answers_once_ssl_cert_file_names_it(
    make_settings: Callable[..., Settings],
    invoke: Callable[..., dict[str, Any]],
    audit_rows: Callable[[], list[dict[str, Any]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    certified = self_signed(tmp_path)
    with FakeOllama(tls=certified.server) as ollama:
        # GIVEN a function whose CAs (certifi's) do not know the one that certified Ollama
        trusting(monkeypatch, None)
        runtime.configure(make_settings(ollama_base_url=ollama.url))

        # WHEN a chat completion is asked for
        refused = invoke("chat", "chat")

        # THEN it is refused as an upstream error that says why, nothing reached Ollama, and
        # the refusal is on the record
        assert refused["statusCode"] == 502
        error = json.loads(refused["body"])["error"]
        assert error["type"] == "upstream_error"
        assert "TLS certificate is not trusted" in error["message"]
        assert ollama.requests == []
        assert [row["response_status"] for row in audit_rows()] == [502]

        # WHEN the function starts again with SSL_CERT_FILE naming that CA
        trusting(monkeypatch, certified.ca_file)
        runtime.configure(make_settings(ollama_base_url=ollama.url))
        answered = invoke("chat", "chat")

        # THEN Ollama answers it
        assert answered["statusCode"] == 200, answered["body"]
        assert len(ollama.requests) == 1


def test_a_ca_bundle_that_cannot_be_loaded_is_named_in_the_refusal(
    make_settings: Callable[..., Settings],
    invoke: Callable[..., dict[str, Any]],
    token: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    certified = self_signed(tmp_path)
    token("alice")  # issued first: the test's own client to the provider reads SSL_CERT_FILE too
    with FakeOllama(tls=certified.server) as ollama:
        trusting(monkeypatch, tmp_path / "no-such-bundle.pem")
        runtime.configure(make_settings(ollama_base_url=ollama.url))

        refused = invoke("chat", "chat")

        assert refused["statusCode"] == 502
        message = json.loads(refused["body"])["error"]["message"]
        assert "SSL_CERT_FILE or SSL_CERT_DIR names cannot be loaded" in message
        assert "no-such-bundle" not in message  # the image's paths stay the operator's
