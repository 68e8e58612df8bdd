"""Which limits apply to whom, and the `budgets:` section of mlwarden.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlwarden.budgets import (
    DEFAULT_LIMITS,
    BudgetPolicy,
    Limits,
    LimitsOverride,
    MemoryStore,
    Period,
    SQLiteStore,
    open_store,
    parse_budgets,
)
from mlwarden.errors import PolicyFileError, UsageError

CONFIG = """
store: {kind: memory, max_entries: 50}
defaults: {rate: 10, quota: 1000, period: day}
models:
  iris: {rate: 5, burst: 5, fail_open: true}
  secret: {quota: 10, period: hour}
roles:
  admin: {rate: unlimited, quota: unlimited}
  analyst: {quota: 5000}
identities:
  batch-job: {rate: 100, burst: 200}
  mallory: {quota: 0}
"""


@pytest.fixture
def policy() -> BudgetPolicy:
    return parse_budgets(yaml.safe_load(CONFIG)).policy()


def test_defaults_apply_to_anyone_on_any_model(policy: BudgetPolicy) -> None:
    # burst defaults to two seconds' worth of the rate
    expected = Limits(rate=10.0, burst=20, quota=1000, period=Period.DAY)
    assert policy.limits_for("bob", "wine") == expected


def test_model_layer(policy: BudgetPolicy) -> None:
    assert policy.limits_for("bob", "iris") == Limits(
        rate=5.0, burst=5, quota=1000, period=Period.DAY, fail_open=True
    )
    assert policy.limits_for("bob", "secret") == Limits(
        rate=10.0, burst=20, quota=10, period=Period.HOUR
    )


def test_first_held_role_wins_in_config_order(policy: BudgetPolicy) -> None:
    assert policy.limits_for("carol", "secret", ("analyst",)).quota == 5000
    both = policy.limits_for("carol", "secret", frozenset({"analyst", "admin"}))
    assert both.unlimited
    assert policy.limits_for("carol", "secret", ("intern",)).quota == 10


def test_identity_layer_is_last_and_cannot_fail_open(policy: BudgetPolicy) -> None:
    assert policy.limits_for("batch-job", "wine") == Limits(
        rate=100.0, burst=200, quota=1000, period=Period.DAY
    )
    assert policy.limits_for("mallory", "wine", ("admin",)).quota == 0
    # fail_open comes from the model only, whatever the other layers say
    assert policy.limits_for("batch-job", "iris").fail_open
    assert not policy.limits_for("batch-job", "wine").fail_open


def test_an_empty_section_has_safe_defaults() -> None:
    config = parse_budgets(None)
    assert config.policy().limits_for("anyone", "any") == Limits(
        rate=10.0, burst=20, quota=10_000, period=Period.DAY
    )
    assert BudgetPolicy().defaults == DEFAULT_LIMITS
    assert config.store.kind == "sqlite"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("store: {kind: mongo}", r"budgets\.store"),
        ("store: {kind: redis}", r"budgets\.store\.redis\.url: Field required"),
        ("store: {kind: redis, url: 'http://x'}", r"budgets\.store\.redis\.url"),
        ("defaults: {rate: 0}", r"budgets\.defaults\.rate"),
        ("defaults: {rate: .nan}", r"budgets\.defaults\.rate"),
        ("defaults: {rate: 1000000}", r"budgets\.defaults\.rate"),
        ("defaults: {quota: -1}", r"budgets\.defaults\.quota"),
        ("defaults: {quota: 2.5}", r"budgets\.defaults\.quota"),
        ("defaults: {period: fortnight}", r"budgets\.defaults\.period"),
        ("defaults: {rate: '10'}", r"budgets\.defaults\.rate"),
        ("models: {iris: {fail_open: 'yes'}}", r"budgets\.models\.iris\.fail_open"),
        ("store: {kind: sqlite, busy_timeout: 0}", r"budgets\.store\.sqlite\.busy_timeout"),
        ("models: {iris: {burst: 0}}", r"budgets\.models\.iris\.burst"),
        ("models: {iris: {rate: 5, colour: red}}", r"budgets\.models\.iris\.colour: Extra"),
        ("roles: {admin: {fail_open: true}}", r"budgets\.roles\.admin\.fail_open: Extra"),
        ("identities: {'': {rate: 1}}", r"budgets\.identities"),
        ("limits: {}", r"budgets\.limits: Extra inputs"),
        ("[1, 2]", r"budgets: Input should be"),
    ],
)
def test_bad_config_is_refused_with_the_field(text: str, message: str) -> None:
    with pytest.raises(PolicyFileError, match=message) as info:
        parse_budgets(yaml.safe_load(text))
    assert info.value.code == "E110"


def test_open_store_builds_each_kind(tmp_path: Path) -> None:
    memory = open_store(parse_budgets(yaml.safe_load(CONFIG)))
    assert isinstance(memory, MemoryStore)
    assert memory.limits_for("bob", "iris").fail_open
    sqlite = open_store(parse_budgets({"store": {"kind": "sqlite", "path": "b.db"}}), base=tmp_path)
    assert isinstance(sqlite, SQLiteStore) and sqlite.path == tmp_path / "b.db"
    sqlite.close()
    from mlwarden.budgets import RedisStore

    redis = open_store(parse_budgets({"store": {"kind": "redis", "url": "redis://127.0.0.1:1"}}))
    assert isinstance(redis, RedisStore)
    redis.close()


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="rate"):
        Limits(rate=0)
    with pytest.raises(ValueError, match="rate"):
        Limits(rate=float("inf"))
    with pytest.raises(ValueError, match="burst"):
        Limits(rate=1, burst=0)
    with pytest.raises(ValueError, match="quota"):
        Limits(quota=-1)


def test_override_can_lift_a_limit() -> None:
    base = Limits(rate=1, burst=1, quota=5)
    lifted = LimitsOverride(unlimited=frozenset({"quota"})).apply(base)
    assert lifted.quota is None and lifted.rate == 1


def test_bad_redis_url_is_a_usage_error() -> None:
    from mlwarden.budgets import RedisStore

    with pytest.raises(UsageError, match="not a Redis URL"):
        RedisStore("http://127.0.0.1:6379")
