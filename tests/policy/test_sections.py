"""The gateway's sections join `mlwarden.yaml`, validated by their own packages' models."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlwarden.errors import PolicyFileError
from mlwarden.policy import parse_policy

POLICY = """\
version: 1
audit:
  url: sqlite:///audit.db
budgets:
  store: {kind: memory}
authorization:
  policy_files: [policies/models.cedar]
"""


def test_gateway_sections_parse(tmp_path: Path) -> None:
    policy = parse_policy(POLICY, base=tmp_path)
    assert policy.audit is not None
    assert policy.audit.url == "sqlite:///audit.db"
    assert policy.budgets is not None
    assert policy.authorization is not None
    assert policy.identity is None
    assert policy.trust.trusts_nothing


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("version: 1\nbudgets: {bogus: 1}\n", "budgets.bogus"),
        ("version: 1\naudit: {url: 3}\n", "audit.url"),
        ("version: 1\nidentity: {jwt: {issuer: 1}}\n", "identity.jwt"),
        ("version: 1\ngateway: {}\n", "gateway"),
    ],
)
def test_bad_sections_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(PolicyFileError, match=field):
        parse_policy(text, base=tmp_path)
