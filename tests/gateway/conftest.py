"""Fixtures: signed digits models (trained once), and a fresh gateway environment per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.gateway.support import Env, Models, build_models, make_env


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return build_models(tmp_path_factory.mktemp("gateway-models"))


@pytest.fixture
def env(tmp_path: Path, models: Models) -> Env:
    return make_env(tmp_path / "gw", models)
