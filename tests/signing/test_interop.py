"""Interoperability with the `model-signing` package (1.1.1), run from its own environment.

The environment lives at .venv-interop (the Makefile builds it for `make test`):
    python3 -m venv .venv-interop
    .venv-interop/bin/pip install model-signing==1.1.1 pyopenssl
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from mlwarden.policy import parse_policy
from mlwarden.signing import sign, verify

from .conftest import KeyPair, make_pki

REPO = Path(__file__).resolve().parents[2]
MODEL_SIGNING = REPO / ".venv-interop" / "bin" / "model_signing"


@pytest.fixture(scope="session")
def model_signing() -> Path:
    if not MODEL_SIGNING.exists():
        pytest.fail(
            f"{MODEL_SIGNING} is missing: build the interop environment with "
            "`python3 -m venv .venv-interop && .venv-interop/bin/pip install "
            "model-signing==1.1.1 pyopenssl` (make test does this)"
        )
    return MODEL_SIGNING


def run(*argv: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("single_file", [False, True], ids=["folder", "file"])
def test_mlwarden_bundle_verifies_with_model_signing(
    model_signing: Path, model: Path, keys: Callable[..., KeyPair], single_file: bool
) -> None:
    pair = keys()
    target = model / "weights.bin" if single_file else model
    signature = sign(target, key=pair.private)
    done = run(model_signing, "verify", "key", target, "--signature", signature,
               "--public_key", pair.public)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Verification succeeded" in done.stdout
    (model / "weights.bin").write_bytes(b"tampered")
    done = run(model_signing, "verify", "key", target, "--signature", signature,
               "--public_key", pair.public)  # fmt: skip
    assert done.returncode != 0


@pytest.mark.parametrize("single_file", [False, True], ids=["folder", "file"])
def test_model_signing_bundle_verifies_with_mlwarden(
    model_signing: Path,
    model: Path,
    keys: Callable[..., KeyPair],
    tmp_path: Path,
    single_file: bool,
) -> None:
    pair = keys()
    target = model / "weights.bin" if single_file else model
    signature = tmp_path / "ms.sig"
    done = run(model_signing, "sign", "key", target, "--signature", signature,
               "--private_key", pair.private)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result = verify(target, signatures=[signature], public_key=pair.public)
    assert result.verified, result.report.findings
    (model / "weights.bin").write_bytes(b"tampered")
    result = verify(target, signatures=[signature], public_key=pair.public)
    assert not result.verified


def test_certificate_bundles_both_ways(model_signing: Path, model: Path, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    ours = sign(model, key=pki.leaf_key, certificate_chain=[pki.chain])
    done = run(model_signing, "verify", "certificate", model, "--signature", ours,
               "--certificate_chain", pki.root_cert)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    theirs = tmp_path / "ms-cert.sig"
    done = run(model_signing, "sign", "certificate", model, "--signature", theirs,
               "--private_key", pki.leaf_key, "--signing_certificate", tmp_path / "pki/leaf.crt",
               "--certificate_chain", tmp_path / "pki/intermediate.crt")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    text = (
        "version: 1\ntrust:\n  signers:\n    - name: corp\n      x509:\n"
        f"        root: {pki.root_cert}\n        subject: ml-release@example.com\n"
    )
    trust = parse_policy(text, base=tmp_path).trust
    result = verify(model, signatures=[theirs], trust=trust)
    assert result.verified, result.report.findings
