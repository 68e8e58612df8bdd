"""The runtime-detector part of `make demo`: an extraction attack on the demo gateway is
detected, the attacker quarantined, and the audit log shows it.

`run_detect_demo` fits the detectors' reference on the demo model's training split,
signs it with the demo key, writes an `mlwarden.yaml` in `folder/detect` (the demo
gateway's configuration plus a `detectors:` section and a third caller, `scraper`),
starts `mlwarden serve` on a free port of 127.0.0.1, sends an analyst's ordinary calls
and the scraper's uniform-noise queries (a model-extraction attacker's), stops the
server and reads the audit log. It returns data; nothing here prints.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlwarden.gateway.demo import (
    HOST,
    MODEL_NAME,
    TENANT,
    _Client,
    _free_port,
    _last_line,
    _stop,
    _wait_ready,
    write_gateway_config,
)

ATTACK_BATCH = 32
MAX_ATTACK_BATCHES = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectDemoResult:
    """What the detector demo showed. `problems` is empty when everything behaved."""

    lines: tuple[str, ...]
    problems: tuple[str, ...]
    queries_to_quarantine: int | None
    config: Path


def run_detect_demo(
    folder: Path,
    *,
    model: Path,
    bundle: Path,
    public_key: Path,
    private_key: Path,
    startup_timeout: float = 60.0,
) -> DetectDemoResult:
    """Serve the demo model with detectors on, attack it, and check the response."""
    folder = (folder / "detect").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    problems: list[str] = []
    reference = _fit_reference(folder, model, bundle, public_key, private_key)
    lines.append(f"reference fitted on the training split, signed: {reference.name}.sig")
    config, scraper_key, analyst_key = _write_config(folder, model, bundle, public_key, reference)
    audit_url = f"sqlite:///{folder / 'audit.sqlite3'}"
    records_before = _audit_count(audit_url)
    port = _free_port()
    command = (
        sys.executable, "-m", "mlwarden", "serve", "--config", str(config),
        "--host", HOST, "--port", str(port),
    )  # fmt: skip
    log = folder / "gateway.log"
    quarantined_after: int | None = None
    with log.open("wb") as out:
        server = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        started = _wait_ready(server, port, startup_timeout)
        if started is not None:
            problems.append(started + _last_line(log))
        else:
            client = _Client(port)
            try:
                quarantined_after = _exercise(client, scraper_key, analyst_key, lines, problems)
            except (OSError, http.client.HTTPException) as exc:
                problems.append(f"the gateway stopped answering: {exc!r}"[:300])
            finally:
                client.close()
    finally:
        exit_problem = _stop(server)
    if exit_problem is not None and not problems:
        problems.append(exit_problem)
    _check_audit(audit_url, records_before, lines, problems)
    return DetectDemoResult(
        lines=tuple(lines),
        problems=tuple(problems),
        queries_to_quarantine=quarantined_after,
        config=config,
    )


def _fit_reference(
    folder: Path, model: Path, bundle: Path, public_key: Path, private_key: Path
) -> Path:
    """`mlwarden detect fit` in-process, then `mlwarden sign` with the demo key."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from mlwarden.detect import fit_reference
    from mlwarden.loading import load
    from mlwarden.signing import sign

    estimator = load(model, public_key=public_key, signature=bundle)
    digits = load_digits()
    x_train, _, y_train, _ = train_test_split(
        digits.data, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )

    def predict_proba(rows: Any) -> Any:
        return np.asarray(estimator.predict_proba(rows), dtype=np.float64)

    reference = fit_reference(
        x_train,
        y_train.astype(np.int64),
        predict_proba=predict_proba,
        image_shape=(8, 8),
        value_range=(0.0, 16.0),
    )
    path = folder / "digits.ref"
    reference.save(path)
    sign(path, key=private_key, signature=folder / "digits.ref.sig")
    return path


def _write_config(
    folder: Path, model: Path, bundle: Path, public_key: Path, reference: Path
) -> tuple[Path, str, str]:
    import yaml

    from mlwarden.identity import generate_api_key

    demo = write_gateway_config(folder, model=model, bundle=bundle, public_key=public_key)
    document = yaml.safe_load(demo.path.read_text())
    scraper_key, scraper_sha = generate_api_key()
    document["identity"]["api_keys"]["keys"].append(
        {"principal": "scraper", "sha256": scraper_sha, "roles": ["analyst"], "tenant": TENANT}
    )
    # Generous rates: here the detectors, not the budgets, are what stops the scraper.
    document["budgets"]["defaults"] = {"rate": 1000, "burst": 1000, "quota": 100000}
    document["detectors"] = {
        "flush_seconds": 0.2,
        "models": {
            MODEL_NAME: {
                "reference": reference.name,
                "signature": [reference.name + ".sig"],
                "signals": ["extraction", "probing"],
                "responses": {"extraction": "quarantine", "probing": "alert"},
            }
        },
    }
    demo.path.write_text(yaml.safe_dump(document, sort_keys=False))
    return demo.path, scraper_key, demo.analyst_key


def _exercise(
    client: _Client, scraper: str, analyst: str, lines: list[str], problems: list[str]
) -> int | None:
    """The analyst's ordinary calls and the scraper's attack; queries to quarantine."""
    import numpy as np

    from mlwarden.demo import digits_test_split

    x_test, _ = digits_test_split()
    rng = np.random.default_rng(7)
    benign = client.infer("analyst", [list(map(float, r)) for r in x_test[:4]], analyst, 200)
    if benign.call.status != 200:
        problems.append(f"the analyst was refused before the attack: HTTP {benign.call.status}")
    sent = 0
    quarantined_after: int | None = None
    for _ in range(MAX_ATTACK_BATCHES):
        rows = rng.uniform(0.0, 16.0, size=(ATTACK_BATCH, 64)).tolist()
        answer = client.infer("scraper", rows, scraper, 200)
        if answer.call.status == 403 and answer.call.code == "E320":
            quarantined_after = sent
            break
        if answer.call.status != 200:
            problems.append(f"scraper: unexpected HTTP {answer.call.status} {answer.call.code}")
            break
        sent += ATTACK_BATCH
        time.sleep(0.05)  # the detectors score just behind the answers
    if quarantined_after is None:
        problems.append(f"the scraper was not quarantined after {sent} queries")
    else:
        lines.append(
            f"scraper: {quarantined_after} uniform-noise queries answered, then "
            "403 E320 (quarantined until `mlwarden admin release`)"
        )
    again = client.infer("scraper", [list(map(float, x_test[0]))], scraper, 403)
    if again.call.status != 403:
        problems.append(f"the quarantined scraper got HTTP {again.call.status}")
    after = client.infer("analyst", [list(map(float, r)) for r in x_test[4:8]], analyst, 200)
    if after.call.status != 200:
        problems.append(f"the analyst was refused after the attack: HTTP {after.call.status}")
    else:
        lines.append("analyst: still answered (the quarantine is per identity and model)")
    return quarantined_after


def _audit_count(audit_url: str) -> int:
    from mlwarden.audit import open_audit_log

    if not Path(audit_url.removeprefix("sqlite:///")).exists():
        return 0
    log = open_audit_log(audit_url, create=False)
    try:
        return log.head().seq
    finally:
        log.close()


def _check_audit(audit_url: str, before: int, lines: list[str], problems: list[str]) -> None:
    from mlwarden.audit import open_audit_log

    if not Path(audit_url.removeprefix("sqlite:///")).exists():
        problems.append("no audit log was written")
        return
    log = open_audit_log(audit_url, create=False)
    try:
        verification = log.verify()
        head = log.head().seq
        events = [r.event for r in log.tail(max(1, head - before)) if r.seq > before]
    finally:
        log.close()
    if not verification.intact:
        problems.append("the audit chain does not verify")
    detections = [
        e
        for e in events
        if e.kind == "detect"
        and e.identity == "api_key:scraper"
        and e.detail is not None
        and e.detail.get("response") == "quarantine"
    ]
    refusals = [e for e in events if e.reason == "E320" and e.identity == "api_key:scraper"]
    if not detections:
        problems.append("the audit log has no detector event for the scraper")
    else:
        detail = detections[0].detail or {}
        lines.append(
            f"audit: kind=detect decision=deny reason={detections[0].reason} "
            f"identity=api_key:scraper queries={detail.get('queries')}; "
            f"{len(refusals)} refusal(s) with reason E320; chain intact: {verification.intact}"
        )
    if not refusals:
        problems.append("the audit log has no E320 refusal for the scraper")
