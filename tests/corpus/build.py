"""Build the mlwarden scan corpus: malicious samples and benign framework files.

Usable three ways: imported by path (tests/conftest.py, bench/), or run as
``python tests/corpus/build.py OUTDIR`` to build OUTDIR and OUTDIR/manifest.json.

Every malicious payload is harmless (``touch <marker_dir>/pwned-<technique>``)
and nothing here ever loads a sample: the builders only dump and write bytes.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import corpus_benign  # noqa: E402
import corpus_containers  # noqa: E402
import corpus_formats  # noqa: E402
import corpus_pickles  # noqa: E402
from corpus_common import Sample, Writer  # noqa: E402

__all__ = ["Sample", "build_corpus", "write_manifest"]

# Benign files first: they must be what the frameworks write in a fresh process.
SECTIONS = (corpus_benign, corpus_pickles, corpus_containers, corpus_formats)


def build_corpus(root: Path, *, marker_dir: Path | None = None) -> list[Sample]:
    """Write every sample under `root` (created if needed) and describe them.

    `marker_dir` is where a payload would leave its marker file if a sample were
    ever loaded; by default a fresh temporary folder.
    """
    os.environ.setdefault("KERAS_BACKEND", "torch")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if marker_dir is None:
        marker_dir = Path(tempfile.mkdtemp(prefix="mlwarden-corpus-marker-"))
    writer = Writer(root=root, marker_dir=Path(marker_dir))
    for section in SECTIONS:
        section.build(writer)
    paths = [s.path for s in writer.samples]
    duplicates = {p for p in paths if paths.count(p) > 1}
    if duplicates:
        raise RuntimeError(f"corpus paths used twice: {sorted(map(str, duplicates))}")
    return list(writer.samples)


def write_manifest(root: Path, samples: list[Sample]) -> Path:
    """OUTDIR/manifest.json: one entry per sample, paths relative to `root`."""
    manifest = {
        "malicious": sum(s.malicious for s in samples),
        "benign": sum(not s.malicious for s in samples),
        "techniques": sorted({s.technique for s in samples if s.malicious}),
        "samples": [s.to_dict(root) for s in samples],
    }
    target = Path(root) / "manifest.json"
    target.write_text(json.dumps(manifest, indent=2) + "\n")
    return target


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: build.py OUTDIR\n")
        return 2
    root = Path(argv[0])
    samples = build_corpus(root)
    target = write_manifest(root, samples)
    bad = sum(s.malicious for s in samples)
    kinds = len({s.technique for s in samples if s.malicious})
    sys.stdout.write(
        f"{bad} malicious ({kinds} techniques), {len(samples) - bad} benign: {target}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
