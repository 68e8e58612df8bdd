"""Principal: who is calling, as every later control (policy, budget, audit) sees it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

AuthMethod = Literal["jwt", "api_key", "mtls"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """An authenticated caller.

    `id` is stable per caller (a token's subject, an API key's or a certificate's configured
    principal name) and is what budgets and the audit log key on. `roles`, `tenant` and
    `clearance` become the attributes of the Cedar principal entity. `expires_at` (unix
    seconds) is the end of the credential's validity when it has one (a token's `exp`).
    """

    id: str
    method: AuthMethod
    roles: frozenset[str] = frozenset()
    tenant: str = ""
    clearance: int = 0
    issuer: str | None = None
    expires_at: float | None = None

    @property
    def key(self) -> str:
        """`method:id`, unique across methods: what budgets and the audit log should key on.

        A token subject and an API key's principal name come from different authorities and
        may collide ("batch" from the identity provider is not the API key "batch").
        """
        return f"{self.method}:{self.id}"
