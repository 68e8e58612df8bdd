"""The assessment part of `make demo`: attack the demo model bare, then behind the gateway.

`run_assess_demo` attacks the verified demo model directly (a local, white-box target
that reveals scores), then serves it behind the mlwarden gateway (API keys, Cedar
policy, budgets, audit log and output minimization to the top label) on 127.0.0.1 and
runs the same attacks through HTTP as the analyst would. It writes the side-by-side
HTML and JSON reports into the demo folder and returns what it measured as data; the
CLI prints it. Nothing here prints.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlwarden.assess._config import (
    AssessBudget,
    AssessConfig,
    AttackSettings,
    ExtractionThreshold,
    Thresholds,
)

HOST = "127.0.0.1"
_POLICY = """\
// The analysts of the model's tenant may call it and read its metadata; nothing else.
@id("tenant-analysts-infer")
permit (principal, action == Mlwarden::Action::"infer", resource)
when { principal.roles.contains("analyst") && principal.tenant == resource.tenant };

@id("tenant-analysts-read")
permit (principal, action == Mlwarden::Action::"read_metadata", resource)
when { principal.roles.contains("analyst") && principal.tenant == resource.tenant };
"""

DEMO_CONFIG = AssessConfig(
    # The demo's attacker holds 225 records: extraction is judged within what it can query.
    thresholds=Thresholds(extraction_fidelity=ExtractionThreshold(queries=200, max=0.8)),
    budget=AssessBudget(queries=5000, rate=5000.0, burst=64),
    attacks=AttackSettings(
        evasion_samples=60,
        black_box_samples=10,
        black_box_steps=20,
        membership_samples=150,
        shadows=4,
        extraction_budgets=(50, 100, 200),
        extraction_strategies=("random",),
        inversion_classes=10,
    ),
)
"""Efforts sized for a demo of seconds; thresholds at their defaults."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AssessDemoResult:
    """What the assessment demo did. `problems` is empty when everything behaved."""

    lines: tuple[str, ...]
    problems: tuple[str, ...]
    html: Path | None
    json: Path | None
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.problems


def run_assess_demo(
    folder: Path, *, model: Path, bundle: Path, public_key: Path, startup_timeout: float = 30.0
) -> AssessDemoResult:
    """Attack `model` (verified against `bundle` and `public_key`) bare and behind the
    gateway; write `folder/assess-report.html` and `folder/assess-report.json`."""
    import yaml

    from mlwarden.assess._adapters import local_target
    from mlwarden.assess._compare import (
        available_attacks,
        compare,
        connect_remote,
        load_data,
        run_assessment,
    )
    from mlwarden.assess._remote import Credentials
    from mlwarden.assess.report import assessment_report, render_html, render_json
    from mlwarden.gateway import Gateway, make_server
    from mlwarden.gateway.demo import write_gateway_config
    from mlwarden.policy import load_policy

    started = time.perf_counter()
    folder = folder.resolve()
    problems: list[str] = []
    lines: list[str] = []
    data_file = folder / "assess-data.npz"
    _write_digits_data(data_file)
    data = load_data(data_file)
    attacks = available_attacks()
    config = DEMO_CONFIG

    bare_target = local_target(
        model,
        public_key=public_key,
        signature=bundle,
        value_range=data.value_range,
        input_shape=tuple(data.members_x.shape[1:]),
    )
    bare = run_assessment(bare_target, data, config=config, attacks=attacks, label="bare")

    served = folder / "assess-gateway"
    gateway_config = write_gateway_config(served, model=model, bundle=bundle, public_key=public_key)
    (served / "policies" / "models.cedar").write_text(_POLICY)
    document: dict[str, Any] = yaml.safe_load(gateway_config.path.read_text())
    document["budgets"]["defaults"] = {"rate": 10000, "burst": 10000, "quota": 1000000}
    gateway_config.path.write_text(yaml.safe_dump(document, sort_keys=False))
    app = Gateway.from_policy(load_policy(gateway_config.path))
    port = _free_port()
    server = make_server(app, host=HOST, port=port, base_dir=served)
    thread = threading.Thread(target=server.run, name="assess-demo-gateway", daemon=True)
    thread.start()
    defended = None
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not server.started:
            problems.append(f"the gateway did not start within {startup_timeout:.0f} s")
        else:
            credentials = Credentials(api_key=gateway_config.analyst_key)
            with connect_remote(
                f"http://{HOST}:{port}/v2/models/digits",
                model=None,
                data=data,
                config=config,
                credentials=credentials,
            ) as remote:
                defended = run_assessment(
                    remote, data, config=config, attacks=attacks, label="defended"
                )
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        if thread.is_alive():
            problems.append("the gateway did not stop within 20 s")

    html_path: Path | None = None
    json_path: Path | None = None
    assessments = [bare] if defended is None else [bare, defended]
    removed = () if defended is None else compare(bare, defended, config)
    report = assessment_report(assessments, config.thresholds)
    gated = [r for r in report.results if r.path.startswith(assessments[-1].target + "#")]
    verdict = "fail" if any(r.findings for r in gated) else "pass"
    html_path = folder / "assess-report.html"
    html_path.write_text(
        render_html(assessments, report, config.thresholds, verdict=verdict, removed=removed)
    )
    json_path = folder / "assess-report.json"
    json_path.write_text(render_json(assessments, report, removed=removed))

    for assessment in assessments:
        lines.append(
            f"{assessment.label}: {assessment.target} reveals {assessment.output}, "
            f"{assessment.queries} queries, {assessment.seconds:.1f} s"
        )
        for outcome in assessment.outcomes:
            if outcome.status == "failed":
                problems.append(
                    f"{assessment.label} {outcome.attack}: {outcome.code} {outcome.reason}"
                )
    for row in removed:
        if row.bare is not None and row.defended is None:
            lines.append(
                f"{row.figure}: bare {_f(row.bare)}; the attack does not apply behind the "
                "gateway (no scores or gradients)"
            )
            continue
        share = "n/a" if row.removed is None else f"{100 * row.removed:.0f}%"
        lines.append(
            f"{row.figure}: bare {_f(row.bare)}, behind the gateway {_f(row.defended)} "
            f"(advantage removed: {share})"
        )
    lines.append(f"report: {html_path}")
    if defended is not None:
        if bare.output != "scores" or defended.output != "labels":
            problems.append(
                f"expected scores bare and labels behind the gateway, got {bare.output} and "
                f"{defended.output}"
            )
        auc = next((r for r in removed if r.figure == "membership AUC"), None)
        if auc is not None and auc.defended is not None and abs(auc.defended - 0.5) > 0.1:
            problems.append(f"membership AUC behind the gateway is {auc.defended:.2f}, not ~0.5")
    return AssessDemoResult(
        lines=tuple(lines),
        problems=tuple(problems),
        html=html_path,
        json=json_path,
        seconds=time.perf_counter() - started,
    )


def _write_digits_data(path: Path) -> None:
    """The demo's split: members are the training digits, non-members the held-out ones."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from mlwarden.assess._compare import save_data

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    save_data(path, members=(x_train, y_train), nonmembers=(x_test, y_test))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
