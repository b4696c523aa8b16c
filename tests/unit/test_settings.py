"""Settings are read in one place and a bad value names its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from simpleai.settings import Settings, SettingsError, parse_database_url

REQUIRED = {"OIDC_ISSUER": "https://login.example.com/", "OIDC_AUDIENCE": "app-a, app-b"}


def test_defaults_follow_the_plan() -> None:
    settings = Settings.from_env(REQUIRED)

    assert settings.ollama_base_url == "http://localhost:11434"
    assert settings.ollama_model == "llama3.2"
    assert settings.database_url == "sqlite:./data/audit.db"
    assert (settings.host, settings.port) == ("127.0.0.1", 3000)
    assert settings.oidc_audience == ("app-a", "app-b")


def test_issuer_is_kept_verbatim_for_exact_iss_comparison() -> None:
    assert Settings.from_env(REQUIRED).oidc_issuer == "https://login.example.com/"


@pytest.mark.parametrize("missing", ["OIDC_ISSUER", "OIDC_AUDIENCE"])
def test_a_missing_required_setting_is_named(missing: str) -> None:
    env = {name: value for name, value in REQUIRED.items() if name != missing}

    with pytest.raises(SettingsError, match=f"^{missing}: required"):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("OLLAMA_BASE_URL", "localhost:11434"),
        ("OIDC_ISSUER", "login.example.com"),
        ("DATABASE_URL", "postgres://db/audit"),
        ("DATABASE_URL", "sqlite://relative.db"),
        ("LOG_LEVEL", "chatty"),
        ("MODEL_ALIASES", "gpt-4o"),
        ("AUDIT_FAIL_OPEN", "maybe"),
        ("AUDIT_SYNCHRONOUS", "sometimes"),
        ("OLLAMA_TIMEOUT_SECONDS", "-1"),
        ("OLLAMA_HEADERS", "no colon here"),
    ],
)
def test_a_malformed_setting_is_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name}: "):
        Settings.from_env({**REQUIRED, name: value})


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:./data/audit.db", Path("data/audit.db")),
        ("sqlite:data/audit.db", Path("data/audit.db")),
        ("sqlite:/mnt/audit/audit.db", Path("/mnt/audit/audit.db")),
        ("sqlite:///mnt/audit/audit.db", Path("/mnt/audit/audit.db")),
    ],
)
def test_database_url_forms(url: str, path: Path) -> None:
    assert parse_database_url(url) == path


def test_lists_pairs_and_headers_are_parsed() -> None:
    settings = Settings.from_env(
        {
            **REQUIRED,
            "MODEL_ALIASES": "gpt-4o-mini=llama3.2, gpt-4o=qwen2.5:14b",
            "CORS_ORIGINS": "https://a.example, https://b.example",
            "OLLAMA_HEADERS": "Authorization: Bearer s3cret;;X-Team: ml",
            "LOG_LEVEL": "debug",
        }
    )

    assert settings.model_aliases == {"gpt-4o-mini": "llama3.2", "gpt-4o": "qwen2.5:14b"}
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.ollama_headers == {"Authorization": "Bearer s3cret", "X-Team": "ml"}
    assert settings.log_level == "DEBUG"


def test_upstream_credentials_stay_out_of_the_settings_repr() -> None:
    settings = Settings.from_env({**REQUIRED, "OLLAMA_HEADERS": "Authorization: Bearer s3cret"})

    assert "s3cret" not in repr(settings)


def test_dynamodb_backend_needs_a_table() -> None:
    with pytest.raises(SettingsError, match=r"^AUDIT_DYNAMODB_TABLE"):
        Settings.from_env({**REQUIRED, "AUDIT_BACKEND": "dynamodb"})
