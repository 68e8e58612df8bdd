"""The scan corpus end to end: every malicious sample detected, every benign file clean.

The corpus (tests/corpus/) is built once per session by real frameworks and a
pickle assembler; the payloads are harmless and no sample is ever loaded.
"""

import _compat_pickle
import importlib
import json
import pickletools
from collections import defaultdict
from pathlib import Path

import pytest

import mlwarden
from mlwarden.report import ObjectResult, Status
from mlwarden.severity import Verdict

MIN_MALICIOUS, MIN_TECHNIQUES, MIN_BENIGN = 100, 30, 50


def _results_by_sample(samples: list, results: tuple[ObjectResult, ...]) -> dict:
    """Each sample's results: the file itself, or every file under a sample folder."""
    by_path = {str(s.path): s for s in samples}
    grouped: dict[Path, list[ObjectResult]] = defaultdict(list)
    for result in results:
        path = Path(result.path)
        for candidate in (path, *path.parents):
            sample = by_path.get(str(candidate))
            if sample is not None:
                grouped[sample.path].append(result)
                break
    return grouped


def _describe(result: ObjectResult) -> str:
    rules = ",".join(sorted({f.rule_id for f in result.findings})) or "no findings"
    return f"{result.status.value}/{result.verdict.value} ({rules}) {result.reason or ''}"


@pytest.fixture(scope="module")
def scanned(corpus) -> dict:
    report = mlwarden.scan([s.path for s in corpus.samples])
    return _results_by_sample(corpus.samples, report.results)


def test_corpus_meets_its_size_goals(corpus) -> None:
    bad = [s for s in corpus.samples if s.malicious]
    good = [s for s in corpus.samples if not s.malicious]
    assert len(bad) >= MIN_MALICIOUS
    assert len({s.technique for s in bad}) >= MIN_TECHNIQUES
    assert len(good) >= MIN_BENIGN
    assert all(s.path.exists() for s in corpus.samples)
    assert all(s.expect in ("malicious", "suspicious") for s in bad)


def test_manifest_describes_every_sample(corpus) -> None:
    manifest = json.loads(corpus.manifest.read_text())
    entries = {entry["path"]: entry for entry in manifest["samples"]}
    assert len(entries) == len(corpus.samples)
    for sample in corpus.samples:
        entry = entries[str(sample.path.relative_to(corpus.root))]
        assert (entry["malicious"], entry["technique"], entry["expect"]) == (
            sample.malicious,
            sample.technique,
            sample.expect,
        )
    assert manifest["malicious"] == sum(s.malicious for s in corpus.samples)


# Names a payload imports that this interpreter cannot resolve, on purpose: Windows-only
# modules, and callables from the published advisories that newer torch removed.
_ABSENT_HERE = {
    ("nt", "system"),
    ("torch._inductor.codecache", "compile_file"),
    ("torch.utils.bottleneck.__main__", "run_cprofile"),
}
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "SHORT_BINSTRING", "BINSTRING"}


def _imported_names(data: bytes) -> list[tuple[str, str]]:
    """(module, name) of each GLOBAL/INST, and of each STACK_GLOBAL fed by two strings."""
    names: list[tuple[str, str]] = []
    recent: list[tuple[str, object]] = []
    for opcode, arg, _pos in pickletools.genops(data):
        if opcode.name in ("GLOBAL", "INST"):
            module, name = str(arg).split(" ", 1)
            names.append(_compat_pickle.NAME_MAPPING.get((module, name), (module, name)))
        elif opcode.name == "STACK_GLOBAL" and [n for n, _ in recent[-2:]] == ["s", "s"]:
            names.append((str(recent[-2][1]), str(recent[-1][1])))
        if opcode.name not in ("MEMOIZE", "BINPUT", "LONG_BINPUT", "PUT"):
            recent.append(("s" if opcode.name in _STRING_OPS else "o", arg))
    return [(_compat_pickle.IMPORT_MAPPING.get(m, m), n) for m, n in names]


def _resolves(module: str, name: str) -> bool:
    try:
        target: object = importlib.import_module(module)
        for part in name.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        return False
    return True


def test_pickle_payloads_are_real(corpus) -> None:
    """Each hand-made pickle parses to STOP (unless broken on purpose) and imports names
    that exist: a scanner must be tested on payloads a loader would really run.
    Parsing uses pickletools.genops, which reads opcodes and executes nothing."""
    problems: list[str] = []
    for sample in corpus.samples:
        if not (sample.malicious and sample.format == "pickle" and sample.path.is_file()):
            continue
        data = sample.path.read_bytes()
        rel = sample.path.relative_to(corpus.root)
        try:
            names = _imported_names(data)
        except ValueError as exc:
            if sample.technique != "pickle-broken-stream":
                problems.append(f"{rel}: {exc}")
            continue
        problems += [
            f"{rel}: {module}.{name} does not resolve"
            for module, name in names
            if (module, name) not in _ABSENT_HERE and not _resolves(module, name)
        ]
    assert not problems, "\n".join(problems)


def test_every_malicious_sample_is_detected(corpus, scanned) -> None:
    misses: list[str] = []
    for sample in (s for s in corpus.samples if s.malicious):
        results = scanned.get(sample.path, [])
        verdict = Verdict.worst([r.verdict for r in results]) if results else Verdict.CLEAN
        wanted = Verdict.MALICIOUS if sample.expect == "malicious" else Verdict.SUSPICIOUS
        detected = verdict is not Verdict.CLEAN and (
            wanted is Verdict.SUSPICIOUS or verdict is Verdict.MALICIOUS
        )
        if not detected:
            seen = "; ".join(_describe(r) for r in results) or "no result"
            rel = sample.path.relative_to(corpus.root)
            misses.append(f"{rel} [{sample.technique}] wants {wanted.value}, got {seen}")
    assert not misses, f"{len(misses)} malicious samples missed:\n" + "\n".join(misses)


def test_every_benign_file_is_clean(corpus, scanned) -> None:
    false_positives: list[str] = []
    for sample in (s for s in corpus.samples if not s.malicious):
        results = scanned.get(sample.path, [])
        if not results:
            false_positives.append(f"{sample.path.relative_to(corpus.root)}: no result")
        for result in results:
            if result.findings or result.status is Status.FAILED:
                rel = Path(result.path).relative_to(corpus.root)
                details = "; ".join(f"{f.rule_id} {f.message}" for f in result.findings)
                false_positives.append(f"{rel} [{sample.technique}] {_describe(result)}: {details}")
    assert not false_positives, f"{len(false_positives)} false positives:\n" + "\n".join(
        false_positives
    )


def test_benign_model_files_are_recognised(corpus, scanned) -> None:
    """A clean verdict must come from a reader, not from an unrecognised skip."""
    skipped = []
    for sample in (s for s in corpus.samples if not s.malicious and s.path.is_file()):
        for result in scanned.get(sample.path, []):
            if result.status is not Status.CHECKED:
                skipped.append(f"{sample.path.relative_to(corpus.root)}: {_describe(result)}")
    assert not skipped, "benign model files not checked:\n" + "\n".join(skipped)


def test_corpus_never_loaded(corpus, scanned) -> None:
    """Building and scanning ran no payload: the marker folder is still empty."""
    assert scanned
    assert list(corpus.marker_dir.iterdir()) == []


def test_cli_gates_the_corpus(corpus, capsys) -> None:
    """`mlwarden scan --fail-on suspicious`: 0 for the benign folder, 1 for the rest."""
    from mlwarden.cli import main

    benign = corpus.root / "benign"
    assert main(["scan", "--format", "json", "--fail-on", "suspicious", str(benign)]) == 0
    clean = json.loads(capsys.readouterr().out)
    assert clean["verdict"] == "clean"
    assert clean["summary"]["checked"] >= MIN_BENIGN
    malicious = sorted({str(s.path) for s in corpus.samples if s.malicious})
    assert main(["scan", "--format", "json", "--fail-on", "suspicious", *malicious]) == 1
    dirty = json.loads(capsys.readouterr().out)
    assert dirty["verdict"] == "malicious"
