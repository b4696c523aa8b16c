"""The gateway's long-lived objects, built lazily and kept at module scope so a warm function
reuses them (Mangum runs the ASGI lifespan on every invocation, so nothing is built at startup).

Settings and the JWKS cache are shared by the whole process. The Ollama HTTP pool and the audit
database connection belong to one thread and its event loop: a Lambda has one, the local API has
one per worker (as `sam local` has one container per concurrent request).
"""

from __future__ import annotations

import ssl
import threading
import urllib.request
from dataclasses import dataclass

import httpx

from simpleai import __version__
from simpleai.audit import AuditStore, open_store
from simpleai.auth import JwksCache, TokenVerifier
from simpleai.auth.fetch import StdlibTransport
from simpleai.observability import logger
from simpleai.ollama import OllamaClient
from simpleai.resilience import CircuitBreaker, ResilientTransport, RetryPolicy
from simpleai.settings import Settings
from simpleai.tls import verifying_context
from simpleai.transport import Connect, Http11Transport, Timeouts

USER_AGENT = f"simpleai-gateway/{__version__}"


@dataclass
class Components:
    settings: Settings
    verifier: TokenVerifier
    jwks: JwksCache
    ollama: OllamaClient
    audit: AuditStore
    breaker: CircuitBreaker
    generation: int


_lock = threading.Lock()
_settings: Settings | None = None
_jwks: JwksCache | None = None
_breaker: CircuitBreaker | None = None
_generation = 0
_local = threading.local()
_ollama_connect: Connect | None = None


def configure(settings: Settings | None, *, ollama_connect: Connect | None = None) -> None:
    """Use `settings` from now on (None: read the environment on next use); drops built objects.

    `ollama_connect` replaces how the Ollama transport opens a connection (the benchmarks
    answer in-process with it); everything above the socket is as in production.
    """
    global _settings, _jwks, _breaker, _generation, _ollama_connect
    with _lock:
        _settings = settings
        _jwks = None
        _breaker = None
        _ollama_connect = ollama_connect
        _generation += 1
    if settings is not None:
        logger.setLevel(settings.log_level)


def settings() -> Settings:
    global _settings
    with _lock:
        if _settings is None:
            _settings = Settings.from_env()
            logger.setLevel(_settings.log_level)
        return _settings


def components() -> Components:
    """This thread's components, built on first use and rebuilt after `configure`."""
    current: Components | None = getattr(_local, "components", None)
    if current is not None and current.generation == _generation:
        return current
    if current is not None:
        current.audit.close()
    built = _build(settings())
    _local.components = built
    return built


def _build(config: Settings) -> Components:
    jwks = _shared_jwks(config)
    verifier = TokenVerifier(
        jwks,
        issuer=config.oidc_issuer,
        audience=config.oidc_audience,
        leeway=config.oidc_leeway_seconds,
        allowed_client_ids=config.oidc_allowed_client_ids,
        required_scopes=config.oidc_required_scopes,
    )
    transport = ResilientTransport(
        Http11Transport(
            config.ollama_base_url,
            headers={"User-Agent": USER_AGENT, **config.ollama_headers},
            # https is verified with tls.verifying_context(), built on the first connection,
            # where a CA bundle that cannot be loaded is a failed connection (a 502 saying so).
            max_idle=8,
            keepalive_expiry=60,
            connect=_ollama_connect,
        ),
        policy=RetryPolicy(max_retries=config.ollama_max_retries),
        breaker=_shared_breaker(config),
        base_url=config.ollama_base_url,
    )
    ollama = OllamaClient(
        transport,
        config.ollama_base_url,
        timeouts=Timeouts(
            connect=config.ollama_connect_timeout_seconds,
            read=config.ollama_timeout_seconds,
            write=config.ollama_timeout_seconds,
        ),
    )
    audit = open_store(config)
    return Components(
        settings=config,
        verifier=verifier,
        jwks=jwks,
        ollama=ollama,
        breaker=_shared_breaker(config),
        audit=audit,
        generation=_generation,
    )


def _shared_breaker(config: Settings) -> CircuitBreaker:
    """One breaker per process: every warm worker stops calling a dead Ollama together."""
    global _breaker
    with _lock:
        if _breaker is None:
            _breaker = CircuitBreaker(
                threshold=config.ollama_breaker_threshold,
                cooldown=config.ollama_breaker_cooldown_seconds,
            )
        return _breaker


def _shared_jwks(config: Settings) -> JwksCache:
    global _jwks
    with _lock:
        if _jwks is None:
            _jwks = JwksCache(
                JsonFetcher(),
                issuer=config.oidc_issuer,
                jwks_url=config.oidc_jwks_url,
                ttl=config.oidc_jwks_ttl_seconds,
                refresh_cooldown=config.oidc_jwks_refresh_cooldown,
                stale_seconds=config.oidc_jwks_stale_seconds,
            )
        return _jwks


class JsonFetcher:
    """GETs JSON documents (the OIDC discovery document, the JWKS), one client per scheme built
    on first use, over the standard library's http.client (auth/fetch.py); tests may hand it
    the client to use."""

    def __init__(self, http: httpx.Client | None = None) -> None:
        self._http = http
        self._clients: dict[bool, httpx.Client] = {}

    def __call__(self, url: str) -> object:
        try:
            response = self._client(url).get(url)
            response.raise_for_status()
            return response.json()
        except httpx.HTTPError as exc:
            # The cause's text goes to the log (jwks.py): "certificate verify failed" tells
            # an operator more than the class name. The URLs are the provider's public ones.
            raise OSError(f"GET {url} failed: {type(exc).__name__}: {exc}") from exc

    def _client(self, url: str) -> httpx.Client:
        if self._http is not None:
            return self._http
        secure = url.startswith("https://")
        client = self._clients.get(secure)
        if client is None:
            context = tls_context(url)
            client = httpx.Client(
                timeout=5.0,
                headers={"User-Agent": USER_AGENT},
                verify=context or False,
                # Given a transport, httpx ignores HTTP(S)_PROXY: where one is set, httpx's own
                # transports (and their proxy support) serve instead.
                transport=None if _proxy_configured() else StdlibTransport(context),
            )
            self._clients[secure] = client
        return client


def _proxy_configured() -> bool:
    """Whether the environment names a proxy for http or https (as httpx reads it)."""
    return bool({"http", "https", "all"} & set(urllib.request.getproxies()))


def tls_context(url: str) -> ssl.SSLContext | None:
    """What a client for `url` verifies TLS with: the process's context (simpleai/tls.py), or
    None for a plain http:// URL, so that such a client never loads a CA bundle."""
    if url.startswith("http://"):
        return None
    return verifying_context()
