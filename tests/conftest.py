"""Session fixtures shared by the corpus tests (the corpus is built once per session)."""

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

CORPUS_BUILDER = Path(__file__).parent / "corpus" / "build.py"


def load_corpus_builder() -> ModuleType:
    """Import tests/corpus/build.py by path (it is not part of a package)."""
    name = "mlwarden_corpus_build"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, CORPUS_BUILDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True, slots=True, kw_only=True)
class Corpus:
    root: Path
    marker_dir: Path
    samples: list  # list[Sample]
    manifest: Path


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    builder = load_corpus_builder()
    root = tmp_path_factory.mktemp("corpus")
    marker_dir = tmp_path_factory.mktemp("corpus-markers")
    samples = builder.build_corpus(root, marker_dir=marker_dir)
    manifest = builder.write_manifest(root, samples)
    return Corpus(root=root, marker_dir=marker_dir, samples=samples, manifest=manifest)
