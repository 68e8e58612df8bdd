"""Malformed bundles, wrong keys, unsafe names, duplicates, links, files that change."""

from __future__ import annotations

import base64
import json
import os
import threading
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest

from mlwarden.errors import FileChangedError
from mlwarden.signing import sign, verify
from mlwarden.signing._hashing import HashJob, hash_file, hash_many, list_tree, path_of
from mlwarden.signing._names import unsafe_reason

from .conftest import KeyPair, signed_bundle, statement


def rules(result: object) -> list[str]:
    return [f.rule_id for f in result.report.findings]  # type: ignore[attr-defined]


def _signed(model: Path, keys: Callable[..., KeyPair]) -> tuple[KeyPair, Path]:
    pair = keys()
    return pair, sign(model, key=pair.private)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda raw: raw[: len(raw) // 2], "not JSON"),
        (lambda raw: b"", "not JSON"),
        (lambda raw: b"[]", "(root)"),
        (lambda raw: raw.replace(b"bundle.v0.3", b"bundle.v0.1"), "mediaType"),
        (lambda raw: raw.replace(b'"tlogEntries"', b'"surprise":1,"tlogEntries"'), "surprise"),
        (lambda raw: raw.replace(b'"payload":"', b'"payload":"!!'), "base64"),
        (lambda raw: raw.replace(b"in-toto+json", b"in-toto+jsonx"), "payloadType"),
        (lambda raw: raw[:-1] + b',"mediaType":"x"}', "duplicate JSON key"),
    ],
    ids=["truncated", "empty", "not-object", "media-type", "extra-field", "base64", "type", "dup"],
)
def test_malformed_bundles_are_refused(
    model: Path, keys: Callable[..., KeyPair], mangle: Callable[[bytes], bytes], message: str
) -> None:
    pair, signature = _signed(model, keys)
    signature.write_bytes(mangle(signature.read_bytes()))
    result = verify(model, public_key=pair.public)
    assert rules(result) == ["SIG011"]
    finding = result.report.findings[0]
    assert message in finding.message
    assert finding.location == str(signature)
    assert finding.detail["code"] == "E201"


def test_missing_signature_file(model: Path, keys: Callable[..., KeyPair]) -> None:
    result = verify(model, public_key=keys().public)
    assert rules(result) == ["SIG011"]
    assert "does not exist" in result.report.findings[0].message


def test_wrong_key_is_refused(model: Path, keys: Callable[..., KeyPair]) -> None:
    _signed(model, keys)
    result = verify(model, public_key=keys("someone-else").public)
    assert rules(result) == ["SIG007"]


def test_altered_payload_fails_the_signature(model: Path, keys: Callable[..., KeyPair]) -> None:
    pair, signature = _signed(model, keys)
    bundle = json.loads(signature.read_text())
    payload = base64.b64decode(bundle["dsseEnvelope"]["payload"])
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(
        payload.replace(b"bert-tiny", b"bert-tinx")
    ).decode()
    signature.write_text(json.dumps(bundle))
    assert rules(verify(model, public_key=pair.public)) == ["SIG006"]


def test_inconsistent_root_digest_is_malformed(model: Path, keys: Callable[..., KeyPair]) -> None:
    pair = keys()
    body = statement([{"name": "config.json", "algorithm": "sha256", "digest": "ab" * 32}])
    body["subject"][0]["digest"]["sha256"] = "00" * 32  # type: ignore[index]
    signed_bundle(pair, body, model.parent / "bert-tiny.sig")
    result = verify(model, public_key=pair.public)
    assert rules(result) == ["SIG011"]
    assert "inconsistent" in result.report.findings[0].message


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../etc/passwd", "'..'"),
        ("a/../../b", "'..'"),
        ("/etc/passwd", "absolute"),
        ("a\\b.bin", "backslash"),
        ("a//b", "empty"),
        ("C:/x", "drive"),
        ("ｍodel.bin", "NFKC"),  # fullwidth m
        ("mоdel.bin", "homoglyph"),  # Cyrillic o
        (unicodedata.normalize("NFD", "café.bin"), "NFC"),
        ("model\u200b.bin", "invisible"),
        ("model\x00.bin", "control"),
        ("", "empty"),
    ],
)
def test_unsafe_resource_names_are_refused(
    model: Path, keys: Callable[..., KeyPair], name: str, reason: str
) -> None:
    pair = keys()
    body = statement([{"name": name, "algorithm": "sha256", "digest": "ab" * 32}])
    signature = signed_bundle(pair, body, model.parent / "bert-tiny.sig")
    result = verify(model, public_key=pair.public)
    assert rules(result) == ["SIG012"]
    finding = result.report.findings[0]
    assert reason in finding.message
    assert repr(name) in finding.message
    assert finding.location == str(signature)
    assert finding.detail["code"] == "E206"


def test_names_that_are_fine() -> None:
    for name in ("model.bin", "a/b/c.json", "données/été.csv", "模型/权重.bin", "Ωμέγα.bin", "."):
        assert unsafe_reason(name) is None, name


@pytest.mark.parametrize("second", ["config.json", "CONFIG.json"])
def test_duplicate_resources_are_refused(
    model: Path, keys: Callable[..., KeyPair], second: str
) -> None:
    pair = keys()
    body = statement(
        [
            {"name": "config.json", "algorithm": "sha256", "digest": "ab" * 32},
            {"name": second, "algorithm": "sha256", "digest": "cd" * 32},
        ]
    )
    signed_bundle(pair, body, model.parent / "bert-tiny.sig")
    result = verify(model, public_key=pair.public)
    assert rules(result) == ["SIG013"]


def test_unknown_serialization_is_refused(model: Path, keys: Callable[..., KeyPair]) -> None:
    pair = keys()
    body = statement([{"name": "config.json", "algorithm": "sha256", "digest": "ab" * 32}])
    body["predicate"]["serialization"]["method"] = "shards"  # type: ignore[index]
    signed_bundle(pair, body, model.parent / "bert-tiny.sig")
    assert rules(verify(model, public_key=pair.public)) == ["SIG011"]


def test_symlink_in_verified_tree_is_refused(model: Path, keys: Callable[..., KeyPair]) -> None:
    pair, _ = _signed(model, keys)
    (model / "weights.bin").rename(model.parent / "elsewhere.bin")
    (model / "weights.bin").symlink_to(model.parent / "elsewhere.bin")
    result = verify(model, public_key=pair.public)
    assert "SIG014" in rules(result)
    symlink = next(f for f in result.report.findings if f.rule_id == "SIG014")
    assert symlink.location.endswith("weights.bin")
    assert symlink.detail["code"] == "E107"


def test_file_changed_between_listing_and_hashing(model: Path) -> None:
    listing = list_tree(model)
    (model / "config.json").write_text('{"hidden": 9}')
    with pytest.raises(FileChangedError, match=r"config\.json"):
        hash_file(
            path_of(model, "config.json"),
            listing.files["config.json"],
            bytearray(1 << 16),
            threading.Event(),
        )


def test_file_replaced_between_listing_and_hashing(model: Path) -> None:
    listing = list_tree(model)
    replacement = model / "tmp"
    replacement.write_text('{"hidden": 8}')
    os.replace(replacement, model / "config.json")  # same size and content, new inode
    outcomes: list[object] = []
    job = HashJob(
        name="config.json",
        path=path_of(model, "config.json"),
        listed=listing.files["config.json"],
    )
    hash_many([job], lambda j, r: outcomes.append(r) or True)
    assert isinstance(outcomes[0], FileChangedError)
    assert "config.json" in str(outcomes[0])


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        '{"x": [{"name": "a", "digest": "1", "dig\\u0065st": "2"}]}',
        '{"x": {"y": {"k": 1, "k" : 1}}}',
        '{"s": "not \\": a key", "t": [1, {"u": 1, "u": 1}]}',
    ],
)
def test_duplicate_json_keys_are_refused(text: str) -> None:
    from mlwarden.signing._statement import StatementError, loads_strict

    with pytest.raises(StatementError, match="duplicate JSON key"):
        loads_strict(text)


def test_strings_that_look_like_keys_are_not_duplicates() -> None:
    from mlwarden.signing._statement import loads_strict

    text = '{"a": "b\\": c", "d": ["e:", "\\"f\\":"], "g": {"a": 1}}'
    assert loads_strict(text)["g"] == {"a": 1}


def test_a_crash_while_hashing_is_never_a_pass(model: Path) -> None:
    from mlwarden.errors import InternalError

    listing = list_tree(model)
    jobs = [HashJob(name=n, path=path_of(model, n), listed=s) for n, s in listing.files.items()]

    def explode(job: HashJob, result: object) -> bool:
        raise ValueError("a bug")

    with pytest.raises(InternalError, match="a bug"):
        hash_many(jobs, explode, workers=2)
