"""`mlwarden assess` through a real gateway: the closed loop, and what a remote target costs.

One run, the same attacks and settings against the demo model (digits, scaler + logistic
regression) three ways: the verified file itself (white-box, scores), the gateway with
output `probabilities` (scores over HTTP) and the gateway with its default output, the top
label. The gateway is `mlwarden serve` in its own process on 127.0.0.1 (API keys, Cedar,
SQLite budgets and audit log). Also: rows a second through `RemoteTarget` (batches of 32,
no client rate limit), median of 5 runs.

    .venv/bin/python bench/assess_endpoints.py
"""

from __future__ import annotations

import http.client
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mlwarden.assess._adapters import local_target
from mlwarden.assess._compare import available_attacks, load_data, run_assessment, save_data
from mlwarden.assess._config import (
    AssessBudget,
    AssessConfig,
    AttackSettings,
    ExtractionThreshold,
    Thresholds,
)
from mlwarden.assess._remote import Credentials, RemoteTarget
from mlwarden.assess.report import (
    EvasionSummary,
    ExtractionSummary,
    InversionSummary,
    MembershipSummary,
)
from mlwarden.demo import make_demo_key, make_demo_models, make_release
from mlwarden.gateway.demo import write_gateway_config
from mlwarden.gateway.demo_assess import _POLICY
from mlwarden.signing import sign

WORK = Path(__file__).resolve().parent / ".work" / "assess-endpoints"
CONFIG = AssessConfig(
    thresholds=Thresholds(extraction_fidelity=ExtractionThreshold(queries=200, max=0.8)),
    budget=AssessBudget(queries=20000, rate=100000.0, burst=64),
    attacks=AttackSettings(
        evasion_samples=100,
        black_box_samples=20,
        black_box_steps=40,
        membership_samples=200,
        shadows=8,
        extraction_budgets=(50, 100, 200),
        extraction_strategies=("random",),
    ),
)


def main() -> None:
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    files = make_demo_models(WORK)
    private, public = make_demo_key(WORK)
    release = make_release(WORK, files)
    bundle = sign(release, key=private)
    model = release / "digits-model.joblib"
    data_file = WORK / "data.npz"
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    xtr, xte, ytr, yte = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    save_data(data_file, members=(xtr, ytr), nonmembers=(xte, yte))
    data = load_data(data_file)

    served = WORK / "gateway"
    config = write_gateway_config(served, model=model, bundle=bundle, public_key=public)
    (served / "policies" / "models.cedar").write_text(_POLICY)
    document: dict[str, Any] = yaml.safe_load(config.path.read_text())
    document["budgets"]["defaults"] = {"rate": 100000, "burst": 100000, "quota": 10000000}
    scores = dict(document["gateway"]["models"][0])
    scores["name"] = "digits-scores"
    scores["output"] = {"mode": "probabilities", "decimals": 6}
    document["gateway"]["models"].append(scores)
    config.path.write_text(yaml.safe_dump(document, sort_keys=False))
    port = 18000 + int(time.time()) % 1000
    log = (served / "gateway.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlwarden", "serve", "--config", str(config.path),
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait(port)
        credentials = Credentials(api_key=config.analyst_key)
        attacks = available_attacks()
        rows: list[tuple[str, Any]] = []
        bare = local_target(
            model, public_key=public, signature=bundle, value_range=data.value_range,
            input_shape=(64,),
        )  # fmt: skip
        rows.append(
            ("file (white-box)", run_assessment(bare, data, config=CONFIG, attacks=attacks))
        )
        for name, label in (
            ("digits-scores", "gateway, probabilities"),
            ("digits", "gateway, label"),
        ):
            with _remote(port, name, data, credentials) as target:
                rows.append((label, run_assessment(target, data, config=CONFIG, attacks=attacks)))
        rates = []
        x = np.tile(data.nonmembers_x, (5, 1))[:2000]
        for _ in range(5):
            with _remote(port, "digits", data, credentials) as target:
                started = time.perf_counter()
                target.predict_labels(x)
                rates.append(len(x) / (time.perf_counter() - started))
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
    print(
        f"attacks: {', '.join(attacks)}; date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    head = ("target", "reveals", "robust acc @0.1", "member AUC", "TPR@1%FPR",
            "fidelity @200", "inversion", "queries", "seconds")  # fmt: skip
    print(" | ".join(head))
    for label, a in rows:
        ev, mem, ext = a.summary("evasion"), a.summary("membership"), a.summary("extraction")
        cells = [
            label,
            a.output,
            f"{ev.at(0.1):.3f} ({ev.method})" if isinstance(ev, EvasionSummary) else "n/a",
            f"{mem.auc:.3f}" if isinstance(mem, MembershipSummary) else "n/a",
            f"{mem.tpr_at_1pct_fpr:.3f}" if isinstance(mem, MembershipSummary) else "n/a",
            _fid(ext),
            _inv(a),
            str(a.queries),
            f"{a.seconds:.1f}",
        ]
        print(" | ".join(cells))
        for o in a.outcomes:
            if o.status == "failed":
                print(f"   {o.attack} failed: {o.code} {o.reason}")
    median = statistics.median(rates)
    print(
        f"RemoteTarget through the gateway: median {median:.0f} rows/s "
        f"(min {min(rates):.0f}, max {max(rates):.0f}; 2000 rows, batches of 32, 5 runs)"
    )


def _inv(assessment: Any) -> str:
    outcome = assessment.outcome("inversion")
    summary = outcome.summary if outcome is not None else None
    if isinstance(summary, InversionSummary):
        return f"{summary.recognised}/{summary.classes} recognised"
    return "not run" if outcome is None else f"{outcome.status} ({outcome.code})"


def _fid(summary: Any) -> str:
    if not isinstance(summary, ExtractionSummary):
        return "n/a"
    value = summary.best_fidelity_within(200)
    return "n/a" if value is None else f"{value:.3f}"


def _remote(port: int, name: str, data: Any, credentials: Credentials) -> RemoteTarget:
    return RemoteTarget.connect(
        f"http://127.0.0.1:{port}/v2/models/{name}", model=None, n_classes=data.n_classes,
        probe=data.reference_x[0], value_range=data.value_range, credentials=credentials,
        max_queries=CONFIG.budget.queries, rate=CONFIG.budget.rate, burst=CONFIG.budget.burst,
    )  # fmt: skip


def _wait(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            conn.request("GET", "/v2/health/ready")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    raise SystemExit("the gateway did not start")


if __name__ == "__main__":
    main()
