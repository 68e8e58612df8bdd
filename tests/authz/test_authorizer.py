"""Cedar authorization: decisions, no policy means deny, reload, bad policy keeps the old one,
and a decision cache that never outlives a policy change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from mlwarden.authz import Action, AuthorizationConfig, Authorizer, Decision, ModelResource
from mlwarden.errors import AccessDeniedError, PolicyParseError
from mlwarden.identity import Principal

POLICY = """
@id("tenant-analysts-infer")
permit (principal, action == Mlwarden::Action::"infer", resource)
when { principal.roles.contains("analyst") && principal.tenant == resource.tenant };

@id("metadata-for-all-in-tenant")
permit (principal, action == Mlwarden::Action::"read_metadata", resource)
when { principal.tenant == resource.tenant };

@id("owners-admin")
permit (principal, action == Mlwarden::Action::"admin", resource)
when { resource.owner == principal.tenant && principal.roles.contains("admin") };

@id("secret-needs-clearance")
forbid (principal, action, resource)
when { resource.sensitivity == "secret" && principal.clearance < 3 };
"""

ALICE = Principal(
    id="alice", method="jwt", roles=frozenset({"analyst"}), tenant="acme", clearance=1
)
CHURN = ModelResource(name="churn", sensitivity="internal", owner="acme", tenant="acme")
SECRET = ModelResource(name="fraud", sensitivity="secret", owner="acme", tenant="acme")


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def authorizer(tmp_path: Path, text: str = POLICY, **extra: object) -> tuple[Authorizer, Path]:
    path = tmp_path / "policy.cedar"
    path.write_text(text)
    config = AuthorizationConfig.model_validate({"policy_files": [str(path)], **extra})
    return Authorizer(config), path


def rewrite(path: Path, text: str) -> None:
    """Write new content; move mtime on so a watcher relying on it would see a change too."""
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_permit_forbid_and_default_deny(tmp_path: Path) -> None:
    auth, _ = authorizer(tmp_path)
    assert auth.is_authorized(ALICE, Action.INFER, CHURN) == Decision(
        allowed=True, reasons=("tenant-analysts-infer",), errors=(), policy_version=1
    )
    forbidden = auth.is_authorized(ALICE, Action.INFER, SECRET)
    assert not forbidden.allowed and forbidden.reasons == ("secret-needs-clearance",)
    cleared = Principal(
        id="carol", method="mtls", roles=frozenset({"analyst"}), tenant="acme", clearance=3
    )
    assert auth.is_authorized(cleared, Action.INFER, SECRET).allowed
    # No policy permits admin for alice: Cedar's default deny, with no reason.
    assert auth.is_authorized(ALICE, Action.ADMIN, CHURN) == Decision(
        allowed=False, reasons=(), errors=(), policy_version=1
    )
    other_tenant = ModelResource(name="churn", tenant="globex", owner="globex")
    assert not auth.is_authorized(ALICE, Action.INFER, other_tenant).allowed
    assert auth.is_authorized(ALICE, Action.READ_METADATA, CHURN).allowed


def test_each_action(tmp_path: Path) -> None:
    auth, _ = authorizer(tmp_path)
    admin = Principal(id="root", method="api_key", roles=frozenset({"admin"}), tenant="acme")
    assert not auth.is_authorized(admin, Action.INFER, CHURN).allowed
    assert auth.is_authorized(admin, Action.READ_METADATA, CHURN).allowed
    assert auth.is_authorized(admin, Action.ADMIN, CHURN).allowed


def test_cache_keys_on_every_attribute(tmp_path: Path) -> None:
    """Same principal id, different roles or clearance: never the cached answer of the other."""
    auth, _ = authorizer(tmp_path)
    assert auth.is_authorized(ALICE, Action.INFER, CHURN).allowed
    demoted = Principal(id="alice", method="jwt", roles=frozenset(), tenant="acme", clearance=1)
    assert not auth.is_authorized(demoted, Action.INFER, CHURN).allowed
    promoted = Principal(
        id="alice", method="jwt", roles=frozenset({"analyst"}), tenant="acme", clearance=9
    )
    assert not auth.is_authorized(ALICE, Action.INFER, SECRET).allowed
    assert auth.is_authorized(promoted, Action.INFER, SECRET).allowed
    relabelled = ModelResource(name="churn", sensitivity="secret", owner="acme", tenant="acme")
    assert not auth.is_authorized(ALICE, Action.INFER, relabelled).allowed


def test_empty_policy_denies_everything(tmp_path: Path) -> None:
    auth, _ = authorizer(tmp_path, "// no policy yet\n")
    root = Principal(
        id="root", method="jwt", roles=frozenset({"admin", "analyst"}), tenant="acme", clearance=9
    )
    for action in Action:
        assert not auth.is_authorized(root, action, CHURN).allowed


def test_an_empty_file_list_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 1 item"):
        AuthorizationConfig.model_validate({"policy_files": []})


def test_require_raises_access_denied(tmp_path: Path) -> None:
    auth, _ = authorizer(tmp_path)
    assert auth.require(ALICE, Action.INFER, CHURN).allowed
    with pytest.raises(AccessDeniedError, match="'alice' may not admin model 'churn'") as info:
        auth.require(ALICE, Action.ADMIN, CHURN)
    assert (info.value.code, info.value.http_status) == ("E310", 403)


def test_explicit_reload_and_the_cache(tmp_path: Path) -> None:
    auth, path = authorizer(tmp_path, reload_check_seconds=3600)
    assert auth.is_authorized(ALICE, Action.INFER, CHURN).allowed  # now cached
    assert auth.reload() is False  # same content: nothing changes
    rewrite(path, "forbid (principal, action, resource);\n" + POLICY)
    assert auth.reload() is True
    decision = auth.is_authorized(ALICE, Action.INFER, CHURN)
    assert not decision.allowed and decision.policy_version == 2 == auth.policy_version


def test_watch_picks_up_edits_without_restart(tmp_path: Path) -> None:
    ticks = Ticks()
    path = tmp_path / "policy.cedar"
    path.write_text(POLICY)
    config = AuthorizationConfig(policy_files=[path], reload_check_seconds=1.0)
    auth = Authorizer(config, monotonic=ticks)
    assert auth.is_authorized(ALICE, Action.INFER, CHURN).allowed
    rewrite(path, POLICY.replace('contains("analyst")', 'contains("scientist")'))
    ticks.now = 0.5  # before the next check: the policy in force is still the old one
    assert auth.is_authorized(ALICE, Action.INFER, CHURN).allowed
    ticks.now = 1.0
    assert not auth.is_authorized(ALICE, Action.INFER, CHURN).allowed
    assert auth.policy_version == 2


def test_bad_policy_is_refused_and_the_old_one_stays(tmp_path: Path) -> None:
    ticks = Ticks()
    path = tmp_path / "policy.cedar"
    path.write_text(POLICY)
    auth = Authorizer(
        AuthorizationConfig(policy_files=[path], reload_check_seconds=1.0), monotonic=ticks
    )
    assert auth.is_authorized(ALICE, Action.INFER, CHURN).allowed

    rewrite(path, "permit (principal, action, resource) when { principal.roles.contains( };")
    with pytest.raises(
        PolicyParseError, match=r"policy file .*policy\.cedar does not parse"
    ) as info:
        auth.reload()
    assert (info.value.code, info.value.http_status) == ("E311", 500)
    # The watch refuses it quietly too, records why, and keeps deciding with the old policy.
    ticks.now = 5.0
    assert auth.is_authorized(ALICE, Action.INFER, CHURN).allowed
    assert not auth.is_authorized(ALICE, Action.ADMIN, CHURN).allowed
    assert auth.policy_version == 1
    assert auth.last_reload_error is not None and auth.last_reload_error.code == "E311"

    # A deleted file is refused the same way.
    path.unlink()
    with pytest.raises(PolicyParseError, match="cannot read policy file"):
        auth.reload()
    ticks.now = 10.0
    assert auth.is_authorized(ALICE, Action.INFER, CHURN).allowed

    # Fixed: the next check swaps it in and clears the error.
    path.write_text(POLICY.replace("principal.clearance < 3", "principal.clearance < 1"))
    ticks.now = 15.0
    assert auth.is_authorized(ALICE, Action.INFER, SECRET).allowed
    assert auth.policy_version == 2 and auth.last_reload_error is None


def test_bad_policy_at_start_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyParseError, match="does not parse"):
        authorizer(tmp_path, "permit (principal, action, resource")
    with pytest.raises(PolicyParseError, match="cannot read policy file"):
        Authorizer(AuthorizationConfig(policy_files=[tmp_path / "missing.cedar"]))
    (tmp_path / "bin.cedar").write_bytes(b"\xff\xfe")
    with pytest.raises(PolicyParseError, match="not UTF-8"):
        Authorizer(AuthorizationConfig(policy_files=[tmp_path / "bin.cedar"]))


def test_several_files_are_one_policy_set(tmp_path: Path) -> None:
    (tmp_path / "a.cedar").write_text(POLICY)
    (tmp_path / "b.cedar").write_text(
        '@id("bob-admin")\npermit (principal == Mlwarden::User::"bob", action, resource);'
    )
    auth = Authorizer(
        AuthorizationConfig(policy_files=[Path("a.cedar"), Path("b.cedar")]), base_dir=tmp_path
    )
    bob = Principal(id="bob", method="jwt")
    assert auth.is_authorized(bob, Action.ADMIN, CHURN).reasons == ("bob-admin",)
    assert auth.is_authorized(ALICE, Action.INFER, CHURN).allowed


def test_evaluation_errors_deny(tmp_path: Path) -> None:
    """A policy that errors is skipped by Cedar; mlwarden denies instead (fail closed)."""
    text = (
        '@id("ok")\npermit (principal, action, resource);\n'
        '@id("broken")\nforbid (principal, action, resource) when { principal.clearance < "high" };'
    )
    auth, _ = authorizer(tmp_path, text)
    decision = auth.is_authorized(ALICE, Action.INFER, CHURN)
    assert not decision.allowed
    assert decision.reasons == ("ok",)  # Cedar alone would have allowed
    assert len(decision.errors) == 1 and "expected long, got string" in decision.errors[0]


def test_odd_principal_and_model_names(tmp_path: Path) -> None:
    text = (
        'permit (principal == Mlwarden::User::"a\\"b", action,'
        ' resource == Mlwarden::Model::"m\\nx");'
    )
    auth, _ = authorizer(tmp_path, text)
    odd = Principal(id='a"b', method="api_key")
    assert auth.is_authorized(odd, Action.INFER, ModelResource(name="m\nx")).allowed
    assert not auth.is_authorized(odd, Action.INFER, ModelResource(name="m x")).allowed


def test_bounded_cache_keeps_deciding_correctly(tmp_path: Path) -> None:
    auth, _ = authorizer(tmp_path, decision_cache_size=2)
    principals = [
        Principal(
            id=f"u{i}",
            method="jwt",
            roles=frozenset({"analyst"} if i % 2 else set()),
            tenant="acme",
        )
        for i in range(6)
    ]
    for _ in range(2):
        assert [auth.is_authorized(p, Action.INFER, CHURN).allowed for p in principals] == [
            bool(i % 2) for i in range(6)
        ]


def test_decisions_stay_coherent_while_policies_reload(tmp_path: Path) -> None:
    """Threads decide while the policy flips: every answer matches the version it reports."""
    import threading

    permit_all = "permit (principal, action, resource);"
    forbid_all = "// nothing is permitted\n"
    auth, path = authorizer(tmp_path, permit_all, reload_check_seconds=3600)
    seen: list[Decision] = []
    stop = threading.Event()

    def decide() -> None:
        while not stop.is_set():
            seen.append(auth.is_authorized(ALICE, Action.INFER, CHURN))

    threads = [threading.Thread(target=decide) for _ in range(4)]
    for thread in threads:
        thread.start()
    for version in range(2, 22):
        rewrite(path, forbid_all if version % 2 == 0 else permit_all)
        assert auth.reload() is True
    stop.set()
    for thread in threads:
        thread.join()
    assert auth.policy_version == 21
    assert len({d.policy_version for d in seen}) > 1
    for decision in seen:
        assert decision.allowed == (decision.policy_version % 2 == 1), decision


def test_missing_extra_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from mlwarden.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "cedarpy", None)  # makes `import cedarpy` fail
    with pytest.raises(MissingExtraError, match="cedarpy") as info:
        authorizer(tmp_path)
    assert info.value.hint == "pip install 'mlwarden[gateway]'"
