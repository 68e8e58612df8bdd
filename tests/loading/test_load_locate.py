"""Which bundle and which resource name a file is loaded under."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlwarden.errors import NotVerifiedError, PathNotFoundError, UsageError
from mlwarden.loading._locate import locate


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "models" / "churn" / "sub").mkdir(parents=True)
    (tmp_path / "models" / "churn" / "sub" / "model.pt").write_bytes(b"x")
    return tmp_path


def test_file_signed_on_its_own(tree: Path) -> None:
    file = tree / "models" / "churn" / "sub" / "model.pt"
    (tree / "models" / "churn.sig").write_text("{}")
    file.with_name("model.pt.sig").write_text("{}")
    target = locate(file, signature=None, root=None)  # the file's own bundle wins
    assert target.single_file
    assert target.name == "model.pt"
    assert target.signatures == (file.with_name("model.pt.sig"),)


def test_nearest_signed_folder(tree: Path) -> None:
    file = tree / "models" / "churn" / "sub" / "model.pt"
    (tree / "models.sig").write_text("{}")
    (tree / "models" / "churn.sig").write_text("{}")
    target = locate(file, signature=None, root=None)
    assert not target.single_file
    assert target.root == tree / "models" / "churn"
    assert target.root_name == "churn"
    assert target.name == "sub/model.pt"
    assert target.signatures == (tree / "models" / "churn.sig",)


def test_root_inferred_from_the_signature_name(tree: Path) -> None:
    file = tree / "models" / "churn" / "sub" / "model.pt"
    target = locate(file, signature=tree / "models" / "churn.sig", root=None)
    assert target.root == tree / "models" / "churn"
    assert target.name == "sub/model.pt"


def test_signature_elsewhere_means_a_single_file_unless_root_is_given(tree: Path) -> None:
    file = tree / "models" / "churn" / "sub" / "model.pt"
    bundle = tree / "bundles" / "release.sig"
    assert locate(file, signature=bundle, root=None).single_file
    target = locate(file, signature=[bundle, bundle], root=tree / "models")
    assert target.name == "churn/sub/model.pt"
    assert target.signatures == (bundle, bundle)


def test_nothing_signed(tree: Path) -> None:
    with pytest.raises(NotVerifiedError, match="no signature found"):
        locate(tree / "models" / "churn" / "sub" / "model.pt", signature=None, root=None)


def test_bad_locations(tree: Path) -> None:
    file = tree / "models" / "churn" / "sub" / "model.pt"
    with pytest.raises(UsageError, match="not inside"):
        locate(file, signature=None, root=tree / "elsewhere")
    with pytest.raises(UsageError, match="is a folder"):
        locate(tree / "models", signature=None, root=None)
    with pytest.raises(PathNotFoundError):
        locate(tree / "missing.pt", signature=None, root=None)
    with pytest.raises(UsageError, match="empty list"):
        locate(file, signature=[], root=None)
