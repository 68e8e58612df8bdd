"""Each response path through the real gateway (in-process ASGI): alert (audit event,
Prometheus counter, webhook to a local HTTP server), throttle, degrade, quarantine and
release, with the refusals audited like every denial."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.detect_gateway.conftest import Fitted, body, detect_env, uniform_attack
from tests.gateway.support import Env, call

from mlwarden.audit import AuditEvent, open_audit_log
from mlwarden.cli import main
from mlwarden.gateway import Gateway

INFER = "/v2/models/digits/infer"


async def attack(app: Gateway, env: Env, who: str, batches: int) -> list[int]:
    """Send `batches` batches of 32 uniform-noise queries; the statuses, settling the
    detectors after each batch so that their response is deterministic."""
    assert app.detectors is not None
    statuses = []
    for i in range(batches):
        rows = uniform_attack(32, seed=i)
        answer = await call(app, "POST", INFER, headers=env.key(who), json_body=body(rows))
        statuses.append(answer.status_code)
        await app.detectors.settle()
    return statuses


def audit_events(env: Env) -> list[AuditEvent]:
    log = open_audit_log(f"sqlite:///{env.folder / 'audit.db'}", create=False)
    try:
        assert log.verify().intact
        return [record.event for record in log.tail(10_000)]
    finally:
        log.close()


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["content-length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def test_alert_audits_counts_and_posts_the_webhook(
    tmp_path: Path, fitted: Fitted, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    env = detect_env(
        tmp_path / "gw",
        fitted,
        responses={"extraction": "alert"},
        extra={"webhook": {"url": url, "timeout": 2}},
    )

    async def scenario() -> None:
        app = env.gateway()
        try:
            statuses = await attack(app, env, "batch", 10)
            # Alert only: the attacker is still answered.
            assert statuses == [200] * 10
            metrics = app.metrics.render()[0].decode()
            assert (
                'mlwarden_detector_alerts_total{model="digits",response="alert",signal="extraction"}'
                in metrics
            )
            assert app.detectors is not None
            assert app.detectors.sanction_of("api_key:batch", "digits") is None
        finally:
            await app.aclose()  # drains the webhook queue
        assert (
            'mlwarden_detector_webhook_total{outcome="sent"} 1.0'
            in app.metrics.render()[0].decode()
        )

    asyncio.run(scenario())
    alerts = [e for e in audit_events(env) if e.kind == "detect"]
    assert alerts, "no detector alert in the audit log"
    assert alerts[0].identity == "api_key:batch" and alerts[0].model == "digits"
    assert "extraction" in alerts[0].reason
    assert alerts[0].detail is not None and alerts[0].detail["response"] == "alert"
    # One alert per stream and signal, not one per query.
    assert len([e for e in alerts if "extraction" in e.reason]) == 1
    assert received and received[0]["event"] == "mlwarden.detector.alert"
    assert received[0]["identity"] == "api_key:batch" and "extraction" in received[0]["signals"]


def test_a_dead_webhook_is_counted_not_fatal(tmp_path: Path, fitted: Fitted) -> None:
    """Nothing listens on port 1: the alert still reaches the audit log, the caller is
    still answered, and the failed post shows in the metrics."""
    env = detect_env(
        tmp_path / "gw",
        fitted,
        responses={"extraction": "alert"},
        extra={"webhook": {"url": "http://127.0.0.1:1/hook", "timeout": 1}},
    )

    async def scenario() -> str:
        app = env.gateway()
        try:
            assert await attack(app, env, "batch", 10) == [200] * 10
        finally:
            await app.aclose()
        return str(app.metrics.render()[0].decode())

    metrics = asyncio.run(scenario())
    assert 'mlwarden_detector_webhook_total{outcome="failed"} 1.0' in metrics
    assert 'outcome="sent"' not in metrics
    assert [e for e in audit_events(env) if e.kind == "detect"]


def test_benign_caller_is_not_flagged(tmp_path: Path, fitted: Fitted) -> None:
    env = detect_env(tmp_path / "gw", fitted, responses={"extraction": "quarantine"})
    x_test = env.models.x_test

    async def scenario() -> None:
        app = env.gateway()
        try:
            assert app.detectors is not None
            for i in range(0, 40, 4):
                answer = await call(
                    app, "POST", INFER, headers=env.key("batch"), json_body=body(x_test[i : i + 4])
                )
                assert answer.status_code == 200
                await app.detectors.settle()
            assert app.detectors.sanction_of("api_key:batch", "digits") is None
        finally:
            await app.aclose()

    asyncio.run(scenario())


def test_throttle_applies_the_stricter_rate(tmp_path: Path, fitted: Fitted) -> None:
    env = detect_env(
        tmp_path / "gw",
        fitted,
        responses={"extraction": "throttle"},
        model_extra={"throttle": {"rate": 0.01, "burst": 2}},
    )

    async def scenario() -> None:
        app = env.gateway()
        try:
            statuses = await attack(app, env, "batch", 10)
            assert app.detectors is not None
            record = app.detectors.sanction_of("api_key:batch", "digits")
            assert record is not None and record.sanction == "throttle"
            first = statuses.index(429)
            # Flagged, then two calls of burst, then refused.
            assert statuses[first - 2 : first] == [200, 200]
            refused = await call(app, "POST", INFER, headers=env.key("batch"),
                                 json_body=body(env.models.x_test[:1]))  # fmt: skip
            assert refused.status_code == 429
            assert refused.json()["code"] == "E321"
            assert "retry-after" in refused.headers
            # Another identity is untouched.
            other = await call(app, "POST", INFER, headers=env.key("scientist"),
                               json_body=body(env.models.x_test[:1]))  # fmt: skip
            assert other.status_code == 200
        finally:
            await app.aclose()

    asyncio.run(scenario())
    denials = [e for e in audit_events(env) if e.reason == "E321"]
    assert denials and denials[0].decision == "deny"


def test_degrade_answers_label_only(tmp_path: Path, fitted: Fitted) -> None:
    env = detect_env(tmp_path / "gw", fitted, responses={"extraction": "degrade"})

    async def scenario() -> None:
        app = env.gateway()
        try:
            before = await call(app, "POST", INFER, headers=env.key("batch"),
                                json_body=body(env.models.x_test[:1]))  # fmt: skip
            assert {o["name"] for o in before.json()["outputs"]} == {"label", "probabilities"}
            statuses = await attack(app, env, "batch", 10)
            assert statuses == [200] * 10
            after = await call(app, "POST", INFER, headers=env.key("batch"),
                               json_body=body(env.models.x_test[:1]))  # fmt: skip
            assert after.status_code == 200
            assert [o["name"] for o in after.json()["outputs"]] == ["label"]
            other = await call(app, "POST", INFER, headers=env.key("scientist"),
                               json_body=body(env.models.x_test[:1]))  # fmt: skip
            assert {o["name"] for o in other.json()["outputs"]} == {"label", "probabilities"}
        finally:
            await app.aclose()

    asyncio.run(scenario())


def test_quarantine_then_admin_release(
    tmp_path: Path, fitted: Fitted, capsys: pytest.CaptureFixture[str]
) -> None:
    env = detect_env(tmp_path / "gw", fitted, responses={"extraction": "quarantine"})

    async def quarantine() -> None:
        app = env.gateway()
        try:
            statuses = await attack(app, env, "batch", 12)
            assert 403 in statuses, statuses
            first = statuses.index(403)
            assert set(statuses[first:]) == {403}
            refused = await call(app, "POST", INFER, headers=env.key("batch"),
                                 json_body=body(env.models.x_test[:1]))  # fmt: skip
            assert refused.status_code == 403 and refused.json()["code"] == "E320"
            other = await call(app, "POST", INFER, headers=env.key("scientist"),
                               json_body=body(env.models.x_test[:1]))  # fmt: skip
            assert other.status_code == 200
        finally:
            await app.aclose()

    asyncio.run(quarantine())
    events = audit_events(env)
    detect = [e for e in events if e.kind == "detect"]
    assert detect and detect[0].decision == "deny" and detect[0].detail is not None
    assert detect[0].detail["response"] == "quarantine"
    assert any(e.reason == "E320" and e.identity == "api_key:batch" for e in events)

    capsys.readouterr()
    assert main(["admin", "quarantined", "--config", str(env.config), "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["identity"], r["model"], r["sanction"]) for r in listed] == [
        ("api_key:batch", "digits", "quarantine")
    ]
    assert main(["admin", "release", "--config", str(env.config),
                 "--identity", "api_key:batch", "--model", "digits"]) == 0  # fmt: skip
    assert main(["admin", "release", "--config", str(env.config),
                 "--identity", "api_key:batch", "--model", "digits"]) == 1  # fmt: skip

    async def released() -> None:
        app = env.gateway()
        try:
            answer = await call(app, "POST", INFER, headers=env.key("batch"),
                                json_body=body(env.models.x_test[:1]))  # fmt: skip
            assert answer.status_code == 200
        finally:
            await app.aclose()

    asyncio.run(released())


def test_release_reaches_a_running_gateway(tmp_path: Path, fitted: Fitted) -> None:
    env = detect_env(
        tmp_path / "gw", fitted, responses={"extraction": "quarantine"},
        extra={"refresh_seconds": 0.1},
    )  # fmt: skip

    async def scenario() -> None:
        app = env.gateway()
        try:
            statuses = await attack(app, env, "batch", 12)
            assert statuses[-1] == 403
            code = await asyncio.to_thread(
                main, ["admin", "release", "--config", str(env.config),
                       "--identity", "api_key:batch", "--model", "digits"],
            )  # fmt: skip
            assert code == 0
            await asyncio.sleep(0.4)  # a few refresh intervals
            answer = await call(app, "POST", INFER, headers=env.key("batch"),
                                json_body=body(env.models.x_test[:1]))  # fmt: skip
            assert answer.status_code == 200
        finally:
            await app.aclose()

    asyncio.run(scenario())
