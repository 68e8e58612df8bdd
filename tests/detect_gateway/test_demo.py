"""The `make demo` part: a real `mlwarden serve` with detectors, an extraction attack
detected and quarantined, the audit log showing it."""

from __future__ import annotations

from pathlib import Path

from mlwarden.gateway.demo import gateway_available


def test_detect_demo(tmp_path: Path) -> None:
    import pytest

    if not gateway_available():
        pytest.skip("the gateway extra is not installed")
    from mlwarden.demo import make_demo_key, make_demo_models, make_release
    from mlwarden.gateway.demo_detect import run_detect_demo
    from mlwarden.signing import sign

    files = make_demo_models(tmp_path / "models")
    private, public = make_demo_key(tmp_path)
    release = make_release(tmp_path, files)
    bundle = sign(release, key=private)
    result = run_detect_demo(
        tmp_path,
        model=release / "digits-model.joblib",
        bundle=bundle,
        public_key=public,
        private_key=private,
    )
    assert result.problems == (), result.problems
    assert result.queries_to_quarantine is not None
    assert result.queries_to_quarantine <= 300
    assert any("E320" in line for line in result.lines)
    assert any(line.startswith("audit: kind=detect") for line in result.lines)
