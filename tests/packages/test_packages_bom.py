"""build_bom: a CycloneDX 1.6 BOM that validates, with models, datasets, packages, signatures."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from mlwarden.errors import PathNotFoundError
from mlwarden.packages import build_bom
from mlwarden.signing import sign


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("true",))


def _validate(document: dict[str, Any]) -> None:
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document))
    assert errors is None, errors


def _props(component: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in component.get("properties", [])}


def _by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in document["components"]}


@pytest.fixture
def models(tmp_path: Path) -> dict[str, Path]:
    clean = tmp_path / "clean.pkl"
    clean.write_bytes(pickle.dumps({"weights": [0.5, 1.5]}, protocol=4))
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps([1, _Payload()], protocol=2))
    folder = tmp_path / "model_dir"
    folder.mkdir()
    (folder / "weights.pkl").write_bytes(pickle.dumps({"w": [1.0]}, protocol=4))
    (folder / "config.json").write_text('{"layers": 2}', encoding="utf-8")
    data = tmp_path / "train_data"
    data.mkdir()
    for i in range(3):
        (data / f"part-{i}.csv").write_text(f"x,y\n{i},{i * 2}\n", encoding="utf-8")
    return {"clean": clean, "bad": bad, "folder": folder, "data": data}


def test_bom_validates_and_describes_models_datasets_packages(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("torch==2.13.0\nnumpy>=1.26\n", encoding="utf-8")
    document = build_bom(
        [models["clean"], models["bad"], models["folder"], models["data"]],
        requirements=requirements,
    )
    _validate(document)
    assert document["specVersion"] == "1.6"
    components = _by_name(document)

    clean = components["clean.pkl"]
    assert clean["type"] == "machine-learning-model"
    digest = hashlib.sha256(models["clean"].read_bytes()).hexdigest()
    assert clean["hashes"] == [{"alg": "SHA-256", "content": digest}]
    assert _props(clean)["mlwarden:scan.verdict"] == "clean"
    assert _props(clean)["mlwarden:format"] == "pickle"
    assert _props(clean)["mlwarden:signature.status"] == "unsigned"

    bad = _props(components["bad.pkl"])
    assert bad["mlwarden:scan.verdict"] == "malicious"
    assert "PKL001" in bad["mlwarden:scan.findings"]

    folder = components["model_dir"]
    assert folder["type"] == "machine-learning-model"
    assert sorted(c["name"] for c in folder["components"]) == ["config.json", "weights.pkl"]
    weights = next(c for c in folder["components"] if c["name"] == "weights.pkl")
    assert weights["hashes"][0]["alg"] == "SHA-256"
    assert _props(weights)["mlwarden:format"] == "pickle"
    assert _props(weights)["mlwarden:scan.verdict"] == "clean"
    assert _props(folder)["mlwarden:scan.verdict"] == "clean"

    data = components["train_data"]
    assert data["type"] == "data"
    assert _props(data)["mlwarden:files"] == "3"

    torch = components["torch"]
    assert torch["type"] == "library"
    assert torch["purl"] == "pkg:pypi/torch@2.13.0"
    assert components["numpy"]["purl"] == "pkg:pypi/numpy"
    assert _props(components["numpy"])["mlwarden:specifier"] == ">=1.26"


def test_marked_dataset_and_environment_packages(tmp_path: Path, models: dict[str, Path]) -> None:
    site = tmp_path / "site"
    info = site / "tokenizers-0.20.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tokenizers\nVersion: 0.20.0\n", encoding="utf-8"
    )
    document = build_bom(datasets=[models["data"]], search_path=[str(site)])
    _validate(document)
    components = _by_name(document)
    assert components["train_data"]["type"] == "data"
    assert components["tokenizers"]["purl"] == "pkg:pypi/tokenizers@0.20.0"


def _keypair(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    private = tmp_path / "signer.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = tmp_path / "signer.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def test_signature_status_verified_refused_and_not_verified(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    private, public = _keypair(tmp_path)
    sign(models["folder"], key=private)
    sign(models["clean"], key=private)
    document = build_bom([models["folder"], models["clean"], models["bad"]], public_key=public)
    _validate(document)
    components = _by_name(document)
    assert _props(components["model_dir"])["mlwarden:signature.status"] == "verified"
    assert _props(components["clean.pkl"])["mlwarden:signature.status"] == "verified"
    assert _props(components["bad.pkl"])["mlwarden:signature.status"] == "unsigned"

    # Without a key or policy a present signature is reported, never as verified.
    unverified = _by_name(build_bom([models["clean"]]))
    assert _props(unverified["clean.pkl"])["mlwarden:signature.status"] == "not-verified"

    # A changed file after signing: the BOM says refused and names the rule.
    (models["folder"] / "config.json").write_text('{"layers": 3}', encoding="utf-8")
    refused = _by_name(build_bom([models["folder"]], public_key=public))
    props = _props(refused["model_dir"])
    assert props["mlwarden:signature.status"] == "refused"
    assert "SIG" in props["mlwarden:signature.detail"]

    # The wrong key: refused as well.
    other = tmp_path / "other"
    other.mkdir()
    _, other_public = _keypair(other)
    wrong = _by_name(build_bom([models["clean"]], public_key=other_public))
    assert _props(wrong["clean.pkl"])["mlwarden:signature.status"] == "refused"


def test_malicious_file_in_a_folder_flags_the_folder(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    (models["folder"] / "extra.pkl").write_bytes(models["bad"].read_bytes())
    (models["folder"] / "link.pkl").symlink_to(models["clean"])
    document = build_bom([models["folder"]])
    _validate(document)
    (folder,) = document["components"]
    props = _props(folder)
    assert props["mlwarden:scan.verdict"] == "malicious"
    assert props["mlwarden:not-hashed"] == "link.pkl"  # links are named, never followed
    assert "link.pkl" not in {c["name"] for c in folder["components"]}


def test_missing_path_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(PathNotFoundError, match="nope"):
        build_bom([tmp_path / "nope.pt"])
