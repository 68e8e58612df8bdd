"""The `identity:` section of mlwarden.yaml (pydantic boundary models, extra=forbid)."""

from __future__ import annotations

import re
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

JwtAlgorithm = Literal["RS256", "ES256", "EdDSA", "HS256"]
ASYMMETRIC_ALGORITHMS: frozenset[str] = frozenset({"RS256", "ES256", "EdDSA"})
_DEFAULT_ALGORITHMS: tuple[JwtAlgorithm, ...] = ("ES256", "RS256", "EdDSA")
_HEADER_NAME = r"^[a-z0-9-]+$"
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrincipalAttributesConfig(_Strict):
    """Attributes given to a principal that carries none of its own (API keys, certificates)."""

    principal: str = Field(min_length=1, max_length=256)
    roles: list[str] = Field(default_factory=list)
    tenant: str = ""
    clearance: int = Field(default=0, ge=0)


class JwtConfig(_Strict):
    """Bearer tokens: who issues them, for whom, signed how, with which keys.

    Asymmetric algorithms take keys from a JWKS (file or URL). HS256 is off unless listed in
    `algorithms` *and* given a secret file: a shared secret lets anyone holding it mint
    tokens, so it is never a default.
    """

    issuer: str = Field(min_length=1)
    audience: list[str] = Field(min_length=1)
    algorithms: list[JwtAlgorithm] = Field(default_factory=lambda: list(_DEFAULT_ALGORITHMS))
    jwks_file: Path | None = None
    jwks_url: str | None = None
    allow_http_jwks: bool = False
    jwks_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    jwks_cache_seconds: float = Field(default=300.0, ge=0)
    jwks_min_refresh_seconds: float = Field(default=30.0, ge=0)
    jwks_max_stale_seconds: float = Field(default=3600.0, ge=0)
    hs256_secret_file: Path | None = None
    clock_skew_seconds: float = Field(default=30.0, ge=0, le=300)
    max_token_bytes: int = Field(default=8192, ge=256, le=65536)
    cache_size: int = Field(default=10_000, ge=0)
    cache_max_seconds: float = Field(default=300.0, ge=0)
    subject_claim: str = "sub"
    roles_claim: str = "roles"
    tenant_claim: str = "tenant"
    clearance_claim: str = "clearance"

    @field_validator("audience", mode="before")
    @classmethod
    def _one_audience(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _coherent(self) -> JwtConfig:
        algorithms = set(self.algorithms)
        if not algorithms:
            raise ValueError("jwt.algorithms: list at least one algorithm")
        if "HS256" in algorithms and self.hs256_secret_file is None:
            raise ValueError("jwt.algorithms lists HS256 but jwt.hs256_secret_file is not set")
        if self.hs256_secret_file is not None and "HS256" not in algorithms:
            raise ValueError("jwt.hs256_secret_file is set but jwt.algorithms does not list HS256")
        needs_keys = bool(algorithms & ASYMMETRIC_ALGORITHMS)
        sources = (self.jwks_file is not None) + (self.jwks_url is not None)
        if needs_keys and sources != 1:
            raise ValueError("jwt: set exactly one of jwks_file or jwks_url")
        if self.jwks_url is not None:
            parts = urlsplit(self.jwks_url)
            if parts.scheme not in ("https", "http") or not parts.hostname:
                raise ValueError("jwt.jwks_url must be an https:// URL")
            if parts.scheme == "http" and not self.allow_http_jwks:
                raise ValueError(
                    "jwt.jwks_url uses plain http: anyone on the path could swap the keys "
                    "(set jwt.allow_http_jwks: true only for a local test server)"
                )
        return self


class ApiKeyEntryConfig(PrincipalAttributesConfig):
    """One API key, stored only as the sha256 of the key (lower-case hex)."""

    sha256: str

    @model_validator(mode="after")
    def _hex(self) -> ApiKeyEntryConfig:
        if not _SHA256_HEX.fullmatch(self.sha256):
            raise ValueError("api_keys.keys[].sha256 must be 64 lower-case hex characters")
        return self


class ApiKeysConfig(_Strict):
    header: str = Field(default="x-api-key", pattern=_HEADER_NAME)
    keys: list[ApiKeyEntryConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> ApiKeysConfig:
        hashes = [entry.sha256 for entry in self.keys]
        if len(hashes) != len(set(hashes)):
            raise ValueError("api_keys.keys: the same key hash is listed twice")
        return self


class ClientCertEntryConfig(PrincipalAttributesConfig):
    """One client identity, matched by exactly one of a SAN URI, a SAN DNS name, a subject CN."""

    uri: str | None = None
    dns: str | None = None
    common_name: str | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> ClientCertEntryConfig:
        if (self.uri is not None) + (self.dns is not None) + (self.common_name is not None) != 1:
            raise ValueError("mtls.clients[]: set exactly one of uri, dns or common_name")
        return self


class MtlsConfig(_Strict):
    """Client certificates: from the gateway's own TLS, or from a trusted proxy's XFCC header.

    `ca_file` (PEM, one or more CA certificates) is checked again here even when the TLS
    layer already did: a proxy header is only as good as the proxy, so the leaf must be
    issued directly by one of these CAs.
    """

    clients: list[ClientCertEntryConfig] = Field(min_length=1)
    ca_file: Path | None = None
    trusted_proxies: list[IPv4Network | IPv6Network] = Field(default_factory=list)
    xfcc_header: str = Field(default="x-forwarded-client-cert", pattern=_HEADER_NAME)
    cache_size: int = Field(default=1024, ge=0)


class IdentityConfig(_Strict):
    """The `identity:` section. At least one method: no identity, no service."""

    jwt: JwtConfig | None = None
    api_keys: ApiKeysConfig | None = None
    mtls: MtlsConfig | None = None

    @model_validator(mode="after")
    def _some_method(self) -> IdentityConfig:
        if self.jwt is None and self.api_keys is None and self.mtls is None:
            raise ValueError("identity: configure at least one of jwt, api_keys or mtls")
        return self
