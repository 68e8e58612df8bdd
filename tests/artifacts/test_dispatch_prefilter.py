"""The dispatcher's cheap pre-tests never hide content a reader would recognise."""

from __future__ import annotations

import random
from pathlib import Path

from tests.conftest import Corpus

from mlwarden.artifacts import _dispatch
from mlwarden.artifacts._dispatch import HEAD_BYTES, _module_readers


def _heads(corpus: Corpus) -> list[tuple[bytes, int]]:
    heads = []
    for path in sorted(Path(corpus.root).rglob("*")):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as stream:
                heads.append((stream.read(HEAD_BYTES), path.stat().st_size))
    rng = random.Random(0)
    for _ in range(2000):
        size = rng.randrange(0, 2048)
        heads.append((bytes(rng.randrange(256) for _ in range(size)), size))
    return heads


def test_prefilters_admit_everything_their_readers_sniff(corpus: Corpus) -> None:
    heads = _heads(corpus)
    recognised = 0
    for name, admits in _dispatch._READER_MODULES:
        if admits is None:
            continue
        for head, size in heads:
            if any(reader.sniff(head, size) for reader in _module_readers(name)):
                recognised += 1
                assert admits(head, size), (name, head[:16])
    assert recognised > 50  # the corpus holds archives, HDF5, safetensors, GGUF ...
