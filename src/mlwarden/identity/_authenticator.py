"""Authenticator: one call per request that names the caller or refuses.

Which credential counts, in order:
1. An `authorization: Bearer <token>` header (when `identity.jwt` is configured).
2. The API key header (when `identity.api_keys` is configured).
3. A client certificate: the TLS peer certificate the gateway terminated itself, else the
   trusted proxy's XFCC header.

A bearer token together with an API key is refused (which one would the audit log name?).
A credential that is presented and fails is never passed over for another one: the
request is refused. An XFCC header from an address that is not a trusted proxy is refused
outright, whatever else the request carries, since it is an attempt to forge an identity.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from mlwarden.errors import InvalidTokenError, MissingCredentialsError
from mlwarden.identity._apikeys import ApiKeyStore
from mlwarden.identity._certs import ClientCertMapper
from mlwarden.identity._config import IdentityConfig
from mlwarden.identity._jwt import JwtVerifier
from mlwarden.identity._principal import Principal


class Authenticator:
    """Built once from the `identity:` configuration; `authenticate` is the hot-path call.

    Header names must be lower-case (as ASGI delivers them). Relative paths in the
    configuration are resolved against `base_dir` (the directory of mlwarden.yaml).
    `clock` (unix seconds) is for tests that freeze time.
    """

    def __init__(
        self,
        config: IdentityConfig,
        *,
        base_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        config = _resolve_paths(config, base_dir)
        self._jwt = JwtVerifier(config.jwt, clock=clock) if config.jwt is not None else None
        self._api_keys = ApiKeyStore(config.api_keys.keys) if config.api_keys is not None else None
        self._api_key_header = config.api_keys.header if config.api_keys is not None else None
        self._certs: ClientCertMapper | None = None
        self._xfcc_header: str | None = None
        if config.mtls is not None:
            self._certs = ClientCertMapper(
                config.mtls.clients,
                ca_file=config.mtls.ca_file,
                trusted_proxies=config.mtls.trusted_proxies,
                cache_size=config.mtls.cache_size,
                clock=clock,
            )
            self._xfcc_header = config.mtls.xfcc_header
        self._credential_headers = frozenset(
            name
            for name in ("authorization", self._api_key_header, self._xfcc_header)
            if name is not None
        )

    def headers_from_asgi(self, raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
        """ASGI `scope["headers"]` as the dict `authenticate` takes, refusing a repeated
        credential header: with two `authorization` headers, a proxy and the gateway could
        each read a different one.
        """
        headers: dict[str, str] = {}
        credential_names = self._credential_headers
        for name_bytes, value_bytes in raw:
            name = name_bytes.decode("latin-1").lower()
            if name in headers and name in credential_names:
                raise InvalidTokenError(f"the {name!r} header is repeated")
            headers[name] = value_bytes.decode("latin-1")
        return headers

    def prefetch(self) -> None:
        """Fetch a remote JWKS now (may raise E308).

        Call at start-up, then every `jwks_cache_seconds / 2` from a background thread: the
        hot path then always finds a fresh key set and never waits on the network.
        """
        if self._jwt is not None:
            self._jwt.prefetch()

    def clear_caches(self) -> None:
        """Forget every verified token (e.g. after an operator revokes a signing key)."""
        if self._jwt is not None:
            self._jwt.clear_cache()

    def authenticate(
        self,
        headers: Mapping[str, str],
        *,
        peer_cert_der: bytes | None,
        client_addr: str | None,
    ) -> Principal:
        """The Principal behind this request, or an IdentityError (E301-E308)."""
        xfcc = headers.get(self._xfcc_header) if self._xfcc_header is not None else None
        certs = self._certs
        if xfcc is not None and certs is not None and not certs.is_trusted_proxy(client_addr):
            certs.from_xfcc(xfcc, client_addr)  # raises E306 naming the address
        authorization = headers.get("authorization")
        api_key = headers.get(self._api_key_header) if self._api_key_header is not None else None
        if authorization is not None:
            if api_key is not None:
                raise InvalidTokenError("send one credential: a bearer token or an API key")
            return self._bearer(authorization)
        if api_key is not None and self._api_keys is not None:
            return self._api_keys.lookup(api_key)
        if self._certs is not None:
            if peer_cert_der is not None:
                return self._certs.from_der(peer_cert_der)
            if xfcc is not None:
                return self._certs.from_xfcc(xfcc, client_addr)
        raise MissingCredentialsError(
            "no credential: send a bearer token, an API key or a client certificate"
        )

    def _bearer(self, authorization: str) -> Principal:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidTokenError("authorization header is not 'Bearer <token>'")
        if self._jwt is None:
            raise InvalidTokenError("bearer tokens are not accepted here")
        return self._jwt.verify(token.strip())


def _resolve_paths(config: IdentityConfig, base_dir: Path | None) -> IdentityConfig:
    if base_dir is None:
        return config

    def resolve(path: Path | None) -> Path | None:
        return None if path is None else base_dir / path

    jwt, mtls = config.jwt, config.mtls
    if jwt is not None:
        jwt = jwt.model_copy(
            update={
                "jwks_file": resolve(jwt.jwks_file),
                "hs256_secret_file": resolve(jwt.hs256_secret_file),
            }
        )
    if mtls is not None:
        mtls = mtls.model_copy(update={"ca_file": resolve(mtls.ca_file)})
    return config.model_copy(update={"jwt": jwt, "mtls": mtls})
