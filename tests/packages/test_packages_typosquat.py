"""Typosquat detection: known near misses flagged, real packages (all of this venv) not."""

from __future__ import annotations

from importlib import metadata

import pytest

from mlwarden.packages._typosquat import KNOWN_LEGITIMATE, POPULAR, find_typosquat


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("scikit-learnn", "scikit-learn"),  # doubled letter
        ("numpyy", "numpy"),
        ("tourch", "torch"),  # inserted letter
        ("tensorfl0w", "tensorflow"),  # digit for letter
        ("onnxrutime", "onnxruntime"),  # dropped letter
        ("safetensor", "safetensors"),
        ("transfomers", "transformers"),
        ("pandsa", "pandas"),  # swapped pair
        ("scikitlearn", "scikit-learn"),  # separator dropped
        ("hugging-face-hub", "huggingface-hub"),  # separator added
        ("huggingface.hub", None),  # dots normalise to the real name: pip installs the real one
        ("py-torch", "torch"),  # prefix
        ("numpy-python", "numpy"),  # suffix
        ("matplot1ib", "matplotlib"),  # 1 for l
        ("sentence-transfromers", "sentence-transformers"),  # two edits on a long name
    ],
)
def test_near_misses_are_flagged(name: str, target: str | None) -> None:
    found = find_typosquat(name)
    if target is None:
        assert found is None
    else:
        assert found is not None and found.target == target, found


@pytest.mark.parametrize(
    "name",
    [
        "torchvision",
        "torchaudio",
        "keras-nlp",
        "tf-keras",
        "onnxruntime-gpu",
        "jaxlib",
        "Scikit_Learn",  # the popular name itself, spelled as pip allows
        "scapy",  # one letter from scipy, a real package
        "flask",
        "pytorch",  # the PyTorch project's own placeholder
        "tensorboardX",
        "dataset",
        "jax",  # short names are never judged
        "abc",
    ],
)
def test_real_packages_are_not_flagged(name: str) -> None:
    assert find_typosquat(name) is None


def test_no_popular_or_allowlisted_name_is_flagged() -> None:
    flagged = [n for n in sorted(POPULAR | KNOWN_LEGITIMATE) if find_typosquat(n)]
    assert flagged == []


def test_zero_flags_on_the_installed_environment() -> None:
    names = {d.metadata["Name"] for d in metadata.distributions() if d.metadata["Name"]}
    assert len(names) > 50  # the whole venv: torch, keras, onnx, their dependencies
    flagged = {n: find_typosquat(n) for n in sorted(names)}
    assert {n: f for n, f in flagged.items() if f is not None} == {}
