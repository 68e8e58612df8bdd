"""The gateway on a real uvicorn on 127.0.0.1: controls over the wire, `mlwarden serve`,
an upstream OIP server behind it, TLS and mutual TLS."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from tests.gateway.pki import Authority
from tests.gateway.support import Env, Models, free_port, make_env, model_entry, running

from mlwarden.audit import open_audit_log
from mlwarden.cli import main as cli_main


def _verify(env: Env) -> tuple[int, list[str]]:
    log = open_audit_log(str(env.folder / "audit.db"), create=False)
    try:
        verification = log.verify()
        assert verification.intact, verification.first_break
        return verification.records, [r.event.reason for r in log.tail(100_000)]
    finally:
        log.close()


def test_controls_over_a_real_uvicorn(env: Env) -> None:
    gateway = env.gateway()
    with running(gateway) as url, httpx.Client(base_url=url, trust_env=False) as http:
        assert http.get("/v2/health/live").json() == {"live": True}
        allowed = http.post("/v2/models/digits/infer", headers=env.bearer(), json=env.body(3))
        denied = http.post("/v2/models/digits/infer", headers=env.key("outsider"), json=env.body())
        anonymous = http.post("/v2/models/digits/infer", json=env.body())
        bad = http.post("/v2/models/digits/infer", headers=env.key("batch"), content=b"{nope")
        huge = http.post(
            "/v2/models/digits/infer", headers=env.key("batch"), content=b"x" * (2 << 20)
        )
        assert http.get("/openapi.json").json()["info"]["title"] == "mlwarden gateway"
    assert allowed.status_code == 200
    labels = {o["name"]: o for o in allowed.json()["outputs"]}["label"]["data"]
    assert labels == env.models.expected[:3].tolist()
    assert (denied.status_code, anonymous.status_code, bad.status_code, huge.status_code) == (
        403,
        401,
        400,
        413,
    )
    assert huge.json()["code"] == "E135"
    # the lifespan shutdown flushed and closed the audit writer
    assert _verify(env) == (5, ["ok", "E310", "E301", "E130", "E135"])


def test_concurrent_clients_over_the_wire_keep_the_chain(env: Env) -> None:
    gateway = env.gateway()
    statuses: list[int] = []
    lock = threading.Lock()

    def client(url: str, index: int) -> None:
        with httpx.Client(base_url=url, trust_env=False) as http:
            for n in range(12):
                headers = env.key("outsider") if (index + n) % 5 == 0 else env.key("batch")
                status = http.post(
                    "/v2/models/digits/infer", headers=headers, json=env.body(1, n)
                ).status_code
                with lock:
                    statuses.append(status)

    with running(gateway) as url:
        threads = [threading.Thread(target=client, args=(url, i)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(statuses) == 192 and set(statuses) == {200, 403}
    records, reasons = _verify(env)
    assert records == 192
    assert reasons.count("E310") == statuses.count(403)


def _wait_live(url: str, process: subprocess.Popen[bytes], **kwargs: Any) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"serve exited: {process.stderr.read().decode() if process.stderr else ''}"
            )
        try:
            if httpx.get(f"{url}/v2/health/live", trust_env=False, **kwargs).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("serve did not come up")


@contextmanager
def _serve(env: Env, port: int) -> Iterator[str]:
    command = [
        sys.executable,
        "-m",
        "mlwarden",
        "serve",
        "--config",
        str(env.config),
        "--port",
        str(port),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=env.folder
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_live(url, process)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        # uvicorn shuts down gracefully (lifespan: the audit writer is flushed and closed),
        # then re-raises the signal, so the exit status is -SIGTERM.
        assert process.returncode in (0, -signal.SIGTERM), stderr.decode()
        assert b"Application shutdown complete" in stderr


def test_mlwarden_serve_restarts_keep_budgets_and_the_chain(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    with _serve(env, port) as url:
        first = [
            httpx.post(
                f"{url}/v2/models/quota/infer",
                headers=env.key("batch"),
                json=env.body(),
                trust_env=False,
            )
            for _ in range(2)
        ]
    with _serve(env, port) as url:
        second = [
            httpx.post(
                f"{url}/v2/models/quota/infer",
                headers=env.key("batch"),
                json=env.body(),
                trust_env=False,
            )
            for _ in range(2)
        ]
    assert [r.status_code for r in first + second] == [200, 200, 200, 429]
    assert second[1].json()["code"] == "E401"
    capsys.readouterr()
    assert cli_main(["audit", "verify", "--db", f"sqlite:///{env.folder / 'audit.db'}"]) == 0
    assert "intact: 4 records" in capsys.readouterr().out


def test_serve_refuses_a_model_that_does_not_verify(tmp_path: Path, models: Models) -> None:
    from tests.gateway.support import write_ec_key

    folder = tmp_path / "untrusted"
    folder.mkdir()
    stranger_key, _, _ = write_ec_key(folder, "stranger")
    model = folder / "model.joblib"
    model.write_bytes((models.folder / "digits.joblib").read_bytes())
    from mlwarden.signing import sign

    sign(model, key=stranger_key, signature=folder / "model.joblib.sig")
    env = make_env(folder / "gw", models, model_entries=[model_entry("digits", "sklearn", model)])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlwarden",
            "serve",
            "--config",
            str(env.config),
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert b"E203" in result.stderr


# --- an upstream Open Inference Protocol server ----------------------------------------------


class TinyOip:
    """A minimal OIP v2 server: `digits` answers logits; `slow` sleeps; `broken` talks nonsense."""

    def __init__(self, models: Models) -> None:
        self.coef = models.coef
        self.intercept = models.intercept
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.calls += 1
        path = scope["path"]
        status, answer = 200, b""
        if path.endswith("/ready"):
            answer = b'{"ready": true}'
        elif path == "/v2/models/digits/infer":
            tensor = json.loads(body)["inputs"][0]
            x = np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
            logits = x @ self.coef.T + self.intercept
            answer = json.dumps(
                {
                    "model_name": "digits",
                    "outputs": [
                        {
                            "name": "logits",
                            "datatype": "FP32",
                            "shape": list(logits.shape),
                            "data": logits.ravel().tolist(),
                        }
                    ],
                }
            ).encode()
        elif path == "/v2/models/slow/infer":
            await asyncio.sleep(3)
            answer = b"{}"
        elif path == "/v2/models/broken/infer":
            answer = b'{"outputs": "not a list"}'
        else:
            status, answer = 404, b'{"error": "no such model"}'
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer})


@contextmanager
def _upstream(app: Any) -> Iterator[str]:
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_upstream_proxy_adds_every_control(tmp_path: Path, models: Models) -> None:
    upstream = TinyOip(models)
    with _upstream(upstream) as upstream_url:
        dead = f"http://127.0.0.1:{free_port()}"
        entries = [
            model_entry(
                "digits",
                "upstream",
                None,
                upstream={"url": upstream_url, "scores": "logits"},
                output={"mode": "top_k", "top_k": 2, "decimals": 2},
            ),
            model_entry(
                "slow", "upstream", None, upstream={"url": upstream_url, "timeout_seconds": 0.5}
            ),
            model_entry("broken", "upstream", None, upstream={"url": upstream_url}),
            model_entry("down", "upstream", None, upstream={"url": dead}),
        ]
        env = make_env(tmp_path / "gw", models, model_entries=entries)
        for entry in entries:
            entry["inputs"][0]["datatype"] = "FP32"
        env = make_env(tmp_path / "gw", models, model_entries=entries)
        gateway = env.gateway()
        with running(gateway) as url, httpx.Client(base_url=url, trust_env=False) as http:
            body = env.body(4, datatype="FP32")
            allowed = http.post("/v2/models/digits/infer", headers=env.key("batch"), json=body)
            calls_before = upstream.calls
            denied = http.post("/v2/models/digits/infer", headers=env.key("outsider"), json=body)
            bad_input = http.post(
                "/v2/models/digits/infer", headers=env.key("batch"), json=env.body(1)
            )
            calls_after = upstream.calls
            ready = http.get("/v2/models/digits/ready", headers=env.key("batch"))
            slow = http.post("/v2/models/slow/infer", headers=env.key("batch"), json=body)
            broken = http.post("/v2/models/broken/infer", headers=env.key("batch"), json=body)
            down = http.post("/v2/models/down/infer", headers=env.key("batch"), json=body)
            down_ready = http.get("/v2/models/down/ready", headers=env.key("batch"))
    outputs = {o["name"]: o for o in allowed.json()["outputs"]}
    assert outputs["label"]["data"] == models.expected[:4].tolist()
    assert outputs["top_k_probabilities"]["shape"] == [4, 2]
    assert "logits" not in outputs  # raw upstream outputs are not passed through
    assert denied.status_code == 403 and bad_input.status_code == 400
    assert calls_after == calls_before  # refused calls never reach the upstream
    assert ready.json()["ready"] is True and down_ready.json()["ready"] is False
    assert (slow.status_code, slow.json()["code"]) == (504, "E502")
    assert (broken.status_code, broken.json()["code"]) == (502, "E503")
    assert (down.status_code, down.json()["code"]) == (503, "E501")
    _, reasons = _verify(env)
    assert reasons == ["ok", "E310", "E132", "ok", "E502", "E503", "E501", "ok"]


# --- TLS and mutual TLS ----------------------------------------------------------------------


def test_tls_and_mutual_tls(tmp_path: Path, models: Models) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    ca = Authority(pki, "clients-and-server-ca")
    server = ca.issue("server", server=True)
    scorer = ca.issue("scorer", uri="spiffe://acme/ns/ml/sa/scorer")
    unmapped = ca.issue("unmapped", uri="spiffe://acme/ns/ml/sa/unknown")
    rogue_ca = Authority(pki, "rogue-ca")
    rogue = rogue_ca.issue("rogue", uri="spiffe://acme/ns/ml/sa/scorer")
    env = make_env(
        tmp_path / "gw",
        models,
        gateway_extra={
            "tls": {
                "cert_file": str(server.cert),
                "key_file": str(server.key),
                "client_ca_file": str(ca.issued.cert),
                "require_client_cert": False,
            },
        },
        identity_extra={
            "mtls": {
                "ca_file": str(ca.issued.cert),
                "clients": [
                    {
                        "principal": "scorer",
                        "uri": "spiffe://acme/ns/ml/sa/scorer",
                        "roles": ["analyst"],
                        "tenant": "acme",
                    }
                ],
            },
        },
    )
    from mlwarden.policy import load_policy

    policy = load_policy(env.config)
    assert policy.gateway is not None
    gateway = env.gateway()

    def client(cert: Any = None) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(ca.issued.cert))
        if cert is not None:
            context.load_cert_chain(str(cert.cert), str(cert.key))
        return httpx.Client(verify=context, trust_env=False)

    with running(gateway, tls=policy.gateway.tls, base_dir=env.folder) as url:
        assert url.startswith("https://")
        with client(scorer) as http:
            by_cert = http.post(f"{url}/v2/models/digits/infer", json=env.body())
        with client(unmapped) as http:
            by_unmapped = http.post(f"{url}/v2/models/digits/infer", json=env.body())
        with client() as http:
            no_cert = http.post(f"{url}/v2/models/digits/infer", json=env.body())
            with_key = http.post(
                f"{url}/v2/models/digits/infer", headers=env.key("batch"), json=env.body()
            )
        with client(rogue) as http, pytest.raises(httpx.HTTPError):
            http.post(f"{url}/v2/models/digits/infer", json=env.body())
        with httpx.Client(verify=False, trust_env=False) as http:
            plain = http.get(f"{url}/v2/health/live")
    assert by_cert.status_code == 200, by_cert.text
    assert by_unmapped.status_code == 401 and by_unmapped.json()["code"] == "E307"
    assert no_cert.status_code == 401 and no_cert.json()["code"] == "E301"
    assert with_key.status_code == 200
    assert plain.status_code == 200
    log = open_audit_log(str(env.folder / "audit.db"), create=False)
    try:
        identities = [r.event.identity for r in log.tail(10)]
    finally:
        log.close()
    assert identities == ["mtls:scorer", None, None, "api_key:batch"]
    assert os.path.exists(server.cert)


def test_jwt_keys_from_a_jwks_url(tmp_path: Path, models: Models) -> None:
    """The gateway takes its JWT keys from a JWKS URL (a real HTTP server on 127.0.0.1):
    tokens signed by the published key pass, a key it does not publish is refused."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec
    from tests.gateway.support import AUDIENCE, ISSUER

    folder = tmp_path / "gw"
    hits: list[str] = []

    class Publish(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            body = (folder / "jwks.json").read_bytes()  # the key set make_env wrote
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    idp = ThreadingHTTPServer(("127.0.0.1", 0), Publish)
    threading.Thread(target=idp.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{idp.server_address[1]}/.well-known/jwks.json"
    try:
        env = make_env(
            folder,
            models,
            identity_extra={
                "jwt": {
                    "issuer": ISSUER,
                    "audience": AUDIENCE,
                    "algorithms": ["ES256"],
                    "jwks_url": url,
                    "allow_http_jwks": True,
                }
            },
        )
        stranger = jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": int(time.time()) + 600,
             "roles": ["analyst"], "tenant": "acme"},
            ec.generate_private_key(ec.SECP256R1()),
            algorithm="ES256",
            headers={"kid": "es-1"},
        )  # fmt: skip
        gateway = env.gateway()
        with running(gateway) as base, httpx.Client(base_url=base, trust_env=False) as http:
            allowed = http.post("/v2/models/digits/infer", headers=env.bearer(), json=env.body())
            forged = http.post(
                "/v2/models/digits/infer",
                headers={"authorization": f"Bearer {stranger}"},
                json=env.body(),
            )
    finally:
        idp.shutdown()
        idp.server_close()
    assert allowed.status_code == 200
    assert forged.status_code == 401 and forged.json()["code"].startswith("E3")
    assert hits and set(hits) == {"/.well-known/jwks.json"}
    assert _verify(env)[1] == ["ok", forged.json()["code"]]
