"""What the benchmark scripts share: paths, the tool commands, and a bounded subprocess run."""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work"
PEERS_BIN = BENCH / ".venv-peers" / "bin"
PRODUCT_BIN = REPO / ".venv" / "bin"

# Peers must never phone home during a benchmark (there is no network here anyway, and a
# telemetry retry loop would be timed as scanning). modelaudit's switch is shared with
# promptfoo; modelscan, picklescan and fickling send nothing.
PEER_ENV = {
    "PROMPTFOO_DISABLE_TELEMETRY": "1",
    "NO_COLOR": "1",
    "HF_HUB_OFFLINE": "1",
}

PEERS = ("picklescan", "modelscan", "fickling", "modelaudit")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """One subprocess run: its exit code (None on timeout), output and wall time."""

    returncode: int | None
    stdout: str
    stderr: str
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


def run(
    argv: list[str], *, timeout: float, cwd: Path | None = None, env: dict[str, str] | None = None
) -> RunResult:
    """Run argv as its own process group, killing the whole group on timeout.

    Wall time is measured around the process as a user or CI sees it, start-up included.
    """
    full_env = {**os.environ, **PEER_ENV, **(env or {})}
    started = time.perf_counter()
    with subprocess.Popen(
        argv,
        cwd=cwd,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            code = None
    seconds = time.perf_counter() - started
    return RunResult(
        returncode=code,
        stdout=out.decode("utf-8", "replace"),
        stderr=err.decode("utf-8", "replace"),
        seconds=seconds,
    )


def compile_product() -> None:
    """Byte-compile mlwarden's sources, as `pip install` does for an installed package.

    The editable install used for development runs from source; where
    PYTHONDONTWRITEBYTECODE is set, every process would compile every module again,
    which no user's installed copy does (the peers' were compiled by pip).
    """
    subprocess.run(
        [str(PRODUCT_BIN / "python"), "-m", "compileall", "-q", str(REPO / "src" / "mlwarden")],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def mlwarden_command() -> tuple[list[str], dict[str, str]]:
    """The product's command line: the installed console script, else `python -m mlwarden`."""
    compile_product()
    script = PRODUCT_BIN / "mlwarden"
    if script.exists():
        return [str(script)], {}
    return [str(PRODUCT_BIN / "python"), "-m", "mlwarden"], {"PYTHONPATH": str(REPO / "src")}


def peer(tool: str) -> str:
    """The path of a peer's console script in bench/.venv-peers."""
    path = PEERS_BIN / tool
    if not path.exists():
        raise SystemExit(f"{path} is missing: run bash bench/setup_peers.sh first")
    return str(path)


def versions() -> dict[str, str]:
    """Installed versions of mlwarden and of each peer (from package metadata)."""
    probe = (
        "import json, sys\n"
        "from importlib import metadata\n"
        "out = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        out[name] = metadata.version(name)\n"
        "    except metadata.PackageNotFoundError:\n"
        "        out[name] = 'not installed'\n"
        "print(json.dumps(out))\n"
    )
    import json

    found: dict[str, str] = {}
    product = run(
        [str(PRODUCT_BIN / "python"), "-c", probe, "mlwarden", "torch"],
        timeout=60,
        env={"PYTHONPATH": str(REPO / "src")},
    )
    if product.returncode == 0:
        found.update(json.loads(product.stdout))
    peers = run([str(PEERS_BIN / "python"), "-c", probe, *PEERS], timeout=60)
    if peers.returncode == 0:
        found.update(json.loads(peers.stdout))
    return found


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fresh_dir(path: Path) -> Path:
    """An empty folder at path (its old content removed)."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path
