"""Sign and verify a ~2 GB model folder: mlwarden against model-signing and the hashlib floor.

    .venv/bin/python bench/sign_verify.py [--runs 3] [--gib 2]

Measures, on the same bytes in bench/.work/ (deleted afterwards):
  * the floor: Python hashlib.sha256 over every file, single thread and a thread per core;
  * `mlwarden sign` / `mlwarden verify` and `model_signing sign key` / `verify key`
    (from .venv-interop), as subprocesses: wall time, and CPU time from the children's rusage;
  * a one-byte change in a small file beside the 2 GB: time until `verify --fail-fast` reports it;
  * a cached re-verification of 10,000 unchanged files.
Files are read from the page cache (warm): every tool gets one untimed warm-up run first.
Prints a Markdown section for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work" / "sign-verify"
PRODUCT = REPO / ".venv" / "bin" / "python"
INTEROP = REPO / ".venv-interop" / "bin" / "model_signing"
sys.path.insert(0, str(REPO / "src"))


def make_model(root: Path, gib: float) -> int:
    """Four large weight shards, one mid-size file and a few small ones; returns total bytes."""
    root.mkdir(parents=True)
    block = os.urandom(64 << 20)
    large = int(gib * (1 << 30)) // 4
    for index in range(4):
        with (root / f"model-{index:05d}-of-00004.safetensors").open("wb") as handle:
            written = 0
            while written < large:
                piece = block[: min(len(block), large - written)]
                handle.write(index.to_bytes(8, "little") + piece[8:])
                written += len(piece)
    (root / "tokenizer.json").write_bytes(os.urandom(4 << 20))
    (root / "config.json").write_text('{"architectures": ["LlamaForCausalLM"], "hidden": 4096}')
    (root / "generation_config.json").write_text('{"temperature": 0.7}')
    (root / "README.md").write_text("# bench model\n")
    return sum(p.stat().st_size for p in root.iterdir())


def make_keys(folder: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / "key.pem", folder / "key.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def timed_child(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system of the child) seconds of one subprocess run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stdout}{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def timed_self(action: Callable[[], object]) -> tuple[float, float]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    action()
    return time.perf_counter() - wall0, time.process_time() - cpu0


def hash_floor(files: list[Path], threads: int) -> None:
    """The floor: hashlib.sha256 over the bytes, 1 MiB reads, one thread per file at a time."""
    queue = sorted(files, key=lambda p: p.stat().st_size, reverse=True)
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not queue:
                    return
                path = queue.pop()
            hasher = hashlib.sha256()
            with path.open("rb", buffering=0) as handle:
                while chunk := handle.read(1 << 20):
                    hasher.update(chunk)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


def median_of(runs: int, measure: Callable[[], tuple[float, float]]) -> tuple[float, float]:
    measure()  # warm-up: page cache, imports
    samples = [measure() for _ in range(runs)]
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gib", type=float, default=2.0)
    args = parser.parse_args()
    if not INTEROP.exists():
        raise SystemExit(f"{INTEROP} is missing: see docs/readme/signing-makefile.mk")
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    try:
        return run_all(args.runs, args.gib)
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


def run_all(runs: int, gib: float) -> int:
    from mlwarden.signing import sign, verify

    model = WORK / "model"
    total = make_model(model, gib)
    private, public = make_keys(WORK)
    files = sorted(p for p in model.iterdir())
    cli = [str(PRODUCT), "-m", "mlwarden"]
    os.environ["PYTHONPATH"] = str(REPO / "src")
    ours_sig, theirs_sig = WORK / "ours.sig", WORK / "theirs.sig"
    cores = os.cpu_count() or 1
    tiny = WORK / "tiny"
    tiny.mkdir()
    (tiny / "config.json").write_text("{}")
    sign(tiny, key=private)
    api_sig = WORK / "api.sig"
    parallel = f"hashlib.sha256 floor, {cores} threads"
    ms = str(INTEROP)
    measures: dict[str, Callable[[], tuple[float, float]]] = {
        "hashlib.sha256 floor, 1 thread": lambda: timed_self(lambda: hash_floor(files, 1)),
        parallel: lambda: timed_self(lambda: hash_floor(files, cores)),
        "python start-up + `mlwarden --version`": lambda: timed_child([*cli, "--version"]),
        "fixed cost: `mlwarden verify` of a 1-file model": lambda: timed_child(
            [*cli, "verify", str(tiny), "--key", str(public)]
        ),
        "mlwarden sign": lambda: timed_child(
            [*cli, "sign", str(model), "--key", str(private), "--signature", str(ours_sig)]
        ),
        "model_signing sign key": lambda: timed_child(
            [
                ms,
                "sign",
                "key",
                str(model),
                "--private_key",
                str(private),
                "--signature",
                str(theirs_sig),
            ]
        ),
        "mlwarden verify": lambda: timed_child(
            [*cli, "verify", str(model), "--key", str(public), "--signature", str(ours_sig)]
        ),
        "model_signing verify key": lambda: timed_child(
            [
                ms,
                "verify",
                "key",
                str(model),
                "--public_key",
                str(public),
                "--signature",
                str(theirs_sig),
            ]
        ),
        "mlwarden.signing.sign(), in-process": lambda: timed_self(
            lambda: sign(model, key=private, signature=api_sig)
        ),
        "mlwarden.signing.verify(), in-process": lambda: timed_self(
            lambda: verify(model, signatures=[api_sig], public_key=public)
        ),
    }
    # Rounds interleave the tools, so that each sees the same share of a busy machine.
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in measures}
    for round_index in range(runs + 1):
        for name, measure in measures.items():
            result = measure()
            if round_index:  # round 0 warms the page cache and the imports
                samples[name].append(result)
    rows = {
        name: (statistics.median(w for w, _ in got), statistics.median(c for _, c in got))
        for name, got in samples.items()
    }
    # A one-byte change in a small file beside the 2 GB: time until it is reported.
    config = model / "config.json"
    original = config.read_bytes()
    config.write_bytes(original.replace(b"4096", b"4097"))
    fail_fast: list[float] = []
    for _ in range(runs + 1):
        result = verify(model, signatures=[ours_sig], public_key=public, fail_fast=True)
        assert [f.rule_id for f in result.report.findings] == ["SIG003"], result.report.findings
        fail_fast.append(result.report.duration_s)
    full = verify(model, signatures=[ours_sig], public_key=public)
    fail_fast_cli = median_of(
        runs, lambda: timed_child_expect_refusal([*cli, "verify", str(model), "--key", str(public),
                                                  "--signature", str(ours_sig), "--fail-fast"])
    )  # fmt: skip
    config.write_bytes(original)
    # 10,000 unchanged files, verified again with the cache.
    shutil.rmtree(model)
    data = WORK / "dataset"
    for shard in range(10):
        folder = data / f"part-{shard}"
        folder.mkdir(parents=True)
        for index in range(1000):
            (folder / f"{index:04d}.txt").write_text(f"sample {shard}-{index}\n")
    data_sig = WORK / "dataset.sig"
    sign_10k = timed_self(lambda: sign(data, key=private, signature=data_sig))
    uncached = timed_self(lambda: verify(data, signatures=[data_sig], public_key=public))
    time.sleep(2.2)  # outside the cache's racy window
    cache = WORK / "cache.json"
    verify(data, signatures=[data_sig], public_key=public, cache=cache)
    cached: list[float] = []
    cached_cpu: list[float] = []
    for _ in range(max(runs, 9)):
        cpu0 = time.process_time()
        outcome = verify(data, signatures=[data_sig], public_key=public, cache=cache)
        cached_cpu.append(time.process_time() - cpu0)
        assert outcome.verified
        cached.append(outcome.report.duration_s)
    cached_cli = median_of(
        runs,
        lambda: timed_child(
            [
                *cli,
                "verify",
                str(data),
                "--key",
                str(public),
                "--signature",
                str(data_sig),
                "--cache",
                str(cache),
            ]
        ),
    )

    floor_cpu = rows["hashlib.sha256 floor, 1 thread"][1]
    startup_cpu = rows["fixed cost: `mlwarden verify` of a 1-file model"][1]
    ms_wall = rows["model_signing verify key"][0]
    print(f"## Sign and verify\n\n`.venv/bin/python bench/sign_verify.py --runs {runs}` on "
          f"{time.strftime('%Y-%m-%d')}, {cores} CPUs, Python {sys.version.split()[0]}; model "
          f"folder of {total / (1 << 30):.2f} GiB (4 large shards, 4 small files), warm page "
          "cache, medians of "
          f"{runs} interleaved rounds after one warm-up round. CLI rows are whole processes "
          "(start-up included); "
          "CPU is user + system.\n")  # fmt: skip
    print("| what | wall s | CPU s | GB/s (wall) |")
    print("|---|---:|---:|---:|")
    for name, (wall, cpu) in rows.items():
        print(f"| {name} | {wall:.3f} | {cpu:.3f} | {total / wall / 1e9:.2f} |")
    print()
    for verb in ("sign", "verify"):
        wall, cpu = rows[f"mlwarden.signing.{verb}(), in-process"]
        print(f"- {verb}() in-process: CPU {cpu:.3f} s = {cpu / floor_cpu:.3f} x the 1-thread "
              f"floor; wall {wall:.3f} s = {wall / rows[parallel][0]:.3f} x the {cores}-thread "
              "floor.")  # fmt: skip
    for verb in ("sign", "verify"):
        wall, cpu = rows[f"mlwarden {verb}"]
        net = (cpu - startup_cpu) / floor_cpu
        print(f"- mlwarden {verb}: CPU {cpu:.3f} s = {cpu / floor_cpu:.3f} x the 1-thread floor "
              f"({net:.3f} x after the {startup_cpu:.3f} s fixed cost); "
              f"wall {wall:.3f} s = {wall / rows[f'model_signing {verb} key'][0]:.2f} x "
              f"model_signing's.")  # fmt: skip
    print(f"- One changed byte in config.json beside {total / (1 << 30):.2f} GiB, "
          f"`verify(fail_fast=True)`: reported in {statistics.median(fail_fast) * 1000:.1f} ms "
          f"(median; in-process, signature check included); whole CLI process "
          f"{fail_fast_cli[0] * 1000:.0f} ms. Without fail-fast every file is hashed and all "
          f"differences listed: {full.report.duration_s:.3f} s.")  # fmt: skip
    print(f"- 10,000 files of a dataset: sign {sign_10k[0]:.3f} s, verify without cache "
          f"{uncached[0]:.3f} s, cached re-verification {statistics.median(cached) * 1000:.1f} ms "
          f"wall / {statistics.median(cached_cpu) * 1000:.1f} ms CPU (median, in-process; fastest "
          f"{min(cached) * 1000:.1f} ms wall), "
          f"whole CLI process {cached_cli[0] * 1000:.0f} ms.")  # fmt: skip
    print(f"- model_signing verify wall {ms_wall:.3f} s for reference.")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"- Load average at the end of the run: {load} (other work shares the CPUs).")
    return 0


def timed_child_expect_refusal(argv: list[str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 1:
        raise SystemExit(f"expected a refusal (exit 1), got {done.returncode}: {done.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


if __name__ == "__main__":
    raise SystemExit(main())
