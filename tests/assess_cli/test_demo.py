"""The assessment part of `make demo`: the demo model bare and behind the gateway."""

from __future__ import annotations

from pathlib import Path

from mlwarden.demo import make_demo_key, make_demo_models, make_release
from mlwarden.gateway.demo_assess import run_assess_demo
from mlwarden.signing import sign


def test_demo_runs_the_closed_loop(tmp_path: Path) -> None:
    files = make_demo_models(tmp_path)
    private, public = make_demo_key(tmp_path)
    release = make_release(tmp_path, files)
    bundle = sign(release, key=private)
    result = run_assess_demo(
        tmp_path, model=release / "digits-model.joblib", bundle=bundle, public_key=public
    )
    assert result.problems == ()
    assert result.html is not None and result.html.exists()
    page = result.html.read_text()
    assert "What the defenses removed" in page and "reveals" in page
    assert any(line.startswith("membership AUC: bare") for line in result.lines)
    assert any("reveals labels" in line for line in result.lines)
