"""The TLS context the gateway's https clients (to Ollama and to the identity provider) verify
servers with, one per process.

Its CAs are chosen as httpx and OpenSSL choose them: the bundle named by `SSL_CERT_FILE`, else
the directory named by `SSL_CERT_DIR`, else certifi's bundle. So an operator whose Ollama or
identity provider has a certificate from an internal CA trusts that CA by setting one variable
on the function, as for any other Python HTTP client.

It is built on the first https connection, not at import: loading a CA bundle takes 40-120 ms
of a cold start, which a function reaching its servers over http:// would pay for nothing.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Mapping

import certifi


class CaBundleError(OSError):
    """The CAs `SSL_CERT_FILE` or `SSL_CERT_DIR` names cannot be loaded."""


_lock = threading.Lock()
_context: ssl.SSLContext | None = None


def verifying_context() -> ssl.SSLContext:
    """The process's context, built on the first call."""
    global _context
    with _lock:
        if _context is None:
            _context = build(os.environ)
        return _context


def build(environ: Mapping[str, str]) -> ssl.SSLContext:
    """A client context verifying certificates and host names against the CAs `environ`
    names. A bundle that cannot be loaded is a `CaBundleError` naming the variable, which the
    clients report as a failed connection."""
    cafile, capath = environ.get("SSL_CERT_FILE"), environ.get("SSL_CERT_DIR")
    variable, location = ("SSL_CERT_FILE", cafile) if cafile else ("SSL_CERT_DIR", capath)
    if not location:
        return ssl.create_default_context(cafile=certifi.where())
    try:
        return ssl.create_default_context(cafile=cafile or None, capath=None if cafile else capath)
    except OSError as exc:  # ssl.SSLError is one too
        raise CaBundleError(f"the CAs {variable}={location} names cannot be loaded: {exc}") from exc
