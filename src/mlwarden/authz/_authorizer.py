"""Cedar authorization with prepared policies, hot reload, and a decision cache.

cedarpy re-parses policies passed as a string on every call; a `cedarpy.PolicySet` handle is
parsed once and reused, which is what this module keeps. Decisions are cached by everything
that can change them: the principal's attributes, the action, the model's attributes and the
policy version. A reload bumps the version and empties the cache, so no decision made under
an old policy is served after a new one is in force.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlwarden.authz._config import AuthorizationConfig
from mlwarden.authz._model import Action, Decision, ModelResource
from mlwarden.errors import AccessDeniedError, MissingExtraError, PolicyParseError
from mlwarden.identity import Principal

if TYPE_CHECKING:
    import cedarpy

PRINCIPAL_TYPE = "Mlwarden::User"
RESOURCE_TYPE = "Mlwarden::Model"
ACTION_TYPE = "Mlwarden::Action"
MAX_POLICY_BYTES = 1 << 20

_CacheKey = tuple[str, str, frozenset[str], str, int, str, ModelResource, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Loaded:
    policies: cedarpy.PolicySet
    version: int
    digest: str


class Authorizer:
    """`is_authorized(principal, action, model) -> Decision`; no policy means deny.

    Policy files are re-read at most every `reload_check_seconds` (on the next call) and
    swapped in when their content changed and parses; a file that does not parse is refused,
    the old policy stays, and `last_reload_error` says why. `reload()` does the same at once
    and raises E311 on a bad file.
    """

    def __init__(
        self,
        config: AuthorizationConfig,
        *,
        base_dir: Path | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._files = tuple(
            (base_dir / p) if base_dir is not None else p for p in config.policy_files
        )
        self._interval = config.reload_check_seconds
        self._cache_size = config.decision_cache_size
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cache: dict[_CacheKey, Decision] = {}
        self._rejected_digest: str | None = None
        self.last_reload_error: PolicyParseError | None = None
        texts = self._read_all()
        self._loaded = _Loaded(policies=_parse(texts), version=1, digest=_digest(texts))
        self._next_check = monotonic() + self._interval

    @property
    def policy_version(self) -> int:
        return self._loaded.version

    def reload(self) -> bool:
        """Re-read the policy files now. True if a new policy is in force; E311 if refused."""
        with self._lock:
            self._next_check = self._monotonic() + self._interval
            texts = self._read_all()
            digest = _digest(texts)
            if digest == self._loaded.digest:
                return False
            try:
                policies = _parse(texts)
            except PolicyParseError as exc:
                self._rejected_digest = digest
                self.last_reload_error = exc
                raise
            self._loaded = _Loaded(
                policies=policies, version=self._loaded.version + 1, digest=digest
            )
            self._cache.clear()
            self._rejected_digest = None
            self.last_reload_error = None
            return True

    def is_authorized(self, principal: Principal, action: Action, model: ModelResource) -> Decision:
        if self._monotonic() >= self._next_check:
            self._reload_quietly()
        loaded = self._loaded
        key: _CacheKey = (
            principal.id,
            principal.method,
            principal.roles,
            principal.tenant,
            principal.clearance,
            action.value,
            model,
            loaded.version,
        )
        decision = self._cache.get(key)
        if decision is not None:
            return decision
        decision = _evaluate(loaded, principal, action, model)
        if self._cache_size:
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache), key), None)
            self._cache[key] = decision
        return decision

    def require(self, principal: Principal, action: Action, model: ModelResource) -> Decision:
        """`is_authorized`, raising AccessDeniedError (E310) on a denial."""
        decision = self.is_authorized(principal, action, model)
        if not decision.allowed:
            raise AccessDeniedError(f"{principal.id!r} may not {action.value} model {model.name!r}")
        return decision

    def _reload_quietly(self) -> None:
        """The watch: a refused reload keeps the old policy; the same bad text is tried once."""
        self._next_check = self._monotonic() + self._interval  # first, so one caller reads
        try:
            texts = self._read_all()
        except PolicyParseError as exc:
            self.last_reload_error = exc
            return
        if _digest(texts) in (self._loaded.digest, self._rejected_digest):
            return
        # A refusal is recorded in last_reload_error; the old policy stays in force.
        with contextlib.suppress(PolicyParseError):
            self.reload()

    def _read_all(self) -> list[tuple[Path, str]]:
        texts = []
        for path in self._files:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise PolicyParseError(f"cannot read policy file {path}: {exc.strerror}") from None
            if len(data) > MAX_POLICY_BYTES:
                raise PolicyParseError(
                    f"policy file {path} is larger than {MAX_POLICY_BYTES} bytes"
                )
            try:
                texts.append((path, data.decode("utf-8")))
            except UnicodeDecodeError:
                raise PolicyParseError(f"policy file {path} is not UTF-8") from None
        return texts


def _digest(texts: Sequence[tuple[Path, str]]) -> str:
    hasher = hashlib.sha256()
    for path, text in texts:
        hasher.update(f"{path}\0{len(text)}\0{text}\0".encode())
    return hasher.hexdigest()


def _parse(texts: Sequence[tuple[Path, str]]) -> cedarpy.PolicySet:
    """Parse each file alone (so an error names its file), then the whole set once."""
    try:
        import cedarpy
    except ImportError:
        raise MissingExtraError("cedarpy", "gateway") from None

    for path, text in texts:
        try:
            cedarpy.PolicySet.from_str(text)
        except ValueError as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "parse error"
            raise PolicyParseError(
                f"policy file {path} does not parse: {first_line}",
                hint="the previous policy stays in force until this file is fixed",
            ) from None
    try:
        return cedarpy.PolicySet.from_str("\n".join(text for _, text in texts))
    except ValueError as exc:  # e.g. the same @id in two files
        raise PolicyParseError(f"policy files do not combine: {exc}") from None


def _evaluate(
    loaded: _Loaded, principal: Principal, action: Action, model: ModelResource
) -> Decision:
    import cedarpy

    principal_uid = {"type": PRINCIPAL_TYPE, "id": principal.id}
    resource_uid = {"type": RESOURCE_TYPE, "id": model.name}
    entities: list[dict[str, Any]] = [
        {
            "uid": principal_uid,
            "attrs": {
                "roles": sorted(principal.roles),
                "tenant": principal.tenant,
                "clearance": principal.clearance,
                "auth_method": principal.method,
            },
            "parents": [],
        },
        {
            "uid": resource_uid,
            "attrs": {
                "sensitivity": model.sensitivity,
                "owner": model.owner,
                "tenant": model.tenant,
            },
            "parents": [],
        },
    ]
    request = {
        "principal": principal_uid,
        "action": {"type": ACTION_TYPE, "id": action.value},
        "resource": resource_uid,
        # No context: an empty one still costs a JSON round trip per call in cedarpy.
    }
    result = cedarpy.is_authorized(request, loaded.policies, json.dumps(entities))
    diagnostics = result.diagnostics
    annotations = diagnostics.id_annotations_by_reason
    reasons = tuple(annotations.get(r) or r for r in diagnostics.reasons)
    errors = tuple(str(e) for e in diagnostics.errors)
    return Decision(
        allowed=result.allowed and not errors,
        reasons=reasons,
        errors=errors,
        policy_version=loaded.version,
    )
