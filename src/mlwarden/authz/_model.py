"""The request a policy judges (action, model) and the decision it returns."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    """The Cedar actions: `Mlwarden::Action::"infer"` and its siblings."""

    INFER = "infer"
    READ_METADATA = "read_metadata"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelResource:
    """A served model as the Cedar resource `Mlwarden::Model::"<name>"` sees it.

    Every attribute is always present (empty string by default): a Cedar policy that reads a
    missing attribute errors, and Cedar skips an erroring policy, even a `forbid`.
    """

    name: str
    sensitivity: str = ""
    owner: str = ""
    tenant: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """A policy decision. `reasons` are the ids (or `@id` annotations) of the deciding policies.

    `errors` are Cedar evaluation errors; any error denies (fail closed), even when another
    policy permits. `policy_version` counts successful policy loads, for the audit log.
    """

    allowed: bool
    reasons: tuple[str, ...]
    errors: tuple[str, ...]
    policy_version: int
