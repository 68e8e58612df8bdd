"""Compare mlwarden's detection with picklescan, modelscan, fickling and modelaudit.

Builds the test corpus (tests/corpus/build.py: malicious samples with harmless payloads,
benign files made by real frameworks), runs every sample through every scanner as its own
subprocess (as a user or CI would, start-up included) and prints, per tool: detection
rate, false-positive rate, errors, crashes and the median seconds per file; then, per
tool, the techniques it missed and the benign files it flagged.

Usage (from the repository root, with the product's virtualenv, which has the frameworks
the corpus builder needs):

    bash bench/setup_peers.sh
    .venv/bin/python bench/scan_compare.py [--timeout 120] [--tools mlwarden,picklescan]

Outcomes: "flagged" is the tool's verdict that the file is unsafe; "error" is the tool
saying it could not scan the file (its error exit code); "crash" is a timeout, a
traceback or output that cannot be read. Errors and crashes count as *not detected* for a
malicious sample and are listed apart (not as false positives) for a benign one.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import importlib.util
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH,
    PEERS_BIN,
    REPO,
    WORK,
    RunResult,
    fresh_dir,
    median,
    mlwarden_command,
    peer,
    run,
    versions,
)

CORPUS_BUILDER = REPO / "tests" / "corpus" / "build.py"


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    path: Path
    malicious: bool
    technique: str
    format: str
    note: str = ""
    expect: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What one tool view concluded about one sample."""

    flagged: bool
    error: bool = False
    crash: bool = False
    detail: str = ""


@dataclass(slots=True, kw_only=True)
class Record:
    sample: str
    digest: str
    malicious: bool
    technique: str
    format: str
    tool: str
    seconds: float | None
    returncode: int | None
    outcome: Outcome
    markers: list[str] = field(default_factory=list)
    reused: bool = False
    """Taken from an earlier run (--reuse): same peer version, same bytes."""


# --- the tools ---------------------------------------------------------------------------


def _traceback(result: RunResult) -> bool:
    return "Traceback (most recent call last)" in result.stderr


def _crash(result: RunResult, why: str) -> Outcome:
    if result.timed_out:
        return Outcome(flagged=False, crash=True, detail="timeout")
    tail = (result.stderr.strip().splitlines() or [""])[-1][:160]
    return Outcome(flagged=False, crash=True, detail=f"{why}: rc={result.returncode} {tail}")


def _rule_ids(report: object) -> list[str]:
    """Rule ids anywhere in mlwarden's JSON report (tolerant of its exact shape)."""
    found: list[str] = []
    stack = [report]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in {"rule_id", "rule"} and isinstance(value, str):
                    found.append(value)
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return sorted(set(found))


def mlwarden_views(result: RunResult, _scratch: Path) -> dict[str, Outcome]:
    # Exit 1 = findings at or above --fail-on (default: suspicious), 2 = could not check.
    # A Python traceback also exits 1, so a verdict needs a readable JSON report too.
    if result.timed_out or _traceback(result):
        return {"mlwarden": _crash(result, "traceback")}
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        report = None
    if result.returncode == 2:
        detail = ",".join(_rule_ids(report)) if report is not None else result.stderr[-160:]
        return {"mlwarden": Outcome(flagged=False, error=True, detail=detail.strip())}
    if report is None or result.returncode not in {0, 1}:
        return {"mlwarden": _crash(result, "no JSON report")}
    rules = ",".join(_rule_ids(report))
    return {"mlwarden": Outcome(flagged=result.returncode == 1, detail=rules)}


_PICKLESCAN_DANGEROUS = re.compile(r"^Dangerous globals: (\d+)$", re.MULTILINE)


def picklescan_views(result: RunResult, _scratch: Path) -> dict[str, Outcome]:
    # picklescan exits 2 on any scan error even when it also found dangerous globals, so
    # the verdict comes from its summary line.
    match = _PICKLESCAN_DANGEROUS.search(result.stdout)
    if result.timed_out or match is None:
        return {"picklescan": _crash(result, "no summary")}
    if int(match.group(1)) > 0:
        return {"picklescan": Outcome(flagged=True, detail=f"{match.group(1)} dangerous")}
    if result.returncode == 2:
        return {"picklescan": Outcome(flagged=False, error=True, detail="scan error")}
    return {"picklescan": Outcome(flagged=False)}


def modelscan_views(result: RunResult, scratch: Path) -> dict[str, Outcome]:
    # Exit codes: 0 clean, 1 issues, 2 errors (wins over 1), 3 no supported file, 4 usage.
    # The JSON report says whether issues were found whatever the exit code.
    try:
        report = json.loads((scratch / "modelscan.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {"modelscan": _crash(result, "no JSON report")}
    issues = report.get("issues") or []
    if issues:
        severities = sorted({str(issue.get("severity")) for issue in issues})
        return {"modelscan": Outcome(flagged=True, detail=",".join(severities))}
    if result.returncode == 3:
        return {"modelscan": Outcome(flagged=False, error=True, detail="no supported file")}
    if result.returncode == 2 or report.get("errors"):
        errors = report.get("errors") or [{}]
        detail = str(errors[0].get("description", errors[0]))[:160]
        return {"modelscan": Outcome(flagged=False, error=True, detail=detail)}
    return {"modelscan": Outcome(flagged=False)}


def fickling_views(result: RunResult, _scratch: Path) -> dict[str, Outcome]:
    # --check-safety: 0 likely safe, 1 unsafe, 2 could not parse as (stacked) pickles.
    if result.timed_out or _traceback(result) or result.returncode not in {0, 1, 2}:
        return {"fickling": _crash(result, "traceback")}
    if result.returncode == 2:
        tail = (result.stderr.strip().splitlines() or [""])[0][:160]
        return {"fickling": Outcome(flagged=False, error=True, detail=tail)}
    return {"fickling": Outcome(flagged=result.returncode == 1)}


def fickling_api_views(result: RunResult, _scratch: Path) -> dict[str, Outcome]:
    try:
        verdict = json.loads(result.stdout)
    except json.JSONDecodeError:
        return {"fickling-api": _crash(result, "no JSON")}
    detail = "; ".join(verdict.get("errors", []))[:160]
    return {"fickling-api": Outcome(flagged=not verdict["safe"], detail=detail)}


def modelaudit_views(result: RunResult, _scratch: Path) -> dict[str, Outcome]:
    # Exit codes: 0 no issue, 1 issues found (any severity, even info/warning), 2 errors.
    # "critical only" is the view of a user who gates on critical findings alone.
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        crash = _crash(result, "no JSON report")
        return {"modelaudit": crash, "modelaudit-critical": crash}
    issues = report.get("issues") or []
    severities = collections.Counter(str(issue.get("severity")) for issue in issues)
    summary = ",".join(f"{name}:{count}" for name, count in sorted(severities.items()))
    critical = [i for i in issues if i.get("severity") == "critical"]
    critical_detail = "; ".join(str(i.get("message", ""))[:80] for i in critical[:2])
    if result.returncode == 2:
        default = Outcome(flagged=False, error=True, detail=summary or "scan error")
    else:
        default = Outcome(flagged=result.returncode == 1, detail=summary)
    errored = result.returncode == 2 and not critical
    return {
        "modelaudit": default,
        "modelaudit-critical": Outcome(
            flagged=bool(critical), error=errored, detail=critical_detail or summary
        ),
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Tool:
    name: str
    views: tuple[str, ...]
    command: Callable[[Path, Path], list[str]]
    interpret: Callable[[RunResult, Path], dict[str, Outcome]]
    env: dict[str, str] = field(default_factory=dict)
    folders: bool = True
    """Whether the tool scans a folder (SavedModel, ONNX with external data)."""


def tools() -> list[Tool]:
    mlwarden, mlwarden_env = mlwarden_command()
    return [
        Tool(
            name="mlwarden",
            views=("mlwarden",),
            command=lambda path, _s: [*mlwarden, "scan", str(path), "--format", "json"],
            interpret=mlwarden_views,
            env=mlwarden_env,
        ),
        Tool(
            name="picklescan",
            views=("picklescan",),
            command=lambda path, _s: [peer("picklescan"), "--path", str(path)],
            interpret=picklescan_views,
        ),
        Tool(
            name="modelscan",
            views=("modelscan",),
            command=lambda path, s: [
                peer("modelscan"),
                "-p",
                str(path),
                "-r",
                "json",
                "-o",
                str(s / "modelscan.json"),
            ],
            interpret=modelscan_views,
        ),
        Tool(
            name="fickling",
            views=("fickling",),
            command=lambda path, s: [
                peer("fickling"),
                "--check-safety",
                "--json-output",
                str(s / "f.json"),
                str(path),
            ],
            interpret=fickling_views,
            folders=False,
        ),
        Tool(
            name="fickling-api",
            views=("fickling-api",),
            command=lambda path, _s: [
                str(PEERS_BIN / "python"),
                str(BENCH / "_fickling_api.py"),
                str(path),
            ],
            interpret=fickling_api_views,
            folders=False,
        ),
        Tool(
            name="modelaudit",
            views=("modelaudit", "modelaudit-critical"),
            # --no-cache: every run really scans (modelaudit caches results by file hash).
            command=lambda path, _s: [
                peer("modelaudit"),
                "scan",
                "--no-cache",
                "--format",
                "json",
                str(path),
            ],
            interpret=modelaudit_views,
        ),
    ]


# --- the corpus --------------------------------------------------------------------------


def load_corpus(root: Path, marker_dir: Path) -> list[Sample]:
    """Build the corpus with tests/corpus/build.py (imported by path)."""
    if not CORPUS_BUILDER.exists():
        raise SystemExit(f"{CORPUS_BUILDER} not found; use --dev-samples to try the bench")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    for extra in (str(REPO / "src"), str(REPO), str(CORPUS_BUILDER.parent)):
        if extra not in sys.path:
            sys.path.insert(0, extra)
    spec = importlib.util.spec_from_file_location("mlwarden_bench_corpus", CORPUS_BUILDER)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {CORPUS_BUILDER}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    built = module.build_corpus(root, marker_dir=marker_dir)
    return [
        Sample(
            path=Path(item.path),
            malicious=bool(item.malicious),
            technique=str(item.technique),
            format=str(item.format),
            note=str(getattr(item, "note", "")),
            expect=str(getattr(item, "expect", "")),
        )
        for item in built
    ]


def dev_samples(root: Path, marker_dir: Path) -> list[Sample]:
    """A handful of samples for trying the bench before the corpus exists."""
    import pickle
    import zipfile

    import numpy as np
    import torch

    marker = marker_dir / "dev-pwned"
    command = f"touch {marker}".encode()
    reduce_pickle = (
        b"\x80\x02cposix\nsystem\nq\x00X"
        + len(command).to_bytes(4, "little")
        + command
        + b"q\x01\x85q\x02Rq\x03."
    )
    samples: list[Sample] = []

    def add(name: str, data: bytes | None, malicious: bool, technique: str, fmt: str) -> None:
        path = root / name
        if data is not None:
            path.write_bytes(data)
        samples.append(Sample(path=path, malicious=malicious, technique=technique, format=fmt))

    add("os_system.pkl", reduce_pickle, True, "reduce-os-system", "pickle")
    torch.save({"w": torch.zeros(4, 4)}, root / "state_dict.pt")
    add("state_dict.pt", None, False, "benign", "pytorch")
    with (
        zipfile.ZipFile(root / "state_dict.pt") as source,
        zipfile.ZipFile(root / "torch_reduce.pt", "w") as target,
    ):
        for info in source.infolist():
            data = source.read(info.filename)
            target.writestr(info, reduce_pickle if info.filename.endswith("data.pkl") else data)
    add("torch_reduce.pt", None, True, "torch-zip-data-pkl", "pytorch")
    add("plain.pkl", pickle.dumps({"a": [1, 2, 3]}, protocol=4), False, "benign", "pickle")
    np.save(root / "array.npy", np.arange(8))
    add("array.npy", None, False, "benign", "npy")
    return samples


# --- running -----------------------------------------------------------------------------


def sample_id(sample: Sample, root: Path) -> str:
    try:
        return str(sample.path.relative_to(root))
    except ValueError:
        return sample.path.name


def digest(path: Path) -> str:
    """sha256 of a sample's bytes (a folder: of its files' relative paths and bytes)."""
    sha = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        sha.update(str(file.relative_to(path) if path.is_dir() else "").encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
    return sha.hexdigest()


def previous_records(path: Path | None, current_versions: dict[str, str]) -> dict[tuple, dict]:
    """Records of an earlier run, by (tool view, sample, digest), for peers whose version
    has not changed: a peer's verdict on identical bytes does not change either."""
    if path is None:
        return {}
    old = json.loads(path.read_text())
    same = {
        name
        for name, version in old.get("versions", {}).items()
        if current_versions.get(name) == version
    }
    reusable = {}
    for record in old.get("records", []):
        package = record["tool"].split("-")[0]
        if package != "mlwarden" and package in same and record.get("digest"):
            reusable[(record["tool"], record["sample"], record["digest"])] = record
    return reusable


def scan_all(
    samples: list[Sample],
    selected: list[Tool],
    timeout: float,
    root: Path,
    marker_dir: Path,
    reuse: dict[tuple, dict],
) -> list[Record]:
    records: list[Record] = []
    total = len(samples) * len(selected)
    done = reused = 0
    started = time.monotonic()
    for sample in samples:
        ident = sample_id(sample, root)
        sample_digest = digest(sample.path)
        for tool in selected:
            old = [reuse.get((view, ident, sample_digest)) for view in tool.views]
            if all(old):
                records.extend(_from_dict(item) for item in old if item is not None)
                reused += 1
            else:
                records.extend(scan_one(sample, ident, sample_digest, tool, timeout, marker_dir))
            done += 1
            if done % 50 == 0 or done == total:
                elapsed = time.monotonic() - started
                print(
                    f"  {done}/{total} runs ({reused} reused), {elapsed:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
    return records


def scan_one(
    sample: Sample, ident: str, sample_digest: str, tool: Tool, timeout: float, marker_dir: Path
) -> list[Record]:
    """Run one tool on one sample: a record per view of the tool."""
    if sample.path.is_dir() and not tool.folders:
        unsupported = Outcome(flagged=False, error=True, detail="folders not supported")
        return [
            _record(sample, ident, sample_digest, view, None, unsupported, [])
            for view in tool.views
        ]
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch_name:
        scratch = Path(scratch_name)
        result = run(tool.command(sample.path, scratch), timeout=timeout, cwd=scratch, env=tool.env)
        views = tool.interpret(result, scratch)
    # A payload that ran left a marker file: no scanner may ever execute one.
    markers = sorted(p.name for p in marker_dir.iterdir())
    for leftover in marker_dir.iterdir():
        leftover.unlink()
    return [
        _record(sample, ident, sample_digest, view, result, outcome, markers)
        for view, outcome in views.items()
    ]


def _from_dict(data: dict) -> Record:
    return Record(**{**data, "outcome": Outcome(**data["outcome"]), "reused": True})


def _record(
    sample: Sample,
    ident: str,
    sample_digest: str,
    view: str,
    result: RunResult | None,
    outcome: Outcome,
    markers: list[str],
) -> Record:
    return Record(
        sample=ident,
        digest=sample_digest,
        malicious=sample.malicious,
        technique=sample.technique,
        format=sample.format,
        tool=view,
        seconds=result.seconds if result is not None else None,
        returncode=result.returncode if result is not None else None,
        outcome=outcome,
        markers=markers,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    tool: str
    malicious: int
    detected: int
    benign: int
    false_positives: int
    benign_errors: int
    blocked_malicious: int
    blocked_benign: int
    errors: int
    crashes: int
    median_s: float | None
    payload_runs: int

    @property
    def detection_rate(self) -> float:
        return self.detected / self.malicious if self.malicious else 0.0

    @property
    def fp_rate(self) -> float:
        return self.false_positives / self.benign if self.benign else 0.0


def _blocks(outcome: Outcome) -> bool:
    """Whether a CI job failing on any non-zero exit stops this file."""
    return outcome.flagged or outcome.error or outcome.crash


def summarise(records: list[Record], order: Iterable[str]) -> list[Summary]:
    by_tool: dict[str, list[Record]] = collections.defaultdict(list)
    for record in records:
        by_tool[record.tool].append(record)
    summaries = []
    for tool in order:
        rows = by_tool.get(tool, [])
        if not rows:
            continue
        malicious = [r for r in rows if r.malicious]
        benign = [r for r in rows if not r.malicious]
        summaries.append(
            Summary(
                tool=tool,
                malicious=len(malicious),
                detected=sum(r.outcome.flagged for r in malicious),
                benign=len(benign),
                false_positives=sum(r.outcome.flagged for r in benign),
                benign_errors=sum(r.outcome.error for r in benign),
                blocked_malicious=sum(_blocks(r.outcome) for r in malicious),
                blocked_benign=sum(_blocks(r.outcome) for r in benign),
                errors=sum(r.outcome.error for r in rows),
                crashes=sum(r.outcome.crash for r in rows),
                median_s=median([r.seconds for r in rows if r.seconds is not None]),
                payload_runs=sum(bool(r.markers) for r in rows),
            )
        )
    return summaries


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def summary_table(summaries: list[Summary], markdown: bool) -> str:
    header = [
        "tool",
        "detected",
        "detection",
        "benign flagged",
        "FP rate",
        "fail-closed blocked (malicious / benign)",
        "errors (on benign)",
        "crashes",
        "median s/file",
        "payload ran",
    ]
    rows = [
        [
            s.tool,
            f"{s.detected}/{s.malicious}",
            _pct(s.detection_rate),
            f"{s.false_positives}/{s.benign}",
            _pct(s.fp_rate),
            f"{s.blocked_malicious}/{s.malicious} / {s.blocked_benign}/{s.benign}",
            f"{s.errors} ({s.benign_errors})",
            str(s.crashes),
            f"{s.median_s:.3f}" if s.median_s is not None else "-",
            str(s.payload_runs),
        ]
        for s in summaries
    ]
    return _table(header, rows, markdown)


def _table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


FAMILIES = (
    ("pickle", ("pickle-",)),
    ("pytorch", ("torch-", "torchscript-")),
    ("joblib, numpy", ("joblib-", "numpy-", "npz-")),
    ("keras, tensorflow", ("keras-", "tf-")),
    ("onnx, gguf, safetensors", ("onnx-", "gguf-", "safetensors-")),
    ("archives, disguises", ("archive-", "zip-", "nested-", "misleading-")),
)


def family(technique: str) -> str:
    for name, prefixes in FAMILIES:
        if technique.startswith(prefixes):
            return name
    return "other"


def family_table(records: list[Record], order: Iterable[str], markdown: bool) -> str:
    """Malicious samples flagged per family of techniques, per tool."""
    totals = collections.Counter(
        family(r.technique) for r in records if r.malicious and r.tool == "mlwarden"
    ) or collections.Counter(family(r.technique) for r in records if r.malicious)
    names = [n for n, _ in FAMILIES if totals.get(n)] + (["other"] if totals.get("other") else [])
    header = ["tool", *[f"{n} ({totals[n]})" for n in names]]
    rows = []
    for tool in order:
        flagged = collections.Counter(
            family(r.technique)
            for r in records
            if r.tool == tool and r.malicious and r.outcome.flagged
        )
        if any(r.tool == tool for r in records):
            rows.append([tool, *[f"{flagged[n]}" for n in names]])
    return _table(header, rows, markdown)


def misses_text(records: list[Record], order: Iterable[str], markdown: bool) -> str:
    """Per tool: the techniques it missed, the benign files it flagged.

    The terminal form names every missed sample and why (error, crash); the markdown
    form (for BENCHMARKS.md) counts them per technique.
    """
    out: list[str] = []
    for tool in order:
        rows = [r for r in records if r.tool == tool]
        if not rows:
            continue
        missed: dict[str, list[Record]] = collections.defaultdict(list)
        per_technique = collections.Counter(r.technique for r in rows if r.malicious)
        for r in rows:
            if r.malicious and not r.outcome.flagged:
                missed[r.technique].append(r)
        flagged_benign = [r for r in rows if not r.malicious and r.outcome.flagged]
        title = f"{tool}: missed {len(missed)} of {len(per_technique)} techniques"
        out.append(f"### {title}" if markdown else title)
        for technique in sorted(missed):
            if markdown:
                errors = sum(r.outcome.error for r in missed[technique])
                crashes = sum(r.outcome.crash for r in missed[technique])
                why = ", ".join(
                    f"{n} {word}" for n, word in ((errors, "errors"), (crashes, "crashes")) if n
                )
                count = f"{len(missed[technique])}/{per_technique[technique]} samples"
                out.append(f"- {technique}: {count}" + (f" ({why})" if why else ""))
                continue
            items = ", ".join(
                f"{r.sample}" + (f" [{_kind(r.outcome)}]" if _kind(r.outcome) else "")
                for r in missed[technique]
            )
            out.append(f"- {technique}: {items}")
        if flagged_benign:
            names = ", ".join(r.sample for r in flagged_benign)
            if markdown and len(flagged_benign) > 5:
                names = f"{len(flagged_benign)} files (see the raw results)"
            out.append(f"- false positives: {names}")
        out.append("")
    return "\n".join(out)


def _kind(outcome: Outcome) -> str:
    if outcome.crash:
        return f"crash: {outcome.detail}" if outcome.detail else "crash"
    if outcome.error:
        return "error"
    return ""


def main(argv: list[str] | None = None) -> int:
    all_tools = tools()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per file and tool")
    parser.add_argument(
        "--tools",
        default=",".join(t.name for t in all_tools),
        help="comma-separated subset of: " + ", ".join(t.name for t in all_tools),
    )
    parser.add_argument("--dev-samples", action="store_true", help="a few built-in samples")
    parser.add_argument("--limit", type=int, default=0, help="scan only the first N samples")
    parser.add_argument(
        "--json-out", type=Path, default=WORK / "scan_compare.json", help="raw results"
    )
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    parser.add_argument(
        "--reuse",
        type=Path,
        help="raw results of an earlier run: peers' verdicts on identical bytes are reused "
        "(mlwarden always runs)",
    )
    args = parser.parse_args(argv)

    wanted = [name.strip() for name in args.tools.split(",") if name.strip()]
    selected = [t for t in all_tools if t.name in wanted]
    if len(selected) != len(wanted):
        parser.error(f"unknown tool in {args.tools!r}")

    corpus_root = fresh_dir(WORK / "corpus")
    marker_dir = fresh_dir(WORK / "markers")
    build_start = time.monotonic()
    builder = dev_samples if args.dev_samples else load_corpus
    samples = builder(corpus_root, marker_dir)
    if args.limit:
        samples = samples[: args.limit]
    malicious = [s for s in samples if s.malicious]
    print(
        f"corpus: {len(malicious)} malicious ({len({s.technique for s in malicious})} "
        f"techniques), {len(samples) - len(malicious)} benign, built in "
        f"{time.monotonic() - build_start:.0f} s",
        file=sys.stderr,
    )
    if any(marker_dir.iterdir()):
        raise SystemExit("a payload ran while the corpus was built: refusing to continue")

    found_versions = versions()
    reuse = previous_records(args.reuse, found_versions)
    records = scan_all(samples, selected, args.timeout, corpus_root, marker_dir, reuse)
    order = [view for t in selected for view in t.views]
    summaries = summarise(records, order)

    heading = "##" if args.markdown else ""
    print()
    print(f"{heading} Detection and false positives".strip())
    print(summary_table(summaries, args.markdown))
    print()
    print(f"{heading} Malicious samples flagged, by family of technique".strip())
    print(family_table(records, order, args.markdown))
    print()
    print(f"{heading} Misses by technique".strip())
    print(misses_text(records, order, args.markdown))
    print("versions: " + ", ".join(f"{k} {v}" for k, v in sorted(found_versions.items())))

    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "cpus": os.cpu_count(),
                "versions": found_versions,
                "timeout_s": args.timeout,
                "samples": [{**asdict(s), "path": sample_id(s, corpus_root)} for s in samples],
                "summary": [asdict(s) for s in summaries],
                "records": [asdict(r) for r in records],
            },
            indent=1,
            default=str,
        )
    )
    reused = sum(r.reused for r in records)
    if reused:
        print(f"{reused} peer verdicts reused from {args.reuse}", file=sys.stderr)
    print(f"raw results: {args.json_out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
