"""Sign and verify round trips, the tamper set, and the report of every difference."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from mlwarden.errors import (
    InputError,
    IntegrityError,
    ManifestMismatchError,
    PathNotFoundError,
    SigningKeyError,
    SymlinkEscapeError,
    UnsafeResourceNameError,
    UntrustedSignerError,
)
from mlwarden.report import Report
from mlwarden.signing import default_signature_path, sign, verified_manifest, verify

from .conftest import KeyPair, read_payload


def rule_ids(report: Report) -> list[str]:
    return [f.rule_id for f in report.findings]


def test_sign_writes_model_signing_v1_bundle(model: Path, keys: Callable[..., KeyPair]) -> None:
    pair = keys()
    written = sign(model, key=pair.private)
    assert written == default_signature_path(model) == model.parent / "bert-tiny.sig"
    payload = read_payload(written)
    assert payload["_type"] == "https://in-toto.io/Statement/v1"
    assert payload["predicateType"] == "https://model_signing/signature/v1.0"
    assert payload["subject"][0]["name"] == "bert-tiny"  # type: ignore[index]
    predicate = payload["predicate"]
    assert predicate["serialization"]["method"] == "files"  # type: ignore[index]
    names = [r["name"] for r in predicate["resources"]]  # type: ignore[index]
    assert names == ["README.md", "config.json", "tokenizer/vocab.txt", "weights.bin"]


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()], ids=["p256", "p384"])
def test_round_trip(model: Path, keys: Callable[..., KeyPair], curve: ec.EllipticCurve) -> None:
    pair = keys(curve=curve)
    sign(model, key=pair.private)
    result = verify(model, public_key=pair.public)
    assert result.verified, result.report.findings
    assert result.signers == (pair.fingerprint,)
    assert set(result.digests) == {"README.md", "config.json", "tokenizer/vocab.txt", "weights.bin"}
    assert result.report.kind == "verify"
    assert result.report.findings == ()


def test_single_file_round_trip(model: Path, keys: Callable[..., KeyPair]) -> None:
    pair = keys()
    weights = model / "weights.bin"
    signature = sign(weights, key=pair.private)
    assert signature == model / "weights.bin.sig"
    result = verify(weights, public_key=pair.public)
    assert result.verified
    assert list(result.digests) == ["."]
    weights.write_bytes(b"x" + weights.read_bytes()[1:])
    assert rule_ids(verify(weights, public_key=pair.public).report) == ["SIG003"]


def test_signature_inside_the_folder_is_left_out(model: Path, keys: Callable[..., KeyPair]) -> None:
    pair = keys()
    inside = model / "model.sig"
    sign(model, key=pair.private, signature=inside)
    assert "model.sig" in read_payload(inside)["predicate"]["serialization"]["ignore_paths"]  # type: ignore[index]
    assert verify(model, signatures=[inside], public_key=pair.public).verified


def test_git_paths_are_not_signed(model: Path, keys: Callable[..., KeyPair]) -> None:
    pair = keys()
    (model / ".git").mkdir()
    (model / ".git" / "HEAD").write_text("ref: main")
    sign(model, key=pair.private)
    (model / ".git" / "HEAD").write_text("ref: other")
    assert verify(model, public_key=pair.public).verified


# --- the tamper set ----------------------------------------------------------------------------


def _flip_byte(model: Path) -> None:
    path = model / "weights.bin"
    data = bytearray(path.read_bytes())
    data[500_000] ^= 1
    path.write_bytes(bytes(data))


TAMPERS: dict[str, tuple[Callable[[Path], None], list[str], str]] = {
    "change a byte": (_flip_byte, ["SIG003"], "weights.bin"),
    "truncate": (lambda m: os.truncate(m / "weights.bin", 10), ["SIG005"], "weights.bin"),
    "append": (
        lambda m: (m / "config.json").write_text('{"hidden": 8} '),
        ["SIG005"],
        "config.json",
    ),
    "rename": (
        lambda m: (m / "config.json").rename(m / "config2.json"),
        ["SIG004"],
        "config2.json",
    ),
    "add": (lambda m: (m / "extra.py").write_text("import os"), ["SIG002"], "extra.py"),
    "remove": (lambda m: (m / "README.md").unlink(), ["SIG001"], "README.md"),
}


@pytest.mark.parametrize("case", list(TAMPERS))
def test_tamper_set_is_refused_naming_the_file(
    model: Path, keys: Callable[..., KeyPair], case: str
) -> None:
    pair = keys()
    sign(model, key=pair.private)
    tamper, expected, name = TAMPERS[case]
    tamper(model)
    result = verify(model, public_key=pair.public)
    assert not result.verified
    assert result.digests == {}
    assert rule_ids(result.report) == expected
    assert result.report.findings[0].location.endswith(name)
    assert result.report.verdict.value == "malicious"


def test_every_difference_is_reported_at_once(model: Path, keys: Callable[..., KeyPair]) -> None:
    pair = keys()
    sign(model, key=pair.private)
    _flip_byte(model)
    (model / "README.md").unlink()
    (model / "tokenizer" / "vocab.txt").rename(model / "tokenizer" / "vocab2.txt")
    (model / "evil.py").write_text("import os")
    (model / "config.json").write_text("{}")
    result = verify(model, public_key=pair.public)
    found = {(f.rule_id, Path(f.location).name) for f in result.report.findings}
    assert found == {
        ("SIG003", "weights.bin"),
        ("SIG001", "README.md"),
        ("SIG004", "vocab2.txt"),
        ("SIG002", "evil.py"),
        ("SIG005", "config.json"),
    }
    codes = {f.rule_id: f.detail["code"] for f in result.report.findings}
    assert codes["SIG003"] == "E204"


def test_fail_fast_stops_at_the_first_difference(model: Path, keys: Callable[..., KeyPair]) -> None:
    pair = keys()
    sign(model, key=pair.private)
    (model / "README.md").write_text("tin!")  # same size: only hashing finds it
    (model / "evil.py").write_text("import os")
    result = verify(model, public_key=pair.public, fail_fast=True)
    assert not result.verified
    assert len(result.report.findings) == 1


def test_changed_small_file_is_found_before_large_ones(
    model: Path, keys: Callable[..., KeyPair]
) -> None:
    pair = keys()
    (model / "big.bin").write_bytes(os.urandom(64 << 20))
    sign(model, key=pair.private)
    (model / "README.md").write_text("tin!")
    result = verify(model, public_key=pair.public, fail_fast=True)
    assert rule_ids(result.report) == ["SIG003"]
    # Stopping early: the large file is never reported (bench/sign_verify.py times it).
    assert all("big.bin" not in f.location for f in result.report.findings)


def test_model_name_must_match(model: Path, keys: Callable[..., KeyPair], tmp_path: Path) -> None:
    pair = keys()
    signature = sign(model, key=pair.private)
    other = tmp_path / "other-model"
    shutil.copytree(model, other)
    result = verify(other, signatures=[signature], public_key=pair.public)
    assert rule_ids(result.report) == ["SIG016"]
    assert verify(
        other, signatures=[signature], public_key=pair.public, model_name="bert-tiny"
    ).verified


def test_signature_for_a_file_does_not_verify_a_folder(
    model: Path, keys: Callable[..., KeyPair]
) -> None:
    pair = keys()
    signature = sign(model / "weights.bin", key=pair.private, signature=model.parent / "w.sig")
    result = verify(model, signatures=[signature], public_key=pair.public, model_name="weights.bin")
    assert rule_ids(result.report) == ["SIG011"]


def test_verified_manifest_returns_signed_digests(
    model: Path, keys: Callable[..., KeyPair]
) -> None:
    pair = keys()
    signature = sign(model, key=pair.private)
    digests = verified_manifest([signature], root_name="bert-tiny", public_key=pair.public)
    assert verify(model, public_key=pair.public).digests == digests
    with pytest.raises(UntrustedSignerError, match="not trusted") as info:
        verified_manifest([signature], root_name="bert-tiny", public_key=keys("other").public)
    assert info.value.code == "E203"
    assert isinstance(info.value, IntegrityError)
    with pytest.raises(ManifestMismatchError, match="not 'x'"):
        verified_manifest([signature], root_name="x", public_key=pair.public)


# --- what sign refuses ---------------------------------------------------------------------------


def test_sign_refuses_symlinks(model: Path, keys: Callable[..., KeyPair]) -> None:
    (model / "link.bin").symlink_to(model / "weights.bin")
    with pytest.raises(SymlinkEscapeError, match=r"link\.bin") as info:
        sign(model, key=keys().private)
    assert info.value.code == "E107"


def test_sign_refuses_a_symlinked_model(model: Path, keys: Callable[..., KeyPair]) -> None:
    link = model.parent / "alias"
    link.symlink_to(model)
    with pytest.raises(SymlinkEscapeError):
        sign(link, key=keys().private)


def test_sign_refuses_unsafe_and_colliding_names(model: Path, keys: Callable[..., KeyPair]) -> None:
    pair = keys()
    (model / "a\\b.bin").write_text("x")
    with pytest.raises(UnsafeResourceNameError, match="backslash"):
        sign(model, key=pair.private)
    (model / "a\\b.bin").unlink()
    (model / "Config.json").write_text("{}")
    with pytest.raises(UnsafeResourceNameError, match="one file"):
        sign(model, key=pair.private)


def test_sign_refuses_bad_keys(model: Path, keys: Callable[..., KeyPair], tmp_path: Path) -> None:
    pair = keys()
    with pytest.raises(SigningKeyError, match="not a PEM private key"):
        sign(model, key=pair.public)
    p521 = keys("p521", ec.SECP521R1())
    with pytest.raises(SigningKeyError, match="secp521r1"):
        sign(model, key=p521.private)
    with pytest.raises(PathNotFoundError, match=r"nope\.pem"):
        sign(model, key=tmp_path / "nope.pem")
    with pytest.raises(PathNotFoundError):
        sign(tmp_path / "missing", key=pair.private)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no file to sign"):
        sign(empty, key=pair.private)
