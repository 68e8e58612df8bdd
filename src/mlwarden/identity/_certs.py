"""Client certificates: map a verified peer certificate to a Principal.

The certificate arrives either as DER from the gateway's own TLS termination, or inside
Envoy's `x-forwarded-client-cert` header (XFCC). The header is believed only from a
configured proxy address and only when it describes exactly one client (Envoy's
`SANITIZE_SET`): with `APPEND_FORWARD`, earlier elements were written by whoever sent the
request, so a header with several elements is refused rather than guessed at.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from mlwarden.errors import (
    IdentityConfigError,
    UnknownClientCertificateError,
    UntrustedProxyHeaderError,
)
from mlwarden.identity._config import ClientCertEntryConfig
from mlwarden.identity._principal import Principal

if TYPE_CHECKING:
    from cryptography import x509

MAX_XFCC_CHARS = 16384
_PROXY_CACHE_SIZE = 4096


def parse_xfcc(value: str) -> list[dict[str, str]]:
    """Parse an XFCC header into its elements (`,`-separated) of `key=value` pairs (`;`).

    Values may be double-quoted, and inside quotes `,`, `;` and `=` are literal and `\\"`
    is a quote. Keys are case-insensitive (returned lower-case). A malformed header raises.
    """
    if len(value) > MAX_XFCC_CHARS:
        raise UntrustedProxyHeaderError("client certificate header is too long")
    elements: list[dict[str, str]] = []
    pairs: dict[str, str] = {}
    i, n = 0, len(value)
    while i < n:
        eq = value.find("=", i)
        if eq < 0:
            raise UntrustedProxyHeaderError("client certificate header is malformed (no '=')")
        key = value[i:eq].strip().lower()
        if not key or any(c in key for c in ',;"'):
            raise UntrustedProxyHeaderError("client certificate header has a malformed key")
        i = eq + 1
        if i < n and value[i] == '"':
            i += 1
            chars: list[str] = []
            while True:  # str.find, not a per-character loop: the Cert value is ~1 KB
                quote_at = value.find('"', i)
                if quote_at < 0:
                    raise UntrustedProxyHeaderError("client certificate header has an open quote")
                escape_at = value.find("\\", i, quote_at)
                if escape_at < 0:
                    chars.append(value[i:quote_at])
                    i = quote_at + 1
                    break
                chars.append(value[i:escape_at])
                chars.append(value[escape_at + 1])
                i = escape_at + 2
            item = "".join(chars)
        else:
            end = i
            while end < n and value[end] not in ",;":
                end += 1
            item = value[i:end].strip()
            i = end
        if key in pairs:
            raise UntrustedProxyHeaderError(f"client certificate header repeats {key!r}")
        pairs[key] = item
        if i < n and value[i] not in ",;":
            raise UntrustedProxyHeaderError("client certificate header is malformed after a quote")
        if i < n and value[i] == ",":
            elements.append(pairs)
            pairs = {}
        i += 1
    if pairs:
        elements.append(pairs)
    return elements


@dataclass(frozen=True, slots=True, kw_only=True)
class _CertFacts:
    """What a certificate says, parsed once and cached by the sha256 of its DER."""

    principal: Principal | None
    not_before: float
    not_after: float
    issued_by_trusted_ca: bool
    names: str  # for the error message


class ClientCertMapper:
    def __init__(
        self,
        entries: Iterable[ClientCertEntryConfig],
        *,
        ca_file: Path | None,
        trusted_proxies: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network],
        cache_size: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._by_uri: dict[str, Principal] = {}
        self._by_dns: dict[str, Principal] = {}
        self._by_cn: dict[str, Principal] = {}
        for entry in entries:
            principal = Principal(
                id=entry.principal,
                method="mtls",
                roles=frozenset(entry.roles),
                tenant=entry.tenant,
                clearance=entry.clearance,
            )
            if entry.uri is not None:
                self._by_uri[entry.uri] = principal
            elif entry.dns is not None:
                self._by_dns[entry.dns.lower()] = principal
            elif entry.common_name is not None:
                self._by_cn[entry.common_name] = principal
        self._cas = _load_cas(ca_file) if ca_file is not None else None
        self._proxies = tuple(trusted_proxies)
        self._cache_size = cache_size
        self._cache: dict[bytes, _CertFacts] = {}
        self._xfcc_cache: dict[str, tuple[bytes, bytes]] = {}  # header -> (DER, its sha256)
        self._proxy_cache: dict[str, bool] = {}  # ipaddress parsing costs microseconds
        self._clock = clock

    def is_trusted_proxy(self, client_addr: str | None) -> bool:
        if client_addr is None or not self._proxies:
            return False
        known = self._proxy_cache.get(client_addr)
        if known is not None:
            return known
        try:
            address = ipaddress.ip_address(client_addr)
        except ValueError:
            trusted = False
        else:
            trusted = any(address in network for network in self._proxies)
        if len(self._proxy_cache) >= _PROXY_CACHE_SIZE:
            self._proxy_cache.pop(next(iter(self._proxy_cache)), None)
        self._proxy_cache[client_addr] = trusted
        return trusted

    def from_xfcc(self, value: str, client_addr: str | None) -> Principal:
        if not self.is_trusted_proxy(client_addr):
            raise UntrustedProxyHeaderError(
                f"client certificate header from {client_addr or 'an unknown address'}, "
                "which is not a trusted proxy",
                hint="list the proxy in identity.mtls.trusted_proxies",
            )
        # A header that passed every check below is remembered (value -> DER): a proxy sends
        # the same header for every request of a client, and parsing ~1 KB costs ~40 µs.
        cached = self._xfcc_cache.get(value)
        if cached is None:
            der = _der_from_xfcc(value)
            cached = (der, hashlib.sha256(der).digest())
            if self._cache_size:
                if len(self._xfcc_cache) >= self._cache_size:
                    self._xfcc_cache.pop(next(iter(self._xfcc_cache)), None)
                self._xfcc_cache[value] = cached
        return self._principal(*cached)

    def from_der(self, der: bytes) -> Principal:
        return self._principal(der, hashlib.sha256(der).digest())

    def _principal(self, der: bytes, digest: bytes) -> Principal:
        facts = self._cache.get(digest)
        if facts is None:
            facts = self._facts(der)
            if self._cache_size:
                if len(self._cache) >= self._cache_size:
                    self._cache.pop(next(iter(self._cache)), None)
                self._cache[digest] = facts
        now = self._clock()
        if not facts.not_before <= now <= facts.not_after:
            raise UnknownClientCertificateError(
                f"client certificate {facts.names} is outside its validity period"
            )
        if not facts.issued_by_trusted_ca:
            raise UnknownClientCertificateError(
                f"client certificate {facts.names} is not issued by a trusted CA"
            )
        if facts.principal is None:
            raise UnknownClientCertificateError(
                f"client certificate {facts.names} maps to no configured client"
            )
        return facts.principal

    def _facts(self, der: bytes) -> _CertFacts:
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            raise UnknownClientCertificateError("client certificate does not parse") from None
        uris: list[str] = []
        dns: list[str] = []
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            uris = san.get_values_for_type(x509.UniformResourceIdentifier)
            dns = san.get_values_for_type(x509.DNSName)
        except x509.ExtensionNotFound:
            pass
        except ValueError:
            raise UnknownClientCertificateError(
                "client certificate extensions do not parse"
            ) from None
        cns = [
            a.value
            for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if isinstance(a.value, str)
        ]
        principal = (
            next((self._by_uri[u] for u in uris if u in self._by_uri), None)
            or next((self._by_dns[d.lower()] for d in dns if d.lower() in self._by_dns), None)
            or next((self._by_cn[c] for c in cns if c in self._by_cn), None)
        )
        names = ", ".join([*uris, *dns, *(f"CN={c}" for c in cns)]) or "(no names)"
        not_before = cert.not_valid_before_utc.timestamp()
        not_after = cert.not_valid_after_utc.timestamp()
        trusted = True
        if self._cas is not None:
            window = _issuer_window(cert, self._cas)
            trusted = window is not None
            if window is not None:  # the CA's own validity bounds the leaf's
                not_before, not_after = max(not_before, window[0]), min(not_after, window[1])
        return _CertFacts(
            principal=principal,
            not_before=not_before,
            not_after=not_after,
            issued_by_trusted_ca=trusted,
            names=names[:200],
        )


def _issuer_window(
    cert: x509.Certificate, cas: tuple[x509.Certificate, ...]
) -> tuple[float, float] | None:
    """The validity window of the trusted CA that signed `cert` directly, or None."""
    from cryptography.exceptions import InvalidSignature

    for ca in cas:
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue  # another issuer name, key type or signature: not this CA
        return ca.not_valid_before_utc.timestamp(), ca.not_valid_after_utc.timestamp()
    return None


def _der_from_xfcc(value: str) -> bytes:
    """The DER of the one client certificate an XFCC header describes, checked against `Hash`."""
    elements = parse_xfcc(value)
    if not elements:
        raise UntrustedProxyHeaderError("client certificate header is empty")
    if len(elements) != 1:
        raise UntrustedProxyHeaderError(
            "client certificate header describes several clients",
            hint="configure the proxy with forward_client_cert_details: SANITIZE_SET",
        )
    element = elements[0]
    pem = element.get("cert")
    if not pem:
        raise UntrustedProxyHeaderError(
            "client certificate header carries no Cert",
            hint="set set_current_client_cert_details: {cert: true} on the proxy",
        )
    der = _pem_to_der(unquote(pem))
    stated_hash = element.get("hash")
    if stated_hash is not None and not hmac.compare_digest(
        stated_hash.lower().encode(), hashlib.sha256(der).hexdigest().encode()
    ):
        raise UntrustedProxyHeaderError("client certificate header Hash does not match Cert")
    return der


def _pem_to_der(pem: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise UntrustedProxyHeaderError(
            "client certificate header Cert is not a PEM certificate"
        ) from None
    return cert.public_bytes(Encoding.DER)


def _load_cas(path: Path) -> tuple[x509.Certificate, ...]:
    from cryptography import x509

    try:
        cas = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise IdentityConfigError(f"cannot read CA file {path}: {exc.strerror}") from None
    except ValueError:
        raise IdentityConfigError(f"CA file {path} holds no PEM certificate") from None
    return tuple(cas)
