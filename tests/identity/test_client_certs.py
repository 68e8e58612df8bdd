"""Client certificates: own TLS termination (DER) and Envoy's XFCC from trusted proxies only."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import ValidationError

from mlwarden.errors import (
    MissingCredentialsError,
    UnknownClientCertificateError,
    UntrustedProxyHeaderError,
)
from mlwarden.identity import Authenticator, IdentityConfig, parse_xfcc

from .conftest import CA, NOW, Clock, make_ca, make_client_cert

SPIFFE = "spiffe://acme.test/ns/ml/sa/scorer"


@pytest.fixture(scope="module")
def ca() -> CA:
    return make_ca()


def mtls(
    tmp_path: Path, ca: CA | None, *, clock: Clock | None = None, **extra: Any
) -> Authenticator:
    section: dict[str, Any] = {
        "clients": [
            {"principal": "scorer", "uri": SPIFFE, "roles": ["service"], "tenant": "acme"},
            {"principal": "web", "dns": "web.acme.test"},
            {"principal": "ops", "common_name": "ops-laptop", "clearance": 5},
        ],
        "trusted_proxies": ["10.0.0.0/24", "::1/128"],
    }
    if ca is not None:
        (tmp_path / "ca.pem").write_bytes(ca.cert.public_bytes(Encoding.PEM))
        section["ca_file"] = str(tmp_path / "ca.pem")
    section.update(extra)
    return Authenticator(IdentityConfig.model_validate({"mtls": section}), clock=clock or Clock())


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def xfcc_for(cert: x509.Certificate, **fields: str) -> str:
    pem = cert.public_bytes(Encoding.PEM).decode()
    parts = [f"Hash={hashlib.sha256(der(cert)).hexdigest()}", f'Cert="{quote(pem, safe="")}"']
    parts += [f'{k}="{v}"' for k, v in fields.items()]
    return ";".join(parts)


def test_peer_certificate_maps_by_uri_dns_and_cn(tmp_path: Path, ca: CA) -> None:
    auth = mtls(tmp_path, ca)
    by_uri = auth.authenticate(
        {}, peer_cert_der=der(make_client_cert(ca, uris=(SPIFFE,))), client_addr="192.0.2.1"
    )
    assert (by_uri.id, by_uri.method, by_uri.roles, by_uri.tenant) == (
        "scorer",
        "mtls",
        frozenset({"service"}),
        "acme",
    )
    by_dns = make_client_cert(ca, dns=("WEB.acme.test",))
    assert auth.authenticate({}, peer_cert_der=der(by_dns), client_addr=None).id == "web"
    by_cn = make_client_cert(ca, cn="ops-laptop")
    assert auth.authenticate({}, peer_cert_der=der(by_cn), client_addr=None).clearance == 5


def test_unmapped_expired_or_foreign_certificates_are_refused(tmp_path: Path, ca: CA) -> None:
    clock = Clock()
    auth = mtls(tmp_path, ca, clock=clock)
    with pytest.raises(UnknownClientCertificateError, match="maps to no configured client") as info:
        auth.authenticate(
            {}, peer_cert_der=der(make_client_cert(ca, cn="stranger")), client_addr=None
        )
    assert (info.value.code, info.value.http_status) == ("E307", 401)

    foreign = make_client_cert(make_ca("Other CA"), uris=(SPIFFE,))
    with pytest.raises(UnknownClientCertificateError, match="not issued by a trusted CA"):
        auth.authenticate({}, peer_cert_der=der(foreign), client_addr=None)

    short_lived = make_client_cert(ca, uris=(SPIFFE,), days=2)
    assert auth.authenticate({}, peer_cert_der=der(short_lived), client_addr=None).id == "scorer"
    clock.now = NOW + 2 * 86400  # the parsed certificate is cached, its validity is not
    with pytest.raises(UnknownClientCertificateError, match="outside its validity period"):
        auth.authenticate({}, peer_cert_der=der(short_lived), client_addr=None)

    with pytest.raises(UnknownClientCertificateError, match="does not parse"):
        auth.authenticate({}, peer_cert_der=b"\x30\x03junk", client_addr=None)


def test_without_a_ca_file_the_tls_layer_is_trusted(tmp_path: Path, ca: CA) -> None:
    foreign = make_client_cert(make_ca("Other CA"), uris=(SPIFFE,))
    auth = mtls(tmp_path, None)
    assert auth.authenticate({}, peer_cert_der=der(foreign), client_addr=None).id == "scorer"


@pytest.mark.parametrize("proxy", ["10.0.0.7", "::1"])
def test_xfcc_from_a_trusted_proxy(tmp_path: Path, ca: CA, proxy: str) -> None:
    cert = make_client_cert(ca, uris=(SPIFFE,))
    header = xfcc_for(cert, Subject="CN=client", URI=SPIFFE)
    auth = mtls(tmp_path, ca)
    principal = auth.authenticate(
        {"x-forwarded-client-cert": header}, peer_cert_der=None, client_addr=proxy
    )
    assert principal.id == "scorer"


@pytest.mark.parametrize("client_addr", ["10.0.1.7", "127.0.0.1", None, "not-an-ip"])
def test_xfcc_from_an_untrusted_address_is_refused(
    tmp_path: Path, ca: CA, client_addr: str | None
) -> None:
    header = xfcc_for(make_client_cert(ca, uris=(SPIFFE,)))
    auth = mtls(tmp_path, ca)
    with pytest.raises(UntrustedProxyHeaderError, match="not a trusted proxy") as info:
        auth.authenticate(
            {"x-forwarded-client-cert": header}, peer_cert_der=None, client_addr=client_addr
        )
    assert (info.value.code, info.value.http_status) == ("E306", 401)


def test_forged_xfcc_is_refused_even_beside_a_real_peer_certificate(tmp_path: Path, ca: CA) -> None:
    """An untrusted client that sends XFCC is trying to borrow an identity: refuse the request."""
    auth = mtls(tmp_path, ca)
    own = der(make_client_cert(ca, cn="ops-laptop"))
    header = xfcc_for(make_client_cert(ca, uris=(SPIFFE,)))
    with pytest.raises(UntrustedProxyHeaderError):
        auth.authenticate(
            {"x-forwarded-client-cert": header}, peer_cert_der=own, client_addr="192.0.2.9"
        )


def test_xfcc_refusals(tmp_path: Path, ca: CA) -> None:
    auth = mtls(tmp_path, ca)
    cert = make_client_cert(ca, uris=(SPIFFE,))
    other = make_client_cert(ca, dns=("web.acme.test",))
    pem = quote(cert.public_bytes(Encoding.PEM).decode(), safe="")
    cases = {
        f"{xfcc_for(other)},{xfcc_for(cert)}": "several clients",
        f'Hash={"0" * 64};Subject="CN=x"': "carries no Cert",
        f'Hash={"0" * 64};Cert="{pem}"': "Hash does not match Cert",
        'Cert="-----BEGIN CERTIFICATE-----%0Agarbage%0A-----END CERTIFICATE-----%0A"': "not a PEM",
        'Cert="unterminated': "open quote",
        "Cert": "no '='",
        "By=a;By=b": "repeats 'by'",
        'Cert="a"x': "malformed after a quote",
        "": "is empty",
    }
    for header, message in cases.items():
        with pytest.raises(UntrustedProxyHeaderError, match=message):
            auth.authenticate(
                {"x-forwarded-client-cert": header}, peer_cert_der=None, client_addr="10.0.0.1"
            )


def test_parse_xfcc_quoting() -> None:
    value = 'By=spiffe://a;Hash=ab;Subject="CN=x,O=a;b=c \\"q\\"";URI=spiffe://c,By=z;Hash=cd'
    assert parse_xfcc(value) == [
        {"by": "spiffe://a", "hash": "ab", "subject": 'CN=x,O=a;b=c "q"', "uri": "spiffe://c"},
        {"by": "z", "hash": "cd"},
    ]
    with pytest.raises(UntrustedProxyHeaderError, match="too long"):
        parse_xfcc("a=" + "x" * 20000)


def test_no_certificate_and_no_header(tmp_path: Path, ca: CA) -> None:
    with pytest.raises(MissingCredentialsError):
        mtls(tmp_path, ca).authenticate({}, peer_cert_der=None, client_addr="10.0.0.1")


def test_client_entries_need_exactly_one_selector() -> None:
    with pytest.raises(ValidationError, match="exactly one of uri, dns or common_name"):
        IdentityConfig.model_validate(
            {"mtls": {"clients": [{"principal": "p", "uri": "a", "dns": "b"}]}}
        )
    with pytest.raises(ValidationError):
        IdentityConfig.model_validate(
            {"mtls": {"clients": [{"principal": "p", "dns": "b"}], "trusted_proxies": ["nope"]}}
        )
