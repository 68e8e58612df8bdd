"""The gateway part of `make demo`: a real `mlwarden serve` on 127.0.0.1, real calls, the
real audit log verified afterwards."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlwarden.gateway.demo import BURST, gateway_available, run_gateway_demo

pytestmark = pytest.mark.skipif(not gateway_available(), reason="needs mlwarden[gateway]")


@dataclass(frozen=True)
class Release:
    folder: Path
    model: Path
    bundle: Path
    public_key: Path


@pytest.fixture(scope="module")
def release_template(tmp_path_factory: pytest.TempPathFactory) -> Release:
    """The demo's signed release, made once (training and signing take a few seconds)."""
    from mlwarden.demo import make_demo_key, make_demo_models, make_release
    from mlwarden.signing import sign

    folder = tmp_path_factory.mktemp("demo-release")
    files = make_demo_models(folder)
    _, public = make_demo_key(folder / "keys")
    release = make_release(folder, files)
    private = folder / "keys" / "demo-signer.pem"
    bundle = sign(release, key=private)
    return Release(folder, release / "digits-model.joblib", bundle, public)


@pytest.fixture
def demo(release_template: Release, tmp_path: Path) -> Release:
    folder = tmp_path / "demo"
    shutil.copytree(release_template.folder, folder)
    return Release(
        folder,
        folder / "release" / "digits-model.joblib",
        folder / release_template.bundle.name,
        folder / "keys" / "demo-signer.pub",
    )


def test_every_control_answers_as_the_demo_says(demo: Release) -> None:
    result = run_gateway_demo(
        demo.folder, model=demo.model, bundle=demo.bundle, public_key=demo.public_key
    )

    assert result.problems == ()
    assert result.ok
    statuses = {call.title: (call.status, call.code) for call in result.calls}
    assert statuses == {
        "analyst: 5 held-out digits": (200, None),
        "a caller with no credential": (401, "E301"),
        "intruder (valid key, not an analyst)": (403, "E310"),
        "analyst: 63 pixels instead of 64": (400, "E131"),
        "analyst: a pixel of 99 (declared range 0-16)": (400, "E133"),
        f"analyst: a burst of {BURST + 3} calls, rate 1/s, burst {BURST}": (429, "E402"),
    }
    burst = next(c for c in result.calls if c.status == 429)
    assert burst.retry_after is not None and int(burst.retry_after) >= 1
    # Output minimization: the analyst sees labels only, and they are the right digits.
    assert result.predicted == result.truth
    assert result.calls[0].message == "labels " + " ".join(result.truth)
    assert sum(result.burst.values()) == BURST + 3 and result.burst.get(429, 0) >= 3
    # Every call, allowed or denied, is one record of an intact chain.
    assert result.audit_intact
    assert result.audit_records == result.audited_calls == 5 + BURST + 3
    # API keys are stored only as hashes.
    text = result.config.read_text()
    assert "mlw_" not in text and text.count("sha256:") == 2
    assert result.audit_url.endswith("audit.sqlite3")


def test_the_audit_log_of_two_runs_stays_one_intact_chain(demo: Release) -> None:
    first = run_gateway_demo(
        demo.folder, model=demo.model, bundle=demo.bundle, public_key=demo.public_key
    )
    second = run_gateway_demo(
        demo.folder, model=demo.model, bundle=demo.bundle, public_key=demo.public_key
    )

    assert first.audit_intact and second.audit_intact
    assert second.audit_records == first.audit_records + second.audited_calls
    assert second.audit_head != first.audit_head


def test_a_tampered_model_keeps_the_gateway_from_starting(demo: Release) -> None:
    data = bytearray(demo.model.read_bytes())
    data[len(data) // 2] ^= 0x01
    demo.model.write_bytes(bytes(data))

    result = run_gateway_demo(
        demo.folder, model=demo.model, bundle=demo.bundle, public_key=demo.public_key
    )

    assert not result.ok
    assert result.calls == ()
    (problem,) = result.problems
    assert problem.startswith("mlwarden serve exited with 1 before it was ready: ")
    assert "E204" in problem and "content differs from the signed digest" in problem


def test_make_demo_runs_the_gateway_steps(tmp_path: Path) -> None:
    """`mlwarden demo` as its own process, as `make demo` runs it: the demo starts servers
    and threads of its own, which an in-process run would share with the test runner."""
    result = subprocess.run(
        [sys.executable, "-m", "mlwarden", "demo", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "mlwarden serve --config" in out
    assert "ok 200  analyst: 5 held-out digits" in out
    for expected in ("ok 401 E301", "ok 403 E310", "ok 400 E131", "ok 429 E402"):
        assert expected in out
    assert "intact: 13 records" in out
