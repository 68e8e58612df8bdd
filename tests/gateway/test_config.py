"""The `gateway:` section: what it accepts, what it refuses, and what the gateway needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.gateway.support import Env, model_entry

from mlwarden.errors import PolicyFileError
from mlwarden.gateway import Gateway
from mlwarden.policy import load_policy


def _rewrite(env: Env, change: Any) -> Path:
    document = json.loads(env.config.read_text())
    change(document)
    env.config.write_text(json.dumps(document))
    return env.config


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["gateway"]["models"][0].update(format="upstream"), "upstream"),
        (lambda d: d["gateway"]["models"][0].update(name="../etc"), "name"),
        (lambda d: d["gateway"]["models"].append(d["gateway"]["models"][0]), "unique"),
        (lambda d: d["gateway"]["models"][0]["inputs"][0].update(min=5, max=1), "min"),
        (lambda d: d["gateway"]["models"][0]["inputs"][0].update(datatype="FLOAT"), "datatype"),
        (lambda d: d["gateway"]["models"][0]["output"].update(mode="everything"), "mode"),
        (lambda d: d["gateway"].update(listen="0.0.0.0"), "listen"),
        (lambda d: d["gateway"]["models"][0].update(torch={"layers": ["linear"]}), "torch"),
    ],
)
def test_bad_gateway_sections_are_refused(env: Env, change: Any, message: str) -> None:
    with pytest.raises(PolicyFileError) as caught:
        load_policy(_rewrite(env, change))
    assert caught.value.code == "E110"
    assert message in caught.value.message


@pytest.mark.parametrize("section", ["gateway", "identity", "authorization"])
def test_the_gateway_needs_its_sections(env: Env, section: str) -> None:
    policy = load_policy(_rewrite(env, lambda d: d.pop(section)))
    with pytest.raises(PolicyFileError, match=section):
        Gateway.from_policy(policy)


def test_a_tampered_model_stops_the_start_up(env: Env, tmp_path: Path) -> None:
    from mlwarden.errors import ManifestMismatchError

    tampered = tmp_path / "digits.joblib"
    tampered.write_bytes((env.models.folder / "digits.joblib").read_bytes() + b"\0")
    signature = env.models.folder / "digits.joblib.sig"
    entry = model_entry("digits", "sklearn", tampered, signature=[str(signature)])
    policy = load_policy(_rewrite(env, lambda d: d["gateway"].update(models=[entry])))
    with pytest.raises(ManifestMismatchError):
        Gateway.from_policy(policy)
