"""Keys, key sets, tokens, certificates and a local JWKS server, all made at test time."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "https://idp.test"
AUDIENCE = "mlwarden-gateway"
NOW = 1_900_000_000.0


class Clock:
    """A frozen clock the tests move by hand."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        maker = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}[self.algorithm]
        data: dict[str, Any] = maker.to_jwk(public, as_dict=True)
        data.update(kid=self.kid, use="sig", alg=self.algorithm)
        return data


def make_key(algorithm: str, kid: str) -> SigningKey:
    if algorithm == "RS256":
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif algorithm == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        private = ed25519.Ed25519PrivateKey.generate()
    return SigningKey(kid=kid, algorithm=algorithm, private=private)


@pytest.fixture(scope="session")
def keys() -> dict[str, SigningKey]:
    return {
        "ES256": make_key("ES256", "es-1"),
        "RS256": make_key("RS256", "rs-1"),
        "EdDSA": make_key("EdDSA", "ed-1"),
    }


def write_jwks(path: Path, *signing_keys: SigningKey) -> Path:
    path.write_text(json.dumps({"keys": [k.jwk() for k in signing_keys]}))
    return path


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "exp": int(NOW) + 600,
        "iat": int(NOW),
        "roles": ["analyst"],
        "tenant": "acme",
        "clearance": 2,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def mint(key: SigningKey, *, kid: str | None = "default", **overrides: Any) -> str:
    headers = {} if kid is None else {"kid": key.kid if kid == "default" else kid}
    return jwt.encode(claims(**overrides), key.private, algorithm=key.algorithm, headers=headers)


@dataclass
class JwksServer:
    """A tiny real HTTP server on 127.0.0.1 serving whatever `body` holds."""

    body: bytes = b'{"keys": []}'
    status: int = 200
    redirect_to: str | None = None
    hits: int = 0
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set_keys(self, *signing_keys: SigningKey) -> None:
        self.body = json.dumps({"keys": [k.jwk() for k in signing_keys]}).encode()


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    state = JwksServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.hits += 1
            if state.redirect_to is not None:
                self.send_response(302)
                self.send_header("Location", state.redirect_to)
                self.end_headers()
                return
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


# --- certificates ------------------------------------------------------------------------


@dataclass(frozen=True)
class CA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def make_ca(name: str = "Test CA") -> CA:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = datetime.fromtimestamp(NOW, UTC) - timedelta(days=30)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return CA(key=key, cert=cert)


def make_client_cert(
    ca: CA,
    *,
    cn: str = "client",
    uris: tuple[str, ...] = (),
    dns: tuple[str, ...] = (),
    days: int = 30,
) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    start = datetime.fromtimestamp(NOW, UTC) - timedelta(days=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
    )
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
    names += [x509.DNSName(d) for d in dns]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca.key, hashes.SHA256())
