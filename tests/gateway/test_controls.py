"""Every control of the gateway, in-process (httpx.ASGITransport), each refusal path audited."""

from __future__ import annotations

from typing import Any

import pytest
from tests.gateway.support import Env, call, run

from mlwarden.audit import open_audit_log


def _events(env: Env) -> list[dict[str, Any]]:
    log = open_audit_log(str(env.folder / "audit.db"), create=False)
    try:
        assert log.verify().intact
        return [record.event.to_dict() for record in log.tail(10_000)]
    finally:
        log.close()


def test_public_endpoints_answer_without_credentials(env: Env) -> None:
    async def scenario() -> list[Any]:
        gateway = env.gateway()
        try:
            return [
                await call(gateway, "GET", "/v2/health/live"),
                await call(gateway, "GET", "/v2/health/ready"),
                await call(gateway, "GET", "/openapi.json"),
                await call(gateway, "GET", "/v2"),
            ]
        finally:
            await gateway.aclose()

    live, ready, openapi, server = run(scenario())
    assert live.json() == {"live": True}
    assert ready.json() == {"ready": True}
    document = openapi.json()
    assert document["openapi"].startswith("3.")
    assert "/v2/models/{name}/infer" in document["paths"]
    assert server.json()["name"] == "mlwarden"


def test_allowed_inference_with_jwt_and_api_key(env: Env) -> None:
    async def scenario() -> list[Any]:
        gateway = env.gateway()
        try:
            return [
                await call(
                    gateway,
                    "POST",
                    "/v2/models/digits/infer",
                    headers=env.bearer(),
                    json_body=env.body(4),
                ),
                await call(
                    gateway,
                    "POST",
                    "/v2/models/digits/infer",
                    headers=env.key("batch"),
                    json_body=env.body(4),
                ),
                await call(
                    gateway,
                    "POST",
                    "/v2/models/digits/versions/1/infer",
                    headers=env.key("batch"),
                    json_body={**env.body(1), "id": "client-7"},
                ),
            ]
        finally:
            await gateway.aclose()

    by_jwt, by_key, versioned = run(scenario())
    for response in (by_jwt, by_key):
        assert response.status_code == 200, response.text
        outputs = {o["name"]: o for o in response.json()["outputs"]}
        assert outputs["label"]["data"] == env.models.expected[:4].tolist()
    assert versioned.json()["id"] == "client-7"
    events = _events(env)
    assert [e["identity"] for e in events] == ["jwt:alice", "api_key:batch", "api_key:batch"]
    assert all(e["decision"] == "allow" and e["reason"] == "ok" for e in events)
    assert all(len(e["input_sha256"]) == 64 and e["latency_us"] >= 0 for e in events)
    assert events[0]["output"]["labels"] == [str(v) for v in env.models.expected[:4]]


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "E301"),
        ({"authorization": "Bearer not.a.token"}, "E302"),
        ({"authorization": "Basic dXNlcjpwYXNz"}, "E302"),
        ({"x-api-key": "mlw_unknown"}, "E305"),
        ({"x-forwarded-client-cert": "Hash=00"}, "E401-none"),
    ],
)
def test_no_identity_no_service(env: Env, headers: dict[str, str], code: str) -> None:
    async def scenario() -> Any:
        gateway = env.gateway()
        try:
            return await call(
                gateway, "POST", "/v2/models/digits/infer", headers=headers, json_body=env.body()
            )
        finally:
            await gateway.aclose()

    response = run(scenario())
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"code", "message", "request_id"}
    assert body["request_id"] == response.headers["x-request-id"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    if code != "E401-none":  # no mtls configured: an XFCC header alone is no credential
        assert body["code"] == code
    else:
        assert body["code"] == "E301"
    (event,) = _events(env)
    assert event["decision"] == "deny" and event["reason"] == body["code"]
    assert event["identity"] is None and event["model"] == "digits"


def test_bad_tokens_are_refused(env: Env) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1())
    import jwt

    forged = jwt.encode(
        {
            "iss": "https://idp.test",
            "aud": "mlwarden-gateway",
            "sub": "alice",
            "exp": 4102444800,
            "roles": ["analyst"],
            "tenant": "acme",
        },
        other,
        algorithm="ES256",
        headers={"kid": "es-1"},
    )
    unsigned = jwt.encode({"sub": "alice"}, None, algorithm="none")
    cases = {
        "forged": ({"authorization": f"Bearer {forged}"}, "E302"),
        "alg none": ({"authorization": f"Bearer {unsigned}"}, "E302"),
        "expired": (env.bearer(exp=1_000_000_000, iat=999_999_000), "E304"),
        "wrong audience": (env.bearer(aud="someone-else"), "E303"),
        "token and key": ({**env.bearer(), **env.key("batch")}, "E302"),
    }

    async def scenario() -> dict[str, Any]:
        gateway = env.gateway()
        try:
            return {
                name: await call(
                    gateway, "POST", "/v2/models/digits/infer", headers=h, json_body=env.body()
                )
                for name, (h, _) in cases.items()
            }
        finally:
            await gateway.aclose()

    answers = run(scenario())
    for name, (_, code) in cases.items():
        assert answers[name].status_code == 401, name
        assert answers[name].json()["code"] == code, name


def test_cedar_denials_are_403_and_audited(env: Env) -> None:
    async def scenario() -> list[Any]:
        gateway = env.gateway()
        try:
            return [
                # another tenant's analyst
                await call(
                    gateway,
                    "POST",
                    "/v2/models/digits/infer",
                    headers=env.key("outsider"),
                    json_body=env.body(),
                ),
                # a forbid on secret models without clearance beats the tenant permit
                await call(
                    gateway,
                    "POST",
                    "/v2/models/digits-secret/infer",
                    headers=env.bearer(),
                    json_body=env.body(),
                ),
                # with clearance 3 the forbid does not apply
                await call(
                    gateway,
                    "POST",
                    "/v2/models/digits-secret/infer",
                    headers=env.bearer(clearance=3),
                    json_body=env.body(),
                ),
                # an admin may read metrics but not infer
                await call(
                    gateway,
                    "POST",
                    "/v2/models/digits/infer",
                    headers=env.key("ops"),
                    json_body=env.body(),
                ),
                await call(gateway, "GET", "/v2/models/digits", headers=env.key("outsider")),
            ]
        finally:
            await gateway.aclose()

    outsider, secret, cleared, ops, metadata = run(scenario())
    assert outsider.status_code == 403 and outsider.json()["code"] == "E310"
    assert secret.status_code == 403 and secret.json()["code"] == "E310"
    assert cleared.status_code == 200
    assert ops.status_code == 403
    assert metadata.status_code == 403
    reasons = [(e["identity"], e["decision"], e["reason"]) for e in _events(env)]
    assert reasons == [
        ("api_key:outsider", "deny", "E310"),
        ("jwt:alice", "deny", "E310"),
        ("jwt:alice", "allow", "ok"),
        ("api_key:ops", "deny", "E310"),
        ("api_key:outsider", "deny", "E310"),
    ]


def test_metadata_ready_and_unknown_routes(env: Env) -> None:
    async def scenario() -> list[Any]:
        gateway = env.gateway()
        try:
            return [
                await call(gateway, "GET", "/v2/models/digits", headers=env.key("batch")),
                await call(gateway, "GET", "/v2/models/digits/ready", headers=env.key("batch")),
                await call(
                    gateway,
                    "POST",
                    "/v2/models/nope/infer",
                    headers=env.key("batch"),
                    json_body=env.body(),
                ),
                await call(
                    gateway,
                    "POST",
                    "/v2/models/digits/versions/9/infer",
                    headers=env.key("batch"),
                    json_body=env.body(),
                ),
                await call(gateway, "GET", "/v2/models/digits/infer", headers=env.key("batch")),
                await call(gateway, "GET", "/v1/models/digits:predict", headers=env.key("batch")),
                await call(gateway, "POST", "/v2/health/live"),
            ]
        finally:
            await gateway.aclose()

    metadata, ready, unknown, bad_version, wrong_method, no_route, post_live = run(scenario())
    assert metadata.json()["inputs"] == [{"name": "pixels", "datatype": "FP64", "shape": [-1, 64]}]
    assert metadata.json()["platform"] == "scikit-learn"
    assert ready.json() == {"name": "digits", "ready": True}
    assert unknown.status_code == 404 and unknown.json()["code"] == "E136"
    assert bad_version.status_code == 404 and bad_version.json()["code"] == "E136"
    assert wrong_method.status_code == 405 and wrong_method.json()["code"] == "E138"
    assert wrong_method.headers["allow"] == "POST"
    assert no_route.status_code == 404 and no_route.json()["code"] == "E137"
    assert post_live.status_code == 405
    reasons = [(e["kind"], e["reason"]) for e in _events(env)]
    assert reasons == [("metadata", "ok"), ("ready", "ok"), ("infer", "E136"), ("infer", "E136")]


def test_metrics_are_protected(env: Env) -> None:
    async def scenario() -> list[Any]:
        gateway = env.gateway()
        try:
            await call(
                gateway,
                "POST",
                "/v2/models/digits/infer",
                headers=env.key("batch"),
                json_body=env.body(),
            )
            return [
                await call(gateway, "GET", "/metrics"),
                await call(gateway, "GET", "/metrics", headers=env.key("batch")),
                await call(gateway, "GET", "/metrics", headers=env.key("ops")),
            ]
        finally:
            await gateway.aclose()

    anonymous, analyst, ops = run(scenario())
    assert anonymous.status_code == 401
    assert analyst.status_code == 403 and analyst.json()["code"] == "E310"
    assert ops.status_code == 200
    assert ops.headers["content-type"].startswith("text/plain")
    text = ops.text
    assert (
        'mlwarden_gateway_requests_total{endpoint="infer",model="digits",status="200"} 1.0' in text
    )
    assert 'mlwarden_gateway_decisions_total{decision="deny",reason="E310"} 1.0' in text
    assert "mlwarden_gateway_request_seconds_bucket" in text


def test_rate_limit_is_429_with_retry_after(env: Env) -> None:
    async def scenario() -> list[Any]:
        gateway = env.gateway()
        try:
            return [
                await call(
                    gateway,
                    "POST",
                    "/v2/models/tight/infer",
                    headers=env.key("batch"),
                    json_body=env.body(),
                )
                for _ in range(3)
            ]
        finally:
            await gateway.aclose()

    first, second, third = run(scenario())
    assert first.status_code == second.status_code == 200
    assert third.status_code == 429
    assert third.json()["code"] == "E402"
    assert int(third.headers["retry-after"]) >= 1
    assert [e["reason"] for e in _events(env)] == ["ok", "ok", "E402"]


def test_unreachable_budget_store_fails_closed(env: Env, tmp_path: Any) -> None:
    from tests.gateway.support import free_port, make_env

    port = free_port()  # nothing listens there
    closed = make_env(
        tmp_path / "closed",
        env.models,
        budgets={
            "store": {"kind": "redis", "url": f"redis://127.0.0.1:{port}/0", "timeout": 0.2},
            "models": {"digits-label": {"fail_open": True}},
        },
    )

    async def scenario() -> list[Any]:
        gateway = closed.gateway()
        try:
            return [
                await call(
                    gateway,
                    "POST",
                    "/v2/models/digits/infer",
                    headers=closed.key("batch"),
                    json_body=closed.body(),
                ),
                await call(
                    gateway,
                    "POST",
                    "/v2/models/digits-label/infer",
                    headers=closed.key("batch"),
                    json_body=closed.body(),
                ),
            ]
        finally:
            await gateway.aclose()

    refused, fail_open = run(scenario())
    assert refused.status_code == 503 and refused.json()["code"] == "E403"
    assert fail_open.status_code == 200
    events = _events(closed)
    assert [e["reason"] for e in events] == ["E403", "ok"]
    assert events[1]["detail"] == {"budget": "fail_open"}


def test_a_locked_sqlite_budget_store_fails_closed_without_stalling_the_gateway(
    env: Env, tmp_path: Any
) -> None:
    """The embedded default store, held by another writer: budgeted calls are refused
    (E403, 503) unless the model fails open, and calls that need no budget are answered
    meanwhile: the gateway's event loop never waits for the file's lock."""
    import asyncio
    import sqlite3

    from tests.gateway.support import make_env

    locked = make_env(
        tmp_path / "locked",
        env.models,
        budgets={
            "store": {"kind": "sqlite", "path": "budgets.sqlite3", "busy_timeout": 1.0},
            "defaults": {"rate": 10000, "burst": 10000, "quota": 1000000},
            "models": {"digits-label": {"fail_open": True}},
        },
    )

    async def scenario() -> tuple[list[Any], list[float], Any]:
        gateway = locked.gateway()
        blocker = sqlite3.connect(locked.folder / "budgets.sqlite3", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another process's write lock, as it were
        try:
            started = asyncio.get_running_loop().time()
            budgeted = asyncio.gather(
                call(gateway, "POST", "/v2/models/digits/infer",
                     headers=locked.key("batch"), json_body=locked.body()),
                call(gateway, "POST", "/v2/models/digits-label/infer",
                     headers=locked.key("batch"), json_body=locked.body()),
            )  # fmt: skip
            await asyncio.sleep(0.05)
            # Metadata needs no budget: it is answered while the budgeted calls wait.
            metadata = await call(gateway, "GET", "/v2/models/digits", headers=locked.key("batch"))
            answered_at = asyncio.get_running_loop().time() - started
            results = await budgeted
            waited = asyncio.get_running_loop().time() - started
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        after = await call(
            gateway, "POST", "/v2/models/digits/infer",
            headers=locked.key("batch"), json_body=locked.body(),
        )  # fmt: skip
        await gateway.aclose()
        return [*results, metadata], [answered_at, waited], after

    (refused, fail_open, metadata), (answered_at, waited), after = run(scenario())
    assert refused.status_code == 503 and refused.json()["code"] == "E403"
    assert fail_open.status_code == 200
    assert metadata.status_code == 200 and answered_at < 0.9 <= waited
    assert after.status_code == 200  # the lock is gone: service resumes
    events = _events(locked)
    by_model = {(e["kind"], e["model"]): e for e in events}
    assert by_model[("infer", "digits-label")]["detail"] == {"budget": "fail_open"}
    assert [(e["kind"], e["reason"]) for e in events if e["model"] == "digits"] == [
        ("metadata", "ok"),
        ("infer", "E403"),
        ("infer", "ok"),
    ]


def test_bad_input_is_a_4xx_with_a_stable_code(env: Env) -> None:
    good = env.body(1)["inputs"][0]
    row = good["data"]
    cases: dict[str, tuple[Any, str, int]] = {
        "not json": (b"{", "E130", 400),
        "not an object": (b"[1]", "E130", 400),
        "no inputs": ({"inputs": []}, "E130", 400),
        "unknown field": ({"inputs": [good], "extra": 1}, "E130", 400),
        "wrong input name": ({"inputs": [{**good, "name": "other"}]}, "E130", 400),
        "twice": ({"inputs": [good, good]}, "E130", 400),
        "data not a list": ({"inputs": [{**good, "data": "x"}]}, "E130", 400),
        "bad shape": ({"inputs": [{**good, "shape": [1, -64]}]}, "E130", 400),
        "shape mismatch": ({"inputs": [{**good, "shape": [2, 32]}]}, "E131", 400),
        "count mismatch": ({"inputs": [{**good, "data": row[:63]}]}, "E131", 400),
        "ragged": (
            {"inputs": [{**good, "data": [row[:32], row[:31]], "shape": [1, 64]}]},
            "E131",
            400,
        ),
        "datatype": ({"inputs": [{**good, "datatype": "INT32"}]}, "E132", 400),
        "strings": ({"inputs": [{**good, "data": [str(v) for v in row]}]}, "E132", 400),
        "booleans": ({"inputs": [{**good, "data": [True] * 64}]}, "E132", 400),
        "null": ({"inputs": [{**good, "data": [None] * 64}]}, "E132", 400),
        "too large": ({"inputs": [{**good, "data": [17.0] * 64}]}, "E133", 400),
        "negative": ({"inputs": [{**good, "data": [-1.0] * 64}]}, "E133", 400),
        "overflow": (
            b'{"inputs":[{"name":"pixels","shape":[1,1],"datatype":"FP64","data":[1e309]}]}',
            "E130",
            400,
        ),
        "nan": (
            b'{"inputs":[{"name":"pixels","shape":[1,1],"datatype":"FP64","data":[NaN]}]}',
            "E130",
            400,
        ),
        "batch": ({"inputs": [{**good, "shape": [33, 64], "data": row * 33}]}, "E134", 400),
        "body": (b" " * (1 << 20 + 1), "E135", 413),
        "binary extension": (None, "E130", 400),
    }

    async def scenario() -> dict[str, Any]:
        gateway = env.gateway()
        answers = {}
        try:
            for name, (given, _, _) in cases.items():
                headers = dict(env.key("batch"))
                payload = given
                if name == "binary extension":
                    headers["inference-header-content-length"] = "10"
                    payload = {"inputs": [good]}
                kwargs: dict[str, Any] = (
                    {"content": payload} if isinstance(payload, bytes) else {"json_body": payload}
                )
                answers[name] = await call(
                    gateway, "POST", "/v2/models/digits/infer", headers=headers, **kwargs
                )
        finally:
            await gateway.aclose()
        return answers

    answers = run(scenario())
    for name, (_, code, status) in cases.items():
        assert (answers[name].status_code, answers[name].json()["code"]) == (status, code), name
    events = _events(env)
    assert len(events) == len(cases)
    assert all(e["decision"] == "deny" for e in events)


def test_float32_models_and_value_range_for_onnx_and_torch(env: Env) -> None:
    async def scenario() -> list[Any]:
        gateway = env.gateway()
        try:
            return [
                await call(
                    gateway,
                    "POST",
                    f"/v2/models/{name}/infer",
                    headers=env.key("batch"),
                    json_body=env.body(8, datatype="FP32"),
                )
                for name in ("digits-onnx", "digits-torch")
            ] + [
                await call(
                    gateway,
                    "POST",
                    "/v2/models/digits-onnx/infer",
                    headers=env.key("batch"),
                    json_body={
                        "inputs": [
                            {
                                "name": "pixels",
                                "shape": [1, 64],
                                "datatype": "FP32",
                                "data": [1e39] * 64,
                            }
                        ]
                    },
                ),
            ]
        finally:
            await gateway.aclose()

    onnx, torch, overflow = run(scenario())
    for response in (onnx, torch):
        assert response.status_code == 200, response.text
        labels = {o["name"]: o for o in response.json()["outputs"]}["label"]["data"]
        assert labels == env.models.expected[:8].tolist()
    # a JSON number too large for FP32 becomes infinity in the cast: refused as such
    assert overflow.status_code == 400 and overflow.json()["code"] == "E133"
