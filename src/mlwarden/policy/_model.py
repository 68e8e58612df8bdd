"""`mlwarden.yaml`: boundary models (pydantic, extra=forbid) and the core types they become."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlwarden.audit._config import AuditConfig
from mlwarden.authz._config import AuthorizationConfig
from mlwarden.budgets._config import BudgetsConfig
from mlwarden.errors import PolicyFileError
from mlwarden.identity._config import IdentityConfig
from mlwarden.serving._config import GatewayConfig

if TYPE_CHECKING:
    import yaml

    from mlwarden.assess._config import AssessConfig
    from mlwarden.detect._config import DetectorsConfig
    from mlwarden.update._config import UpdateConfig

_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")

# --- core types: what the rest of mlwarden uses ---------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class KeySigner:
    """A signer known by its public key's fingerprint (sha256 of the DER SubjectPublicKeyInfo).

    `public_key` is the PEM file of that key when the policy carries it; a key given on
    the command line (`--key`) counts only if its fingerprint is listed here.
    """

    fingerprint: str
    public_key: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class X509Signer:
    """A signer known by a certificate chain to `root` whose leaf names `subject` (CN or SAN)."""

    root: Path
    subject: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustedSigner:
    name: str
    identity: KeySigner | X509Signer
    not_before: datetime | None = None
    not_after: datetime | None = None

    def in_window(self, now: datetime) -> bool:
        if self.not_before is not None and now < self.not_before:
            return False
        return self.not_after is None or now <= self.not_after


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustPolicy:
    """Who may sign, how many distinct signers are needed, and which keys never count.

    The default instance trusts nobody: a missing or empty policy refuses everything.
    """

    signers: tuple[TrustedSigner, ...] = ()
    threshold: int = 1
    revoked: frozenset[str] = frozenset()

    @property
    def trusts_nothing(self) -> bool:
        return not self.signers

    @classmethod
    def single_key(cls, fingerprint: str, public_key: Path) -> TrustPolicy:
        """The policy `--key PUB` means on its own: exactly this key, once."""
        signer = TrustedSigner(
            name=f"key {public_key.name}",
            identity=KeySigner(fingerprint=fingerprint, public_key=public_key),
        )
        return cls(signers=(signer,), threshold=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyFile:
    """The whole `mlwarden.yaml`. Later sections (gates, detectors) join here.

    The gateway's sections stay the validated boundary models of their packages:
    each package converts its own section when it builds its store or checker.
    """

    version: int
    trust: TrustPolicy
    path: Path | None = None
    audit: AuditConfig | None = None
    budgets: BudgetsConfig | None = None
    identity: IdentityConfig | None = None
    authorization: AuthorizationConfig | None = None
    gateway: GatewayConfig | None = None
    detectors: DetectorsConfig | None = None
    assess: AssessConfig | None = None
    update: UpdateConfig | None = None


# --- boundary models: what the YAML may say -----------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _X509Model(_Strict):
    root: str = Field(min_length=1)
    subject: str = Field(min_length=1)


class _SignerModel(_Strict):
    name: str = Field(min_length=1)
    fingerprint: str | None = None
    public_key: str | None = Field(default=None, min_length=1)
    x509: _X509Model | None = None
    not_before: AwareDatetime | None = None
    not_after: AwareDatetime | None = None

    @model_validator(mode="after")
    def _one_identity(self) -> _SignerModel:
        if (self.fingerprint is None) == (self.x509 is None):
            raise ValueError("a signer needs exactly one of 'fingerprint' or 'x509'")
        if self.x509 is not None and self.public_key is not None:
            raise ValueError("'public_key' goes with 'fingerprint', not with 'x509'")
        if self.fingerprint is not None and not _FINGERPRINT.match(self.fingerprint):
            raise ValueError("'fingerprint' must be 64 lowercase hex digits (sha256 of the key)")
        if self.not_before and self.not_after and self.not_after < self.not_before:
            raise ValueError("'not_after' is before 'not_before'")
        return self


class _TrustModel(_Strict):
    threshold: int = Field(default=1, ge=1, le=1000)
    signers: list[_SignerModel] = Field(default_factory=list)
    revoked: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _coherent(self) -> _TrustModel:
        names = [s.name for s in self.signers]
        if len(set(names)) != len(names):
            raise ValueError("signer names must be unique")
        prints = [s.fingerprint for s in self.signers if s.fingerprint is not None]
        if len(set(prints)) != len(prints):
            # One key under two names would count twice towards the threshold.
            raise ValueError("a fingerprint is listed under two signers")
        if self.signers and self.threshold > len(self.signers):
            raise ValueError(
                f"threshold {self.threshold} can never be met by {len(self.signers)} signer(s)"
            )
        for fingerprint in self.revoked:
            if not _FINGERPRINT.match(fingerprint):
                raise ValueError(f"revoked entry {fingerprint!r} is not 64 lowercase hex digits")
        return self


class _PolicyModel(_Strict):
    version: Literal[1]
    trust: _TrustModel | None = None
    audit: AuditConfig | None = None
    budgets: BudgetsConfig | None = None
    identity: IdentityConfig | None = None
    authorization: AuthorizationConfig | None = None
    gateway: GatewayConfig | None = None
    # Sections of the heavier areas stay raw here and are validated by their own model
    # only when present: loading a trust policy must not import torch or scikit-learn.
    detectors: dict[str, Any] | None = None
    assess: dict[str, Any] | None = None
    update: dict[str, Any] | None = None


# --- loading ---------------------------------------------------------------------------------


def load_policy(path: Path) -> PolicyFile:
    """Read and validate `mlwarden.yaml`; relative file names resolve beside it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyFileError(f"policy file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyFileError(f"cannot read policy file {path}: {exc}") from None
    return parse_policy(text, base=path.parent, source=path)


def parse_policy(text: str, *, base: Path, source: Path | None = None) -> PolicyFile:
    """Validate policy text; `base` is the folder relative key and certificate paths start at."""
    import yaml

    where = str(source) if source is not None else "policy"
    try:
        data = yaml.load(text, Loader=_unique_key_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise PolicyFileError(f"{where}: not valid YAML: {_one_line(str(exc))}") from None
    except RecursionError:
        raise PolicyFileError(f"{where}: not valid YAML: nested too deeply") from None
    if data is None:
        # An empty file is a valid policy that trusts nothing.
        return PolicyFile(version=1, trust=TrustPolicy(), path=source)
    try:
        model = _PolicyModel.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise PolicyFileError(f"{where}: {field}: {first['msg']}") from None
    return PolicyFile(
        version=model.version,
        trust=_to_trust(model.trust, base),
        path=source,
        audit=model.audit,
        budgets=model.budgets,
        identity=model.identity,
        authorization=model.authorization,
        gateway=model.gateway,
        detectors=_section(where, "detectors", model.detectors),
        assess=_section(where, "assess", model.assess),
        update=_section(where, "update", model.update),
    )


def _section(where: str, name: str, raw: dict[str, Any] | None) -> Any:
    """Validate one lazily imported section with its area's model, or None when absent."""
    if raw is None:
        return None
    import importlib

    module, cls = _LAZY_SECTIONS[name]
    model = getattr(importlib.import_module(module), cls)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in (name, *first["loc"]))
        raise PolicyFileError(f"{where}: {field}: {first['msg']}") from None


_LAZY_SECTIONS = {
    "detectors": ("mlwarden.detect._config", "DetectorsConfig"),
    "assess": ("mlwarden.assess._config", "AssessConfig"),
    "update": ("mlwarden.update._config", "UpdateConfig"),
}


def _to_trust(model: _TrustModel | None, base: Path) -> TrustPolicy:
    if model is None:
        return TrustPolicy()
    signers = []
    for item in model.signers:
        identity: KeySigner | X509Signer
        if item.x509 is not None:
            identity = X509Signer(root=base / item.x509.root, subject=item.x509.subject)
        else:
            assert item.fingerprint is not None
            key = base / item.public_key if item.public_key is not None else None
            identity = KeySigner(fingerprint=item.fingerprint, public_key=key)
        signers.append(
            TrustedSigner(
                name=item.name,
                identity=identity,
                not_before=item.not_before,
                not_after=item.not_after,
            )
        )
    return TrustPolicy(
        signers=tuple(signers), threshold=model.threshold, revoked=frozenset(model.revoked)
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


@functools.cache
def _unique_key_loader() -> type[yaml.SafeLoader]:
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader that refuses duplicate keys: in a trust policy the last one must not win
        silently."""

    def construct_mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        keys = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in keys:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            keys.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return Loader
