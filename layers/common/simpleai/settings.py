"""The one place where the gateway reads its environment.

Every setting is parsed and validated here, once per process; a missing or malformed value raises
`SettingsError` naming the variable, so a misconfigured function fails at its first call with a
message an operator can act on. Tests build `Settings(...)` directly instead of patching
`os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

JOURNAL_MODES = ("WAL", "DELETE", "TRUNCATE", "PERSIST")
AUDIT_BACKENDS = ("sqlite", "dynamodb")
SYNCHRONOUS_MODES = ("FULL", "NORMAL", "EXTRA")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message starts with the variable's name."""


@dataclass(frozen=True)
class Settings:
    """Validated configuration of a gateway process."""

    oidc_issuer: str
    oidc_audience: tuple[str, ...]
    ollama_base_url: str = "http://localhost:11434"
    ollama_model: str = "llama3.2"
    model_aliases: Mapping[str, str] = field(default_factory=dict)
    database_url: str = "sqlite:./data/audit.db"
    log_level: str = "INFO"
    cors_origins: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 3000

    # Authentication
    oidc_jwks_url: str | None = None
    oidc_jwks_ttl_seconds: int = 3600
    oidc_jwks_refresh_cooldown: int = 60
    oidc_jwks_stale_seconds: int = 86400
    oidc_leeway_seconds: int = 60
    oidc_allowed_client_ids: tuple[str, ...] = ()
    oidc_required_scopes: tuple[str, ...] = ()

    # Audit log
    audit_backend: str = "sqlite"
    audit_journal_mode: str = "WAL"
    audit_synchronous: str = "FULL"
    audit_max_body_bytes: int = 256 * 1024
    audit_store_images: bool = False
    audit_fail_open: bool = False
    audit_retention_days: int = 0
    audit_dynamodb_table: str | None = None
    audit_s3_bucket: str | None = None

    # Upstream and limits
    ollama_connect_timeout_seconds: float = 5.0
    ollama_timeout_seconds: float = 120.0
    ollama_max_retries: int = 2
    ollama_headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    ollama_breaker_threshold: int = 5
    ollama_breaker_cooldown_seconds: float = 30.0
    max_request_bytes: int = 10 * 1024 * 1024
    max_messages: int = 1000
    rate_limit_requests_per_minute: int = 0
    token_quota_per_day: int = 0
    tracing_enabled: bool = False

    @property
    def database_path(self) -> Path:
        """The SQLite file named by DATABASE_URL."""
        return parse_database_url(self.database_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting from `environ` (default: the process environment)."""
        env = _Env(os.environ if environ is None else environ)
        database_url = env.get("DATABASE_URL", "sqlite:./data/audit.db")
        _checked("DATABASE_URL", database_url, parse_database_url)
        settings = cls(
            # Kept verbatim: the token's `iss` must equal it exactly, trailing slash included.
            oidc_issuer=env.required("OIDC_ISSUER", _http_url),
            oidc_audience=env.required("OIDC_AUDIENCE", _nonempty_list),
            ollama_base_url=env.parse("OLLAMA_BASE_URL", _base_url, "http://localhost:11434"),
            ollama_model=env.get("OLLAMA_MODEL", "llama3.2"),
            model_aliases=env.parse("MODEL_ALIASES", _pairs, {}),
            database_url=database_url,
            log_level=env.parse("LOG_LEVEL", _choice(LOG_LEVELS, upper=True), "INFO"),
            cors_origins=env.parse("CORS_ORIGINS", _list, ()),
            host=env.get("HOST", "127.0.0.1"),
            port=env.parse("PORT", _int_range(1, 65535), 3000),
            oidc_jwks_url=env.parse("OIDC_JWKS_URL", _http_url, None),
            oidc_jwks_ttl_seconds=env.parse("OIDC_JWKS_TTL_SECONDS", _int_range(1), 3600),
            oidc_jwks_refresh_cooldown=env.parse("OIDC_JWKS_REFRESH_COOLDOWN", _int_range(0), 60),
            oidc_jwks_stale_seconds=env.parse("OIDC_JWKS_STALE_SECONDS", _int_range(0), 86400),
            oidc_leeway_seconds=env.parse("OIDC_LEEWAY_SECONDS", _int_range(0, 3600), 60),
            oidc_allowed_client_ids=env.parse("OIDC_ALLOWED_CLIENT_IDS", _list, ()),
            oidc_required_scopes=env.parse("OIDC_REQUIRED_SCOPES", _scopes, ()),
            audit_backend=env.parse("AUDIT_BACKEND", _choice(AUDIT_BACKENDS), "sqlite"),
            audit_journal_mode=env.parse(
                "AUDIT_JOURNAL_MODE", _choice(JOURNAL_MODES, upper=True), "WAL"
            ),
            audit_synchronous=env.parse(
                "AUDIT_SYNCHRONOUS", _choice(SYNCHRONOUS_MODES, upper=True), "FULL"
            ),
            audit_max_body_bytes=env.parse("AUDIT_MAX_BODY_BYTES", _int_range(1024), 256 * 1024),
            audit_store_images=env.parse("AUDIT_STORE_IMAGES", _bool, False),
            audit_fail_open=env.parse("AUDIT_FAIL_OPEN", _bool, False),
            audit_retention_days=env.parse("AUDIT_RETENTION_DAYS", _int_range(0), 0),
            audit_dynamodb_table=env.get("AUDIT_DYNAMODB_TABLE") or None,
            audit_s3_bucket=env.get("AUDIT_S3_BUCKET") or None,
            ollama_connect_timeout_seconds=env.parse(
                "OLLAMA_CONNECT_TIMEOUT_SECONDS", _positive_float, 5.0
            ),
            ollama_timeout_seconds=env.parse("OLLAMA_TIMEOUT_SECONDS", _positive_float, 120.0),
            ollama_max_retries=env.parse("OLLAMA_MAX_RETRIES", _int_range(0, 10), 2),
            ollama_headers=env.parse("OLLAMA_HEADERS", _headers, {}),
            ollama_breaker_threshold=env.parse("OLLAMA_BREAKER_THRESHOLD", _int_range(1), 5),
            ollama_breaker_cooldown_seconds=env.parse(
                "OLLAMA_BREAKER_COOLDOWN_SECONDS", _positive_float, 30.0
            ),
            max_request_bytes=env.parse("MAX_REQUEST_BYTES", _int_range(1024), 10 * 1024 * 1024),
            max_messages=env.parse("MAX_MESSAGES", _int_range(1), 1000),
            rate_limit_requests_per_minute=env.parse(
                "RATE_LIMIT_REQUESTS_PER_MINUTE", _int_range(0), 0
            ),
            token_quota_per_day=env.parse("TOKEN_QUOTA_PER_DAY", _int_range(0), 0),
            tracing_enabled=env.parse("TRACING_ENABLED", _bool, False),
        )
        if settings.audit_backend == "dynamodb" and not settings.audit_dynamodb_table:
            raise SettingsError("AUDIT_DYNAMODB_TABLE: required when AUDIT_BACKEND=dynamodb")
        return settings


def parse_database_url(url: str) -> Path:
    """`sqlite:relative/path`, `sqlite:/abs/path` or `sqlite:///abs/path` -> the file's path."""
    scheme, sep, rest = url.partition(":")
    if scheme != "sqlite" or not sep:
        raise ValueError("must start with 'sqlite:' (for example sqlite:./data/audit.db)")
    if rest.startswith("//"):
        rest = rest[2:]
        if not rest.startswith("/"):
            raise ValueError(
                "'sqlite://' must be followed by an absolute path (sqlite:///abs/path)"
            )
    if not rest:
        raise ValueError("names no file")
    return Path(rest)


class _Env:
    """Lookups that turn a parser's ValueError into a SettingsError naming the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def get(self, name: str, default: str = "") -> str:
        value = self._environ.get(name, "").strip()
        return value or default

    def required(self, name: str, parse: Callable[[str], T]) -> T:
        value = self.get(name)
        if not value:
            raise SettingsError(f"{name}: required but not set")
        return _checked(name, value, parse)

    def parse(self, name: str, parse: Callable[[str], T], default: T) -> T:
        value = self.get(name)
        return default if not value else _checked(name, value, parse)


def _checked(name: str, value: str, parse: Callable[[str], T]) -> T:
    try:
        return parse(value)
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc} (got {value!r})") from exc


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return value


def _base_url(value: str) -> str:
    return _http_url(value).rstrip("/")


def _list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _nonempty_list(value: str) -> tuple[str, ...]:
    items = _list(value)
    if not items:
        raise ValueError("must name at least one value")
    return items


def _scopes(value: str) -> tuple[str, ...]:
    return tuple(value.replace(",", " ").split())


def _pairs(value: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in _list(value):
        alias, sep, target = item.partition("=")
        if not sep or not alias.strip() or not target.strip():
            raise ValueError(f"entry {item!r} is not of the form alias=model")
        pairs[alias.strip()] = target.strip()
    return pairs


def _headers(value: str) -> dict[str, str]:
    """`Name: value` pairs separated by newlines or `;;`, e.g. `Authorization: Bearer abc`."""
    headers: dict[str, str] = {}
    for item in value.replace(";;", "\n").splitlines():
        if not item.strip():
            continue
        name, sep, content = item.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            raise ValueError("entries must look like 'Header-Name: value'")
        headers[name.strip()] = content.strip()
    return headers


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError("must be a whole number") from None
        if number < low or (high is not None and number > high):
            bound = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise ValueError(f"must be {bound}")
        return number

    return parse


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if number <= 0:
        raise ValueError("must be greater than 0")
    return number


def _choice(choices: tuple[str, ...], *, upper: bool = False) -> Callable[[str], str]:
    def parse(value: str) -> str:
        normalized = value.upper() if upper else value.lower()
        if normalized not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return normalized

    return parse
