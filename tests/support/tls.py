"""A certificate for a loopback TLS server, from a CA no system or certifi bundle holds: what
an Ollama or an identity provider behind an organisation's internal CA presents."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from simpleai import tls


@dataclass(frozen=True)
class Certified:
    server: ssl.SSLContext
    """For the server: a fresh self-signed certificate for 127.0.0.1 and its key."""
    ca_file: Path
    """The certificate, as the PEM file a client trusts it by."""

    def client(self) -> ssl.SSLContext:
        """A client context that trusts exactly this certificate."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def self_signed(folder: Path) -> Certified:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return Certified(server, cert_file)


def trusting(monkeypatch: pytest.MonkeyPatch, ca_file: Path | None) -> None:
    """From now on the gateway's clients trust the CAs of `ca_file` (SSL_CERT_FILE), or with
    None the default bundle: the process's context is built again on the next connection."""
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    if ca_file is None:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    else:
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    monkeypatch.setattr(tls, "_context", None)
