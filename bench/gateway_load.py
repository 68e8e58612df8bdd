"""The gateway with every control on against a bare FastAPI app serving the same model.

    .venv/bin/python bench/gateway_load.py [--rounds 3] [--seconds 5] [--max-requests 50000]
        [--concurrency 1,16] [--budget-store sqlite|memory] [--fast-path both|on|off]
        [--breakdown] [--profile SECONDS] [--aa] [--json]

Both servers run at once, each one uvicorn worker on 127.0.0.1 (uvloop and httptools, as
uvicorn picks them when installed; no access log), and serve the scikit-learn digits model
(the demo's pipeline: StandardScaler + LogisticRegression) on the Open Inference Protocol
route `POST /v2/models/digits/infer`, one 64-pixel row per request:

- gateway: `mlwarden serve --config mlwarden.yaml` with every control on: an ES256 JWT
  bearer token per connection (16 identities; keys from a JWKS file), a Cedar policy
  (analysts of the model's tenant may infer), budgets (SQLite store by default, durable;
  `--budget-store memory` for the in-process store) with limits that never bind, the audit
  log (SQLite, batched writer), the input guard (declared signature: FP64 [-1, 64] in
  [0, 16]) and output minimization (the top-1 label). The model is loaded through
  `mlwarden.load` (signature and scan checked at start-up).
- bare: bench/_bare_app.py, FastAPI with pydantic request models and no control, loading
  the same file with joblib.load and answering the same label.

`--fast-path` picks the gateway's model path: `on` is the product as shipped (the
scikit-learn model compiled into the exact fast path, see mlwarden.gateway._fastpath),
`off` runs the same gateway through bench/_gateway_sklearn_path.py, which keeps the model
on scikit-learn's own `predict_proba` as the bare app does (what the controls cost by
themselves), and `both` (the default) runs the two gateways beside the bare app in the
same rounds. Every ratio is against the bare app.

The load generator is this process: asyncio (uvloop) with raw keep-alive HTTP/1.1
connections, one request in flight per connection, `--concurrency` connections. Each
measurement is bounded by `--seconds` and `--max-requests`, after a one-second warm-up.
Rounds interleave the two apps (order alternating) and the figures are medians over
rounds. Server CPU per request (user + kernel, all threads; kernel alone in brackets) comes
from /proc/<pid>/stat around each measurement. `--breakdown` times each step of the
gateway's infer path in-process (no HTTP), beside the model's own predict. `--aa` puts a
second bare app in the gateway's place: the ratio it shows is the harness's noise.
`--profile N` records the gateway for N seconds under load at the highest concurrency with
py-spy (install it into .venv) and prints where the time goes. Everything generated goes
to bench/.work/gateway/ (git-ignored); the raw results to bench/.work/gateway_load.json.
Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import fcntl
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PRODUCT_BIN, REPO, WORK, fresh_dir

HOST = "127.0.0.1"
MODEL = "digits"
ISSUER = "https://idp.bench.invalid"
AUDIENCE = "mlwarden-gateway"
IDENTITIES = 16
POLICY = """\
@id("tenant-analysts-infer")
permit (principal, action == Mlwarden::Action::"infer", resource)
when { principal.roles.contains("analyst") && principal.tenant == resource.tenant };

@id("secret-needs-clearance")
forbid (principal, action, resource)
when { resource.sensitivity == "secret" && principal.clearance < 3 };
"""


# --- the material: model, keys, tokens, configuration ----------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Material:
    folder: Path
    model: Path
    config: Path
    tokens: tuple[str, ...]
    rows: tuple[tuple[float, ...], ...]


def prepare(folder: Path, *, budget_store: str) -> Material:
    """Train and sign the model, make the JWT key set, the policy and mlwarden.yaml."""
    import joblib
    import jwt
    import yaml
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlwarden.signing import sign

    fresh_dir(folder)
    digits = load_digits()
    x_train, x_test, y_train, _ = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=0))
    pipeline.fit(x_train, y_train)
    model = folder / "digits-model.joblib"
    joblib.dump(pipeline, model, compress=3)

    signer = ec.generate_private_key(ec.SECP256R1())
    (folder / "signer.pem").write_bytes(
        signer.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    spki = signer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (folder / "signer.pub").write_bytes(
        signer.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    bundle = sign(model, key=folder / "signer.pem")

    token_key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(token_key.public_key()))
    jwk.update({"kid": "bench-es256", "alg": "ES256", "use": "sig"})
    (folder / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    now = int(time.time())
    tokens = tuple(
        jwt.encode(
            {
                "iss": ISSUER,
                "aud": AUDIENCE,
                "sub": f"analyst-{i}",
                "iat": now,
                "exp": now + 6 * 3600,
                "roles": ["analyst"],
                "tenant": "acme",
            },
            token_key,
            algorithm="ES256",
            headers={"kid": "bench-es256"},
        )
        for i in range(IDENTITIES)
    )
    (folder / "models.cedar").write_text(POLICY)

    store: dict[str, Any] = (
        {"kind": "sqlite", "path": "budgets.sqlite3"}
        if budget_store == "sqlite"
        else {"kind": "memory"}
    )
    config = {
        "version": 1,
        "trust": {
            "signers": [
                {
                    "name": "bench-release",
                    "fingerprint": _sha256(spki),
                    "public_key": "signer.pub",
                }
            ]
        },
        "identity": {
            "jwt": {
                "issuer": ISSUER,
                "audience": AUDIENCE,
                "algorithms": ["ES256"],
                "jwks_file": "jwks.json",
            }
        },
        "authorization": {"policy_files": ["models.cedar"]},
        "budgets": {
            "store": store,
            # Limits that never bind, so that every call does the full accounting and passes.
            "defaults": {"rate": 100_000, "quota": 1_000_000_000, "period": "day"},
        },
        "audit": {"url": f"sqlite:///{folder / 'audit.sqlite3'}"},
        "gateway": {
            "host": HOST,
            "port": 8080,
            "models": [
                {
                    "name": MODEL,
                    "format": "sklearn",
                    "path": model.name,
                    "signature": [bundle.name],
                    "inputs": [
                        {
                            "name": "pixels",
                            "datatype": "FP64",
                            "shape": [-1, 64],
                            "min": 0,
                            "max": 16,
                        }
                    ],
                    "max_batch": 64,
                    "output": {"mode": "label"},
                    "attributes": {"sensitivity": "internal", "owner": "vision", "tenant": "acme"},
                }
            ],
        },
    }
    path = folder / "mlwarden.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    rows = tuple(tuple(float(v) for v in row) for row in x_test[:IDENTITIES])
    return Material(folder=folder, model=model, config=path, tokens=tokens, rows=rows)


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def request_bytes(port: int, row: tuple[float, ...], token: str | None) -> bytes:
    """One complete HTTP/1.1 keep-alive request for the infer route."""
    body = json.dumps(
        {
            "id": "bench",
            "inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP64", "data": row}],
        },
        separators=(",", ":"),
    ).encode()
    head = [
        f"POST /v2/models/{MODEL}/infer HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if token is not None:
        head.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


# --- the servers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def cpu_seconds(self) -> tuple[float, float]:
        """(user, system) CPU seconds of the server process so far, all threads (/proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start_server(name: str, argv: list[str], env: dict[str, str], port: int, log: Path) -> Server:
    out = log.open("wb")
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out.close()
    server = Server(name=name, port=port, proc=proc, log=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with {proc.returncode}; see {log}")
        try:
            with socket.create_connection((HOST, port), timeout=1) as sock:
                sock.sendall(f"GET /v2/health/ready HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return server
        except OSError:
            pass
        time.sleep(0.1)
    server.stop()
    raise SystemExit(f"{name} did not become ready in 60 s; see {log}")


def start_bare(material: Material, log_dir: Path, name: str = "bare") -> Server:
    port = free_port()
    argv = [str(PRODUCT_BIN / "python"), "-m", "uvicorn", "bench._bare_app:app"]
    argv += ["--host", HOST, "--port", str(port), "--workers", "1", "--no-access-log"]
    argv += ["--log-level", "warning"]
    env = {"MLWARDEN_BENCH_MODEL": str(material.model), "PYTHONPATH": str(REPO)}
    return start_server(name, argv, env, port, log_dir / f"{name}.log")


def start_gateway(material: Material, log_dir: Path, *, fast_path: bool = True) -> Server:
    port = free_port()
    name = "gateway" if fast_path else "gateway-sklearn"
    script = PRODUCT_BIN / "mlwarden"
    if not fast_path:
        base = [str(PRODUCT_BIN / "python"), str(REPO / "bench" / "_gateway_sklearn_path.py")]
    elif script.exists():
        base = [str(script)]
    else:
        base = [str(PRODUCT_BIN / "python"), "-m", "mlwarden"]
    argv = [*base, "serve", "--config", str(material.config), "--host", HOST, "--port", str(port)]
    env = {"PYTHONPATH": str(REPO / "src")}
    return start_server(name, argv, env, port, log_dir / f"{name}.log")


# --- the load generator -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Measurement:
    app: str
    concurrency: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]
    cpu_us_per_request: float
    sys_us_per_request: float


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; (status, whether the server will close the connection)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.index(b"\r\n", at + 2)
        length = int(lower[at + 17 : end])
        if length:
            await reader.readexactly(length)
    elif b"\r\ntransfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, b"\r\nconnection: close" in lower


async def _drive(
    port: int, requests: list[bytes], concurrency: int, seconds: float, max_requests: int
) -> tuple[list[int], collections.Counter[int], float]:
    latencies: list[int] = []
    statuses: collections.Counter[int] = collections.Counter()
    remaining = [max_requests]
    started = time.perf_counter()
    stop_at = started + seconds
    clock = time.perf_counter_ns

    async def connection(request: bytes) -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while remaining[0] > 0 and time.perf_counter() < stop_at:
                remaining[0] -= 1
                t0 = clock()
                writer.write(request)
                status, closing = await _read_response(reader)
                latencies.append(clock() - t0)
                statuses[status] += 1
                if closing:
                    writer.close()
                    reader, writer = await asyncio.open_connection(HOST, port)
        finally:
            writer.close()

    await asyncio.gather(*(connection(requests[i % len(requests)]) for i in range(concurrency)))
    return latencies, statuses, time.perf_counter() - started


def measure(
    server: Server,
    requests: list[bytes],
    *,
    concurrency: int,
    seconds: float,
    max_requests: int,
) -> Measurement:
    run = asyncio.run
    run(_drive(server.port, requests, concurrency, 1.0, max_requests))  # warm-up
    cpu0 = server.cpu_seconds()
    latencies, statuses, elapsed = run(
        _drive(server.port, requests, concurrency, seconds, max_requests)
    )
    cpu1 = server.cpu_seconds()
    user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    latencies.sort()
    count = len(latencies)
    return Measurement(
        app=server.name,
        concurrency=concurrency,
        requests=count,
        seconds=round(elapsed, 3),
        rps=round(count / elapsed, 1),
        p50_ms=round(latencies[count // 2] / 1e6, 3),
        p99_ms=round(latencies[min(count - 1, int(count * 0.99))] / 1e6, 3),
        statuses={str(k): v for k, v in sorted(statuses.items())},
        cpu_us_per_request=round((user + system) / count * 1e6, 1),
        sys_us_per_request=round(system / count * 1e6, 1),
    )


# --- profile ----------------------------------------------------------------------------------


def profile(server: Server, requests: list[bytes], concurrency: int, seconds: float) -> list[str]:
    """py-spy under load: the share of samples each interesting frame is on the stack of."""
    spy = PRODUCT_BIN / "py-spy"
    if not spy.exists():
        return [f"{spy} is missing: .venv/bin/pip install py-spy"]
    raw = WORK / "gateway" / "profile.txt"
    argv = [str(spy), "record", "--pid", str(server.proc.pid), "--duration", str(int(seconds))]
    argv += ["--rate", "500", "--format", "raw", "--output", str(raw), "--nonblocking"]
    recorder = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)
    asyncio.run(_drive(server.port, requests, concurrency, seconds, 10**9))
    _, err = recorder.communicate(timeout=60)
    if not raw.exists():
        return [f"py-spy failed: {err.decode(errors='replace').strip()[:300]}"]
    inclusive: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        total += count
        for frame in set(frames):
            inclusive[_short(frame)] += count
        leaf[_short(frames[-1])] += count
    lines = [f"{total} samples; inclusive share (frame on the stack):"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in inclusive.most_common(40)]
    lines += ["self share (frame running):"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in leaf.most_common(25)]
    return lines


def _short(frame: str) -> str:
    """`func (path/to/module.py:12)` -> `func (module.py)`: lines merged."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rstrip(")")
    parts = file.split("/")
    return f"{name} ({'/'.join(parts[-2:])})"


# --- in-process breakdown -----------------------------------------------------------------


def breakdown(material: Material, calls: int = 3000) -> list[str]:
    """p50 µs of each step of the gateway's infer path, called in-process (no HTTP), with
    the same configuration: what each control costs, beside the model's own predict."""
    import hashlib

    import joblib
    import numpy as np
    import orjson

    from mlwarden.audit import AuditEvent, Decision
    from mlwarden.authz import Action
    from mlwarden.gateway import Gateway
    from mlwarden.gateway._guard import parse_and_check
    from mlwarden.gateway._models import SklearnModel
    from mlwarden.policy import load_policy

    gateway = Gateway.from_policy(load_policy(material.config))
    raw = request_bytes(1, material.rows[0], material.tokens[0])
    head, body = raw.split(b"\r\n\r\n", 1)
    pairs = [line.split(b": ", 1) for line in head.split(b"\r\n")[1:]]
    scope = {
        "type": "http",
        "method": "POST",
        "path": f"/v2/models/{MODEL}/infer",
        "headers": [(name.lower(), value) for name, value in pairs],
        "client": (HOST, 40000),
    }
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    def p50(fn: Any) -> float:
        for _ in range(300):
            fn()
        samples = []
        for _ in range(calls):
            start = time.perf_counter_ns()
            fn()
            samples.append(time.perf_counter_ns() - start)
        samples.sort()
        return samples[len(samples) // 2] / 1000

    async def whole() -> float:
        samples = []
        for i in range(calls + 300):
            sent.clear()
            start = time.perf_counter_ns()
            await gateway(dict(scope), receive, send)
            if i >= 300:
                samples.append(time.perf_counter_ns() - start)
        if sent[0]["status"] != 200:
            raise SystemExit(f"in-process gateway answered {sent[0]['status']}: {sent[1]}")
        samples.sort()
        return samples[len(samples) // 2] / 1000

    entry = gateway._entries[MODEL]
    principal = gateway._authenticate(scope)
    request = parse_and_check(body, entry.config)
    result = entry.model.predict(request.arrays)
    pipeline = joblib.load(material.model)
    sklearn_path = SklearnModel(entry.config, pipeline, fast_path=False)
    row = np.asarray([material.rows[0]])
    answer = {"model_name": MODEL, "outputs": entry.output.apply(result, "label")}
    steps = [
        ("whole infer call through the ASGI app (no HTTP)", asyncio.run(whole())),
        ("identity: JWT ES256, cached verified token", p50(lambda: gateway._authenticate(scope))),
        (
            "authorization: Cedar, cached decision",
            p50(lambda: gateway.authorizer.is_authorized(principal, Action.INFER, entry.resource)),
        ),
        (
            "budget: consume (the configured store)",
            p50(lambda: gateway.budgets.consume(principal.key, MODEL, roles=principal.roles)),
        ),
        ("input sha256 for the audit", p50(lambda: hashlib.sha256(body).hexdigest())),
        ("input guard: parse + check", p50(lambda: parse_and_check(body, entry.config))),
        (
            f"model: the gateway's adapter, as shipped ({getattr(entry.model, 'path', '?')})",
            p50(lambda: entry.model.predict(request.arrays)),
        ),
        (
            "model: the adapter with the fast path off (sklearn predict_proba)",
            p50(lambda: sklearn_path.predict(request.arrays)),
        ),
        ("model: Pipeline.predict, as the bare app calls it", p50(lambda: pipeline.predict(row))),
        ("output minimization: label", p50(lambda: entry.output.apply(result, "label"))),
        ("answer: orjson", p50(lambda: orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY))),
        (
            "audit: build the AuditEvent (validation + canonical JSON)",
            p50(
                lambda: AuditEvent(
                    kind="infer",
                    decision=Decision.ALLOW,
                    reason="ok",
                    request_id="x-1",
                    identity=principal.key,
                    model=MODEL,
                    action="infer",
                    input_sha256="0" * 64,
                    output={"mode": "label", "rows": 1, "labels": ["3"]},
                    latency_us=250,
                )
            ),
        ),
        ("metrics: observe", p50(lambda: gateway.metrics.observe("infer", MODEL, 200, 0.001))),
    ]
    asyncio.run(gateway.aclose())
    return [f"| {name} | {value:.1f} |" for name, value in steps]


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--max-requests", type=int, default=50_000)
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--budget-store", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument(
        "--fast-path",
        choices=("both", "on", "off"),
        default="both",
        help="the gateway's scikit-learn path: compiled (on), sklearn's own (off), or both",
    )
    parser.add_argument("--profile", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time each step of the gateway's infer path in-process",
    )
    parser.add_argument(
        "--aa",
        action="store_true",
        help="A/A check: a second bare app in the gateway's place, to see the harness's noise",
    )
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    import importlib.util

    if importlib.util.find_spec("fastapi") is None:
        raise SystemExit("the baseline needs FastAPI in .venv: .venv/bin/pip install fastapi")

    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass

    WORK.mkdir(parents=True, exist_ok=True)
    lock = (WORK / "gateway.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit("another bench/gateway_load.py run uses bench/.work/gateway") from None
    material = prepare(WORK / "gateway", budget_store=args.budget_store)
    if args.aa:
        others = [start_bare(material, material.folder, "bare-2")]
    else:
        switches = {"both": (False, True), "on": (True,), "off": (False,)}[args.fast_path]
        others = [start_gateway(material, material.folder, fast_path=on) for on in switches]
    servers = [start_bare(material, material.folder), *others]
    results: list[Measurement] = []
    profile_lines: list[str] = []
    try:
        port_requests = {
            s.name: [
                request_bytes(s.port, row, None if s.name.startswith("bare") else token)
                for row, token in zip(material.rows, material.tokens, strict=True)
            ]
            for s in servers
        }
        for server in servers:  # every request must succeed before anything is timed
            probe = measure(
                server, port_requests[server.name], concurrency=1, seconds=0.5, max_requests=20
            )
            if set(probe.statuses) != {"200"}:
                raise SystemExit(f"{server.name} answers {probe.statuses}; see {server.log}")
        for round_no in range(args.rounds):
            for concurrency in levels:
                order = servers if round_no % 2 == 0 else servers[::-1]
                for server in order:
                    result = measure(
                        server,
                        port_requests[server.name],
                        concurrency=concurrency,
                        seconds=args.seconds,
                        max_requests=args.max_requests,
                    )
                    results.append(result)
                    print(json.dumps(asdict(result)), file=sys.stderr, flush=True)
        if args.profile > 0:
            gateway = servers[-1]
            profile_lines = profile(gateway, port_requests[gateway.name], max(levels), args.profile)
    finally:
        for server in servers:
            server.stop()

    steps = breakdown(material) if args.breakdown and not args.aa else []
    summary = summarize(results, levels, tuple(server.name for server in servers))
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(["bench/gateway_load.py", *sys.argv[1:]]),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": [round(v, 1) for v in os.getloadavg()],
        "budget_store": args.budget_store,
        "fast_path": "n/a (A/A)" if args.aa else args.fast_path,
        "summary": summary,
        "runs": [asdict(r) for r in results],
        "profile": profile_lines,
        "breakdown": steps,
    }
    (WORK / "gateway_load.json").write_text(json.dumps(record, indent=2))
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(markdown(record))


def summarize(
    results: list[Measurement], levels: list[int], names: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Medians over rounds per (app, concurrency); every other app against the first."""
    rows = []
    for concurrency in levels:
        row: dict[str, Any] = {"concurrency": concurrency, "apps": names}
        for app in names:
            runs = [r for r in results if r.app == app and r.concurrency == concurrency]
            row[app] = {
                "rps": round(statistics.median(r.rps for r in runs), 1),
                "p50_ms": round(statistics.median(r.p50_ms for r in runs), 3),
                "p99_ms": round(statistics.median(r.p99_ms for r in runs), 3),
                "cpu_us_per_request": round(
                    statistics.median(r.cpu_us_per_request for r in runs), 1
                ),
                "sys_us_per_request": round(
                    statistics.median(r.sys_us_per_request for r in runs), 1
                ),
                "non_200": sum(n for r in runs for s, n in r.statuses.items() if s != "200"),
            }
        first = row[names[0]]
        for app in names[1:]:
            rounds = [
                round(mine.rps / base.rps, 2)
                for mine, base in zip(
                    [r for r in results if r.app == app and r.concurrency == concurrency],
                    [r for r in results if r.app == names[0] and r.concurrency == concurrency],
                    strict=True,
                )
            ]
            row[app]["throughput_ratio"] = round(row[app]["rps"] / first["rps"], 2)
            row[app]["ratio_per_round"] = rounds
            row[app]["added_p50_ms"] = round(row[app]["p50_ms"] - first["p50_ms"], 3)
        rows.append(row)
    return rows


def markdown(record: dict[str, Any]) -> str:
    lines = [
        f"`{record['command']}` on {record['date']}, {record['cpus']} CPUs, Python "
        f"{record['python']}, budget store {record['budget_store']}, gateway fast path "
        f"{record['fast_path']}, load average at the end "
        f"{', '.join(map(str, record['load_average']))}.",
        "",
        "| concurrency | app | req/s | p50 ms | p99 ms | server CPU µs/req (kernel) | non-200 |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in record["summary"]:
        for app in row["apps"]:
            fig = row[app]
            lines.append(
                f"| {row['concurrency']} | {app} | {fig['rps']:,.0f} | {fig['p50_ms']:.3f} "
                f"| {fig['p99_ms']:.3f} | {fig['cpu_us_per_request']:.0f} "
                f"({fig['sys_us_per_request']:.0f}) | {fig['non_200']} |"
            )
    lines.append("")
    for row in record["summary"]:
        base = row["apps"][0]
        for app in row["apps"][1:]:
            fig = row[app]
            per_round = ", ".join(f"{r:.2f}" for r in fig["ratio_per_round"])
            lines.append(
                f"- concurrency {row['concurrency']}: throughput {app} / {base} = "
                f"{fig['throughput_ratio']:.2f} (rounds: {per_round}); "
                f"added p50 = {fig['added_p50_ms'] * 1000:.0f} µs"
            )
    if record["breakdown"]:
        lines += ["", "| step (in-process) | p50 µs |", "|---|---:|", *record["breakdown"]]
    if record["profile"]:
        lines += ["", "```", *record["profile"], "```"]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.platform != "linux":
        raise SystemExit("this benchmark reads /proc: Linux only")
    main()
