"""Time scanners on ~1 GB model files: a PyTorch checkpoint and a safetensors file.

A scanner should not read tensor data: scanning a 1 GB checkpoint ought to cost about as
much as scanning its pickle (a few kB) or the safetensors JSON header. This script makes
both files in bench/.work/large/ (deleted at the end unless --keep), then runs each tool
as a subprocess on each file: one untimed warm-up, then --runs timed runs (wall time
around subprocess.run, start-up included), and reports the median. Tiny files with the
same structure give each tool's start-up cost, for comparison.

    .venv/bin/python bench/large_files.py [--runs 5] [--cold] [--keep]

--cold also times one run per tool and file after dropping the page cache (needs root);
warm-cache medians are the primary figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, WORK, RunResult, fresh_dir, median, mlwarden_command, peer, run, versions

TENSORS = 16
FLOATS_PER_TENSOR = 16 * 1024 * 1024  # 64 MiB of float32 each: 1 GiB in all


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    tool: str
    file: str
    size_bytes: int
    runs_s: list[float]
    median_s: float | None
    cold_s: float | None
    outcome: str


def make_files(folder: Path) -> dict[str, Path]:
    """The large files and tiny files of the same structure (start-up reference)."""
    import torch
    from safetensors.torch import save_file

    def state(n: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(0)
        return {
            f"layer{i}.weight": torch.rand(n, generator=generator, dtype=torch.float32)
            for i in range(TENSORS)
        }

    large = state(FLOATS_PER_TENSOR)
    files = {
        "checkpoint-1GB.pt": folder / "checkpoint-1GB.pt",
        "model-1GB.safetensors": folder / "model-1GB.safetensors",
        "checkpoint-tiny.pt": folder / "checkpoint-tiny.pt",
        "model-tiny.safetensors": folder / "model-tiny.safetensors",
    }
    torch.save(large, files["checkpoint-1GB.pt"])
    save_file(large, str(files["model-1GB.safetensors"]))
    del large
    tiny = state(16)
    torch.save(tiny, files["checkpoint-tiny.pt"])
    save_file(tiny, str(files["model-tiny.safetensors"]))
    return files


def commands() -> dict[str, tuple[list[str], dict[str, str]]]:
    mlwarden, mlwarden_env = mlwarden_command()
    return {
        "mlwarden": ([*mlwarden, "scan", "--format", "json"], mlwarden_env),
        "picklescan": ([peer("picklescan"), "--path"], {}),
        "modelscan": ([peer("modelscan"), "-r", "json", "-p"], {}),
        # --no-cache: modelaudit would otherwise answer repeat runs from its result cache.
        "modelaudit": ([peer("modelaudit"), "scan", "--no-cache", "--format", "json"], {}),
    }


def describe(tool: str, result: RunResult) -> str:
    """A short word on what the run concluded, so a fast failure is not taken for speed."""
    if result.timed_out:
        return "timeout"
    if "Traceback (most recent call last)" in result.stderr:
        return f"traceback (rc={result.returncode})"
    if tool == "picklescan":
        scanned = re.search(r"^Scanned files: (\d+)$", result.stdout, re.MULTILINE)
        count = scanned.group(1) if scanned else "?"
        return f"rc={result.returncode}, scanned files: {count}"
    if tool == "modelscan" and result.returncode == 3:
        return "rc=3 (no supported file)"
    if tool == "mlwarden":
        try:
            report = json.loads(result.stdout)
        except json.JSONDecodeError:
            return f"rc={result.returncode}, no JSON"
        verdict = report.get("verdict") if isinstance(report, dict) else None
        return f"rc={result.returncode}, verdict {verdict}"
    if tool == "modelaudit":
        try:
            report = json.loads(result.stdout)
        except json.JSONDecodeError:
            return f"rc={result.returncode}, no JSON"
        severities = sorted({str(i.get("severity")) for i in report.get("issues") or []})
        scanned = report.get("bytes_scanned")
        return f"rc={result.returncode}, issues: {','.join(severities) or 'none'}, " + (
            f"bytes_scanned={scanned}"
        )
    return f"rc={result.returncode}"


def drop_caches() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except (OSError, subprocess.CalledProcessError):
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per tool and file")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--cold", action="store_true", help="also one cold-cache run (root)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument(
        "--tools", default="mlwarden,picklescan,modelscan,modelaudit", help="comma-separated"
    )
    parser.add_argument("--json-out", type=Path, default=WORK / "large_files.json")
    args = parser.parse_args(argv)

    available = commands()
    wanted = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in available]
    if unknown:
        parser.error(f"unknown tools: {unknown}")
    runs = max(1, min(args.runs, 50))

    folder = fresh_dir(WORK / "large")
    started = time.perf_counter()
    files = make_files(folder)
    print(f"made the files in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    timings: list[Timing] = []
    try:
        for name, path in files.items():
            size = path.stat().st_size
            for tool in wanted:
                base, env = available[tool]
                argv_ = [*base, str(path)]
                cold = None
                if args.cold and drop_caches():
                    cold = run(argv_, timeout=args.timeout, cwd=folder, env=env).seconds
                run(argv_, timeout=args.timeout, cwd=folder, env=env)  # warm-up
                results = [
                    run(argv_, timeout=args.timeout, cwd=folder, env=env) for _ in range(runs)
                ]
                timing = Timing(
                    tool=tool,
                    file=name,
                    size_bytes=size,
                    runs_s=[round(r.seconds, 4) for r in results],
                    median_s=median([r.seconds for r in results]),
                    cold_s=cold,
                    outcome=describe(tool, results[-1]),
                )
                timings.append(timing)
                cold_text = f", cold {cold:.3f} s" if cold is not None else ""
                print(
                    f"  {name:24} {tool:11} median {timing.median_s:.3f} s{cold_text}"
                    f"  ({timing.outcome})",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)

    print_table(timings, wanted)
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "cpus": os.cpu_count(),
                "versions": versions(),
                "runs": runs,
                "timings": [asdict(t) for t in timings],
            },
            indent=1,
        )
    )
    print(f"raw results: {args.json_out.relative_to(REPO)}", file=sys.stderr)
    return 0


def print_table(timings: list[Timing], tools: list[str]) -> None:
    """Markdown: median seconds per file and tool, and each peer's time over mlwarden's."""
    by_key = {(t.file, t.tool): t for t in timings}
    files = list(dict.fromkeys(t.file for t in timings))
    header = ["file", "size", *[f"{tool} (s)" for tool in tools]]
    if "mlwarden" in tools:
        header += [f"{tool} / mlwarden" for tool in tools if tool != "mlwarden"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name in files:
        size = by_key[(name, tools[0])].size_bytes
        cells = [name, f"{size / 2**20:,.1f} MiB"]
        for tool in tools:
            timing = by_key.get((name, tool))
            value = timing.median_s if timing else None
            cold = f" (cold {timing.cold_s:.2f})" if timing and timing.cold_s is not None else ""
            cells.append(f"{value:.3f}{cold}" if value is not None else "-")
        mine = by_key.get((name, "mlwarden"))
        if mine is not None and mine.median_s:
            for tool in tools:
                other = by_key.get((name, tool))
                if tool != "mlwarden":
                    ratio = other.median_s / mine.median_s if other and other.median_s else None
                    cells.append(f"{ratio:.1f}x" if ratio is not None else "-")
        print("| " + " | ".join(cells) + " |")
    print()
    print("outcomes (last run): ")
    for t in timings:
        print(f"- {t.file} / {t.tool}: {t.outcome}")


if __name__ == "__main__":
    sys.exit(main())
