"""Output minimization per policy, live policy reload, restarts and concurrency."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tests.gateway.support import Env, call, run

from mlwarden.audit import open_audit_log
from mlwarden.errors import MlwardenError


def _outputs(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return {o["name"]: o for o in response.json()["outputs"]}


def test_output_minimization_per_model_and_grant(env: Env) -> None:
    async def scenario() -> list[Any]:
        gateway = env.gateway()
        try:
            return [
                await call(
                    gateway,
                    "POST",
                    "/v2/models/digits-label/infer",
                    headers=env.key("batch"),
                    json_body=env.body(2),
                ),
                await call(
                    gateway,
                    "POST",
                    "/v2/models/digits/infer",
                    headers=env.key("batch"),
                    json_body=env.body(2),
                ),
                await call(
                    gateway,
                    "POST",
                    "/v2/models/digits-onnx/infer",
                    headers=env.key("batch"),
                    json_body=env.body(2, datatype="FP32"),
                ),
                await call(
                    gateway,
                    "POST",
                    "/v2/models/digits/infer",
                    headers=env.key("scientist"),
                    json_body=env.body(2),
                ),
            ]
        finally:
            await gateway.aclose()

    label, top_k, probabilities, raw = (_outputs(r) for r in run(scenario()))
    expected = env.models.expected[:2].tolist()
    # label only: nothing else at all
    assert list(label) == ["label"] and label["label"]["data"] == expected
    # top 3, two decimals, best first, the first being the label
    assert set(top_k) == {"label", "top_k_labels", "top_k_probabilities"}
    assert top_k["top_k_labels"]["shape"] == [2, 3]
    probs = top_k["top_k_probabilities"]["data"]
    assert all(round(p, 2) == p for p in probs)
    assert probs[0] >= probs[1] >= probs[2]
    assert top_k["top_k_labels"]["data"][0] == expected[0]
    # every class, three decimals
    assert probabilities["probabilities"]["shape"] == [2, 10]
    assert all(round(p, 3) == p for p in probabilities["probabilities"]["data"])
    assert abs(sum(probabilities["probabilities"]["data"][:10]) - 1) < 0.01
    # the raw grant: unrounded model outputs, for the role that holds it only
    values = raw["probabilities"]["data"]
    assert any(round(v, 6) != v for v in values)
    assert "probabilities" not in top_k


def test_policy_reloads_live_and_a_bad_policy_keeps_the_old_one(env: Env) -> None:
    widened = (
        env.policy.read_text()
        + """
@id("globex-may-infer")
permit (principal, action == Mlwarden::Action::"infer", resource == Mlwarden::Model::"digits");
"""
    )

    async def scenario() -> list[Any]:
        gateway = env.gateway()
        answers = []
        try:
            ask = lambda: call(  # noqa: E731
                gateway,
                "POST",
                "/v2/models/digits/infer",
                headers=env.key("outsider"),
                json_body=env.body(),
            )
            answers.append(await ask())
            env.policy.write_text(widened)
            answers.append(await ask())
            env.policy.write_text("permit (principal, action, resource) when { oops };")
            answers.append(await ask())
            answers.append(gateway.authorizer.last_reload_error)
            answers.append(gateway.authorizer.policy_version)
        finally:
            await gateway.aclose()
        return answers

    before, after, broken, error, version = run(scenario())
    assert before.status_code == 403
    assert after.status_code == 200
    assert broken.status_code == 200  # the old (widened) policy stays in force
    assert error is not None and error.code == "E311"
    assert version == 2


def test_restart_keeps_budgets_and_the_audit_chain(env: Env) -> None:
    async def calls(count: int) -> list[int]:
        gateway = env.gateway()
        try:
            return [
                (
                    await call(
                        gateway,
                        "POST",
                        "/v2/models/quota/infer",
                        headers=env.key("batch"),
                        json_body=env.body(),
                    )
                ).status_code
                for _ in range(count)
            ]
        finally:
            await gateway.aclose()

    assert run(calls(2)) == [200, 200]
    assert run(calls(2)) == [200, 429]  # quota 3 a day survives the restart
    log = open_audit_log(str(env.folder / "audit.db"), create=False)
    try:
        verification = log.verify()
        assert verification.intact and verification.records == 4
        reasons = [r.event.reason for r in log.tail(10)]
        assert reasons == ["ok", "ok", "ok", "E401"]
    finally:
        log.close()


def test_concurrent_requests_never_break_the_chain(env: Env) -> None:
    async def scenario() -> list[int]:
        gateway = env.gateway()
        try:
            tasks = []
            for index in range(120):
                headers = env.key("outsider") if index % 4 == 0 else env.key("batch")
                tasks.append(
                    call(
                        gateway,
                        "POST",
                        "/v2/models/digits/infer",
                        headers=headers,
                        json_body=env.body(1, index % 30),
                    )
                )
            return [r.status_code for r in await asyncio.gather(*tasks)]
        finally:
            await gateway.aclose()

    statuses = run(scenario())
    assert statuses.count(200) == 90 and statuses.count(403) == 30
    log = open_audit_log(str(env.folder / "audit.db"), create=False)
    try:
        verification = log.verify()
        assert verification.intact and verification.records == 120
        ids = {r.event.request_id for r in log.tail(1000)}
        assert len(ids) == 120
    finally:
        log.close()


def test_audit_store_failure_refuses_requests(env: Env) -> None:
    async def scenario() -> list[Any]:
        gateway = env.gateway()
        try:
            ok = await call(
                gateway,
                "POST",
                "/v2/models/digits/infer",
                headers=env.key("batch"),
                json_body=env.body(),
            )
            assert gateway.audit_log is not None
            await asyncio.to_thread(gateway.audit.flush)
            gateway.audit_log.close()  # the store goes away under the writer
            answers = [ok]
            for _ in range(40):
                answers.append(
                    await call(
                        gateway,
                        "POST",
                        "/v2/models/digits/infer",
                        headers=env.key("batch"),
                        json_body=env.body(),
                    )
                )
                if answers[-1].status_code == 503:
                    break
                await asyncio.sleep(0.05)
            ready = await call(gateway, "GET", "/v2/health/ready")
            return [*answers[:1], answers[-1], ready]
        finally:
            with contextlib.suppress(MlwardenError):  # the writer closes with events lost
                await gateway.aclose()

    ok, refused, ready = run(scenario())
    assert ok.status_code == 200
    assert refused.status_code == 503 and refused.json()["code"] in ("E351", "E352")
    assert ready.status_code == 503
