"""The gateway part of `make demo`: serve the verified demo model and call it as users would.

`run_gateway_demo` writes an `mlwarden.yaml` beside the demo's release (trust: the demo
key; identity: API keys for an analyst and an intruder, stored only as sha256;
authorization: a Cedar policy that lets analysts of the model's tenant infer; budgets in
SQLite; the audit log in SQLite; output minimization: the top-1 label), starts
`mlwarden serve` as its own process on a free port of 127.0.0.1 (a real uvicorn), sends
allowed and denied calls, stops the server and verifies the audit chain. It returns what
happened as data; the CLI (`mlwarden demo`) prints it. Nothing here prints.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlwarden.audit import ChainVerification

MODEL_NAME = "digits"
TENANT = "demo"
HOST = "127.0.0.1"
BURST = 5
"""The analyst's burst: calls allowed at once before the rate limit (1 a second) refuses."""

POLICY = """\
// Analysts of the model's tenant may call it. Nothing else is permitted: no policy, no access.
@id("tenant-analysts-infer")
permit (principal, action == Mlwarden::Action::"infer", resource)
when { principal.roles.contains("analyst") && principal.tenant == resource.tenant };
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoGatewayConfig:
    """What `write_gateway_config` made: the policy file, the audit log's URL (absolute)
    and the two callers' API keys (only their sha256 is in the file)."""

    path: Path
    audit_url: str
    analyst_key: str = field(repr=False)
    intruder_key: str = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoCall:
    """One call to the gateway and its answer."""

    title: str
    status: int
    expected: int
    code: str | None = None
    message: str = ""
    retry_after: str | None = None

    @property
    def as_expected(self) -> bool:
        return self.status == self.expected


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayDemoResult:
    """What the gateway demo did. `problems` is empty when everything behaved."""

    config: Path
    command: tuple[str, ...]
    url: str
    calls: tuple[DemoCall, ...]
    predicted: tuple[str, ...]
    truth: tuple[str, ...]
    burst: dict[int, int]
    audit_url: str
    audit_intact: bool
    audit_records: int
    audit_head: str
    audited_calls: int
    problems: tuple[str, ...]
    log: Path

    @property
    def ok(self) -> bool:
        return not self.problems


def gateway_available() -> bool:
    """Whether this installation has the gateway and `mlwarden serve` to demonstrate."""
    import importlib.util

    try:
        return all(
            importlib.util.find_spec(name) is not None
            for name in ("mlwarden.gateway.app", "mlwarden.cli.serve", "uvicorn", "cedarpy")
        )
    except ImportError:
        return False


def write_gateway_config(
    folder: Path, *, model: Path, bundle: Path, public_key: Path
) -> DemoGatewayConfig:
    """Write `folder/mlwarden.yaml` and the Cedar policy for the demo's gateway."""
    import yaml
    from cryptography.hazmat.primitives import serialization

    from mlwarden.identity import generate_api_key

    folder = folder.resolve()
    public = serialization.load_pem_public_key(public_key.read_bytes())
    spki = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    analyst_key, analyst_sha = generate_api_key()
    intruder_key, intruder_sha = generate_api_key()
    policies = folder / "policies"
    policies.mkdir(parents=True, exist_ok=True)
    (policies / "models.cedar").write_text(POLICY)
    audit = folder / "audit.sqlite3"
    config: dict[str, Any] = {
        "version": 1,
        "trust": {
            "signers": [
                {
                    "name": "demo-release",
                    "fingerprint": hashlib.sha256(spki).hexdigest(),
                    "public_key": _relative(public_key, folder),
                }
            ]
        },
        "identity": {
            "api_keys": {
                "keys": [
                    {
                        "principal": "analyst",
                        "sha256": analyst_sha,
                        "roles": ["analyst"],
                        "tenant": TENANT,
                    },
                    {"principal": "intruder", "sha256": intruder_sha, "tenant": "elsewhere"},
                ]
            }
        },
        "authorization": {"policy_files": ["policies/models.cedar"]},
        "budgets": {
            "store": {"kind": "sqlite", "path": "budgets.sqlite3"},
            "defaults": {"rate": 1, "burst": BURST, "quota": 1000, "period": "day"},
        },
        "audit": {"url": f"sqlite:///{audit.name}"},  # beside mlwarden.yaml
        "gateway": {
            "host": HOST,
            "port": 8080,
            "models": [
                {
                    "name": MODEL_NAME,
                    "format": "sklearn",
                    "path": _relative(model, folder),
                    "signature": [_relative(bundle, folder)],
                    "inputs": [
                        {
                            "name": "pixels",
                            "datatype": "FP64",
                            "shape": [-1, 64],
                            "min": 0,
                            "max": 16,
                        }
                    ],
                    "max_batch": 32,
                    "output": {"mode": "label"},
                    "attributes": {"sensitivity": "internal", "owner": "demo", "tenant": TENANT},
                }
            ],
        },
    }
    path = folder / "mlwarden.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return DemoGatewayConfig(
        path=path,
        audit_url=f"sqlite:///{audit}",
        analyst_key=analyst_key,
        intruder_key=intruder_key,
    )


def run_gateway_demo(
    folder: Path,
    *,
    model: Path,
    bundle: Path,
    public_key: Path,
    startup_timeout: float = 60.0,
) -> GatewayDemoResult:
    """Serve the demo model with every control on, call it, stop it, verify the audit log."""
    from mlwarden.demo import digits_test_split

    folder = folder.resolve()
    config = write_gateway_config(folder, model=model, bundle=bundle, public_key=public_key)
    port = _free_port()
    command = (
        sys.executable, "-m", "mlwarden", "serve", "--config", str(config.path),
        "--host", HOST, "--port", str(port),
    )  # fmt: skip
    log = folder / "gateway.log"
    x_test, y_test = digits_test_split()
    rows = [[float(v) for v in row] for row in x_test[:5]]
    problems: list[str] = []
    calls: tuple[DemoCall, ...] = ()
    predicted: tuple[str, ...] = ()
    burst: dict[int, int] = {}
    audited = 0
    # A log kept from an earlier run keeps its records: count only what this run adds.
    records_before = _verify(config.audit_url).records if _log_exists(config.audit_url) else 0
    with log.open("wb") as out:
        server = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of the demo reaches the server only via stop
        )
    try:
        started = _wait_ready(server, port, startup_timeout)
        if started is not None:
            problems.append(started + _last_line(log))
        else:
            client = _Client(port)
            try:
                calls, predicted, burst = _exercise(client, config, rows, problems)
            except (OSError, http.client.HTTPException) as exc:
                problems.append(f"the gateway stopped answering: {exc!r}"[:300])
            finally:
                audited = client.sent
                client.close()
    finally:
        exit_problem = _stop(server)
    if exit_problem is not None and not problems:  # else it never started: said above
        problems.append(exit_problem)
    problems += [
        f"{c.title}: HTTP {c.status}, expected {c.expected}" for c in calls if not c.as_expected
    ]
    truth = tuple(str(int(v)) for v in y_test[:5])
    if predicted and predicted != truth:
        # The model is ~97% accurate: a miss is possible but these five are right.
        problems.append(f"predictions {predicted} differ from the labels {truth}")
    intact, records, head = False, 0, ""
    if _log_exists(config.audit_url):
        verification = _verify(config.audit_url)
        intact = verification.intact
        records = verification.records
        head = verification.head.hash
        if not intact:
            problems.append("the audit chain does not verify")
        if calls and records - records_before != audited:
            problems.append(f"{records - records_before} new audit records for {audited} calls")
    elif calls:
        problems.append("no audit log was written")
    return GatewayDemoResult(
        config=config.path,
        command=command,
        url=f"http://{HOST}:{port}",
        calls=calls,
        predicted=predicted,
        truth=truth,
        burst=burst,
        audit_url=config.audit_url,
        audit_intact=intact,
        audit_records=records,
        audit_head=head,
        audited_calls=audited,
        problems=tuple(problems),
        log=log,
    )


def _log_exists(audit_url: str) -> bool:
    """Whether the SQLite audit log named by `audit_url` exists."""
    return Path(audit_url.removeprefix("sqlite:///")).exists()


def _verify(audit_url: str) -> ChainVerification:
    from mlwarden.audit import open_audit_log

    audit_log = open_audit_log(audit_url, create=False)
    try:
        return audit_log.verify()
    finally:
        audit_log.close()


# --- helpers ----------------------------------------------------------------------------------


def _exercise(
    client: _Client, config: DemoGatewayConfig, rows: list[list[float]], problems: list[str]
) -> tuple[tuple[DemoCall, ...], tuple[str, ...], dict[int, int]]:
    """The demo's calls: (the calls shown, the analyst's predictions, the burst's statuses)."""
    analyst, intruder = config.analyst_key, config.intruder_key
    first = client.infer("analyst: 5 held-out digits", rows, analyst, 200)
    calls = [
        first.call,
        client.infer("a caller with no credential", rows[:1], None, 401).call,
        client.infer("intruder (valid key, not an analyst)", rows[:1], intruder, 403).call,
        client.infer("analyst: 63 pixels instead of 64", [rows[0][:63]], analyst, 400).call,
        client.infer(
            "analyst: a pixel of 99 (declared range 0-16)", [[99.0, *rows[0][1:]]], analyst, 400
        ).call,
    ]
    burst: Counter[int] = Counter()
    refused: DemoCall | None = None
    for _ in range(BURST + 3):
        answer = client.infer("burst", rows[:1], analyst, 429).call
        burst[answer.status] += 1
        if answer.status != 200:
            refused = answer
    if refused is None:
        problems.append("the burst was never rate limited")
    else:
        calls.append(
            DemoCall(
                title=f"analyst: a burst of {BURST + 3} calls, rate 1/s, burst {BURST}",
                status=refused.status,
                expected=429,
                code=refused.code,
                message=refused.message,
                retry_after=refused.retry_after,
            )
        )
    predicted = tuple(str(v) for v in first.labels)
    return tuple(calls), predicted, dict(burst)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Answer:
    call: DemoCall
    labels: tuple[object, ...]


class _Client:
    """One keep-alive HTTP/1.1 connection to the gateway on 127.0.0.1."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._conn = http.client.HTTPConnection(HOST, port, timeout=10)
        self.sent = 0
        """Requests sent: each is one decision the audit log must hold."""

    def infer(
        self, title: str, rows: list[list[float]], api_key: str | None, expected: int
    ) -> _Answer:
        width = len(rows[0]) if rows else 0
        body = json.dumps(
            {
                "inputs": [
                    {
                        "name": "pixels",
                        "shape": [len(rows), width],
                        "datatype": "FP64",
                        "data": [v for row in rows for v in row],
                    }
                ]
            }
        )
        headers = {"Content-Type": "application/json"}
        if api_key is not None:
            headers["x-api-key"] = api_key
        self._conn.request("POST", f"/v2/models/{MODEL_NAME}/infer", body=body, headers=headers)
        self.sent += 1
        response = self._conn.getresponse()
        payload = response.read()
        try:
            answer = json.loads(payload)
        except ValueError:
            answer = {}
        labels: tuple[object, ...] = ()
        code: str | None = None
        message = ""
        if response.status == 200:
            for output in answer.get("outputs", []):
                if output.get("name") == "label":
                    labels = tuple(output.get("data", []))
            message = "labels " + " ".join(str(v) for v in labels)
        else:
            code = answer.get("code")
            message = str(answer.get("message", payload[:200].decode("utf-8", "replace")))
        call = DemoCall(
            title=title,
            status=response.status,
            expected=expected,
            code=code,
            message=message,
            retry_after=response.getheader("retry-after"),
        )
        return _Answer(call=call, labels=labels)

    def close(self) -> None:
        self._conn.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(server: subprocess.Popen[bytes], port: int, timeout: float) -> str | None:
    """None once `/v2/health/ready` answers 200; else why the server did not start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return f"mlwarden serve exited with {server.returncode} before it was ready"
        conn = http.client.HTTPConnection(HOST, port, timeout=1)
        try:
            conn.request("GET", "/v2/health/ready")
            if conn.getresponse().status == 200:
                return None
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.05)
    return f"mlwarden serve was not ready within {timeout:.0f} s"


def _stop(server: subprocess.Popen[bytes]) -> str | None:
    """Stop the server as an operator would (SIGTERM: the audit writer flushes and closes)."""
    if server.poll() is not None:
        return f"the server exited with {server.returncode} before it was stopped"
    server.terminate()
    try:
        code = server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        return "the server did not stop within 15 s of SIGTERM and was killed"
    # uvicorn shuts down gracefully (lifespan: the audit writer flushes and closes), then
    # re-raises the signal it caught, so a clean stop ends with -SIGTERM.
    clean = (0, -signal.SIGTERM)
    return None if code in clean else f"the server exited with {code} after SIGTERM"


def _last_line(log: Path) -> str:
    """`: <the server's last words>` (its refusal to start, usually), or nothing."""
    lines = [line for line in log.read_text("utf-8", "replace").splitlines() if line.strip()]
    return f": {lines[-1].strip()[:300]}" if lines else ""


def _relative(path: Path, folder: Path) -> str:
    """`path` relative to the folder of mlwarden.yaml when it is inside it, else absolute."""
    resolved = path.resolve()
    try:
        return str(resolved.relative_to(folder))
    except ValueError:
        return str(resolved)
