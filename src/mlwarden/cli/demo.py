"""`mlwarden demo`: walk the system on its embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import click

from mlwarden.cli._common import EXIT_CLEAN, EXIT_FINDINGS
from mlwarden.demo import DemoFile
from mlwarden.report import Gate, Verdict
from mlwarden.report.render import OutputFormat, render

_STEPS = [0]


def _step(title: str, *, numbered: bool = True) -> None:
    if numbered:
        _STEPS[0] += 1
        title = f"{_STEPS[0]}. {title}"
    click.secho(f"\n== {title}", bold=True)


class _Part(Protocol):
    """What each area's demo function returns: lines to print and what misbehaved."""

    @property
    def lines(self) -> tuple[str, ...]: ...

    @property
    def problems(self) -> tuple[str, ...]: ...


def _show(part: _Part, name: str) -> str | None:
    for line in part.lines:
        click.echo(f"  {line}")
    for problem in part.problems:
        click.echo(f"  !! {problem}")
    return f"{name}: " + "; ".join(part.problems) if part.problems else None


@click.command("demo")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".demo"),
    show_default=True,
    help="Folder for the demo's files.",
)
def demo_command(folder: Path) -> int:
    """Walk the system on its embedded defaults: make real model files (and one
    harmless poisoned one), scan them, sign and verify the release, show a tampered
    copy refused, load the verified model, serve it behind the gateway (allowed and
    denied calls, the audit log verified), and screen poisoned training data."""
    from mlwarden.artifacts import scan
    from mlwarden.demo import make_demo_models

    _fresh_folder(folder)
    _step("Train a scikit-learn model on the digits data and save it as people do")
    files = make_demo_models(folder)
    for item in files:
        tag = "poisoned (harmless payload: `true`)" if item.malicious else "benign"
        click.echo(f"  {item.path}  [{tag}] {item.what}")

    _step(f"mlwarden scan {folder}")
    report = scan([folder])
    click.echo(render(report, OutputFormat.TABLE, width=110), nl=False)

    wrong_supply = _supply_chain_steps(folder, files)
    wrong_gateway = _gateway_steps(
        folder,
        files,
        folder / "keys" / "demo-signer.pem",
        folder / "keys" / "demo-signer.pub",
        folder / "release.sig",
    )
    wrong_runtime = _runtime_steps(
        folder, folder / "keys" / "demo-signer.pem", folder / "keys" / "demo-signer.pub"
    )
    wrong_data = _data_steps(folder)
    wrong_updates = _update_steps(folder)

    expected = {str(f.path): f.malicious for f in files}
    wrong = [
        r.path
        for r in report.results
        if r.path in expected and (r.verdict is not Verdict.CLEAN) != expected[r.path]
    ]
    status = EXIT_FINDINGS if Gate.parse("suspicious").fails(report) else EXIT_CLEAN
    _step("Result", numbered=False)
    problems = [
        f"unexpected scan verdicts for: {', '.join(wrong)}" if wrong else "",
        f"supply-chain step: {wrong_supply}" if wrong_supply else "",
        f"gateway step: {wrong_gateway}" if wrong_gateway else "",
        f"runtime step: {wrong_runtime}" if wrong_runtime else "",
        f"data step: {wrong_data}" if wrong_data else "",
        f"update step: {wrong_updates}" if wrong_updates else "",
    ]
    problems = [p for p in problems if p]
    if problems:
        for problem in problems:
            click.echo(f"  did not behave as expected: {problem}")
        return 1
    click.echo(
        f"  `mlwarden scan {folder}` exits {status} (the poisoned pickle is caught, the real "
        "models are clean); the release is signed, verified and loaded; a tampered copy and "
        "a signed-but-poisoned pickle are refused; the gateway served, refused and audited "
        "every call; the extraction attacker was detected and quarantined; the assessment "
        "measured what the gateway removes; the screen found the poisoned rows; the "
        "backdoored update was refused although it verifies; the federated attackers were "
        "quarantined."
    )
    return 0


_MARKER = ".mlwarden-demo"


def _fresh_folder(folder: Path) -> None:
    """Start from an empty demo folder; only ever delete a folder the demo made."""
    import shutil

    if folder.exists():
        if not (folder / _MARKER).exists():
            raise click.UsageError(f"{folder} exists and is not a demo folder; choose --dir")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / _MARKER).write_text("made by mlwarden demo\n")


def _supply_chain_steps(folder: Path, files: list[DemoFile]) -> str | None:
    """Sign, verify, tamper, refuse, and load only what verified. None when all behaved."""
    import shutil

    from mlwarden import load
    from mlwarden.demo import digits_test_split, make_demo_key, make_release
    from mlwarden.errors import MlwardenError
    from mlwarden.signing import sign, verify

    _step("Sign the release with an EC P-256 key (OpenSSF model-signing v1.0 bundle)")
    private, public = make_demo_key(folder / "keys")
    release = make_release(folder, files)
    bundle = sign(release, key=private)
    click.echo(f"  mlwarden sign {release} --key {private}  ->  {bundle}")

    _step(f"mlwarden verify {release} --key {public}")
    good = verify(release, signatures=[bundle], public_key=public)
    click.echo(f"  verified: {good.verified}; {len(good.digests)} files match the signed manifest")

    _step("Tamper with one byte of a copy, and verify again")
    tampered = folder / "tampered" / release.name
    if tampered.parent.exists():
        shutil.rmtree(tampered.parent)
    shutil.copytree(release, tampered)
    victim = tampered / "digits-model.joblib"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    bad = verify(tampered, signatures=[bundle], public_key=public)
    click.echo(f"  verified: {bad.verified}")
    for finding in bad.report.findings:
        click.echo(f"  {finding.rule_id} {finding.location}: {finding.message}")

    _step("mlwarden.load: only the verified, scanned-clean bytes are deserialized")
    model = load(release / "digits-model.joblib", public_key=public, signature=bundle)
    x_test, y_test = digits_test_split()
    accuracy = float((model.predict(x_test) == y_test).mean())
    click.echo(f"  loaded {type(model).__name__}; accuracy on held-out digits: {accuracy:.3f}")
    poisoned = next(f.path for f in files if f.malicious)
    poisoned_bundle = sign(poisoned, key=private)
    refused: MlwardenError | None = None
    try:
        load(poisoned, public_key=public, signature=poisoned_bundle)
    except MlwardenError as exc:
        refused = exc
    click.echo(
        f"  the poisoned pickle, signed by the same trusted key, is refused: "
        f"{refused.one_line() if refused else 'NOT REFUSED'}"
    )
    if not good.verified or bad.verified or refused is None or accuracy < 0.9:
        return "sign/verify/load"
    return None


def _gateway_steps(
    folder: Path, files: list[DemoFile], private_key: Path, public_key: Path, bundle: Path
) -> str | None:
    """Serve the verified release behind the gateway, call it as an analyst and as an
    intruder, stop it and verify the audit chain. None when all behaved (or when this
    installation has no gateway: the step is skipped)."""
    from mlwarden.gateway.demo import BURST, gateway_available, run_gateway_demo

    del files, private_key  # the release and its bundle are what gets served
    if not gateway_available():
        click.echo("\n(the gateway steps need `pip install 'mlwarden[gateway]'`: skipped)")
        return None
    release = folder / "release" / "digits-model.joblib"
    config = folder / "mlwarden.yaml"
    _step(f"mlwarden serve --config {config}: the verified release behind every control")
    result = run_gateway_demo(folder, model=release, bundle=bundle, public_key=public_key)
    click.echo(
        "  trust: the demo key's fingerprint; identity: API keys for `analyst` and `intruder`\n"
        "  (only their sha256 in the file); Cedar: analysts of the model's tenant may infer;\n"
        f"  budgets: 1 call/s, burst {BURST} (SQLite); audit: {folder / 'audit.sqlite3'};\n"
        f"  output: the top-1 label only. Listening on {result.url}"
    )
    _step("Calls: allowed and denied")
    for call in result.calls:
        mark = "ok " if call.as_expected else "!! "
        code = f" {call.code}" if call.code else ""
        text = call.message
        if call.status == 200 and result.truth:
            text += f"  (true digits: {' '.join(result.truth)})"
        if call.retry_after:
            text += f"  (Retry-After: {call.retry_after} s)"
        click.echo(f"  {mark}{call.status}{code}  {call.title}: {text}")
    if result.burst:
        counts = ", ".join(f"{n} x {status}" for status, n in sorted(result.burst.items()))
        click.echo(f"      the burst: {counts}")

    db = f"sqlite:///{folder / 'audit.sqlite3'}"
    _step(f"Stop the server; mlwarden audit verify --db {db}")
    if result.audit_records:
        from mlwarden.cli import main

        main(["audit", "verify", "--db", db])
        click.echo(
            f"  {result.audit_records} events for {result.audited_calls} calls: every decision, "
            "allowed or denied, is in the hash-chained log"
        )
    for problem in result.problems:
        click.echo(f"  !! {problem}")
    if result.problems:
        click.echo(f"  (server log: {result.log})")
        return "gateway: " + "; ".join(result.problems)
    return None


def _data_steps(folder: Path) -> str | None:
    """Poison a copy of the digits data and show the screen finding the poisoned rows."""
    import warnings

    import numpy as np
    from sklearn.datasets import load_digits

    from mlwarden.data import screen_rows, write_clean
    from mlwarden.demo import make_demo_key

    _step("Poison a copy of the digits data: 10% labels flipped, a 2x2 trigger planted")
    digits = load_digits()
    x, y = digits.data.copy(), digits.target.copy()
    rng = np.random.default_rng(0)
    flips = rng.choice(len(y), len(y) // 10, replace=False)
    y[flips] = (y[flips] + rng.integers(1, 10, len(flips))) % 10
    ones = np.flatnonzero(digits.target == 1)
    planted = rng.choice(np.setdiff1d(ones, flips), len(ones) // 10, replace=False)
    x[np.ix_(planted, np.array([54, 55, 62, 63]))] = 16.0  # a bright 2x2 patch, bottom right
    y[planted] = 7
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    path = data / "digits-poisoned.npz"
    np.savez(path, X=x, y=y)
    click.echo(
        f"  {path}: {len(y)} rows; {len(flips)} labels flipped, {len(planted)} rows of '1' "
        "carry the trigger and are relabelled '7'"
    )

    _step(f"mlwarden data screen {path} --clean {data / 'clean'} --key ...")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # library deprecation chatter, not the demo's story
        result = screen_rows(path, checks=("labels", "backdoors"))
    poisoned = {int(r) for r in flips} | {int(r) for r in planted}
    found = set(result.suspects)
    hits = len(found & poisoned)
    precision = hits / len(found) if found else 0.0
    recall = hits / len(poisoned)
    for rule in ("DATA001", "DATA002"):
        rows = [f for f in result.report.findings if f.rule_id == rule]
        if rows:
            click.echo(
                f"  {rule} {rows[0].rule.title}: {len(rows)} rows, e.g. row "
                f"{rows[0].detail['row']}: {rows[0].message}"
            )
    backdoor = {r for r, rules in result.suspects.items() if "DATA002" in rules}
    click.echo(
        f"  suspect rows: {len(found)}; precision {precision:.3f}, recall {recall:.3f} "
        f"against the {len(poisoned)} poisoned rows; trigger rows found: "
        f"{len(backdoor & set(planted.tolist()))} of {len(planted)}"
    )
    private, _ = make_demo_key(data / "keys")
    kept, bundle = write_clean(
        path, result.kind, result.suspects, data / "clean", key=private, dataset=result.dataset
    )
    click.echo(f"  {kept} rows kept in {data / 'clean'}, signed: {bundle}")
    from mlwarden.data.demo import in_range_demo

    _step("A trigger that stays inside the normal range of the features, found without the target")
    in_range = _show(in_range_demo(data), "in-range trigger")
    if precision < 0.8 or recall < 0.8:
        return "data screen"
    return in_range


def _runtime_steps(folder: Path, private_key: Path, public_key: Path) -> str | None:
    """Detect and quarantine an extraction attacker; assess the model bare and behind the
    gateway. None when all behaved (or when this installation has no gateway)."""
    from mlwarden.gateway.demo import gateway_available

    if not gateway_available():
        click.echo("\n(the detector and assessment steps need the `gateway` extra: skipped)")
        return None
    from mlwarden.gateway.demo_assess import run_assess_demo
    from mlwarden.gateway.demo_detect import run_detect_demo

    release = folder / "release" / "digits-model.joblib"
    bundle = folder / "release.sig"
    _step(
        "Runtime detectors: fit and sign a reference (mlwarden detect fit), serve with "
        "detectors on, and let a scraper send uniform-noise queries"
    )
    problems = [
        _show(
            run_detect_demo(
                folder,
                model=release,
                bundle=bundle,
                public_key=public_key,
                private_key=private_key,
            ),
            "detectors",
        )
    ]
    _step(
        "mlwarden assess: evasion, membership, extraction and inversion against the model "
        "file, then against the gateway (label-only answers)"
    )
    problems.append(
        _show(
            run_assess_demo(folder, model=release, bundle=bundle, public_key=public_key),
            "assessment",
        )
    )
    found = [p for p in problems if p]
    return "; ".join(found) if found else None


def _update_steps(folder: Path) -> str | None:
    """Gate a backdoored update by its behaviour; aggregate a federated round robustly."""
    from mlwarden.fl import fl_demo
    from mlwarden.update.demo import run_update_demo

    _step(
        "mlwarden update check: a backdoored update, signed by the trusted key, verifies "
        "and is still refused; an honest fine-tune passes"
    )
    problems = [_show(run_update_demo(folder), "update check")]
    _step("mlwarden.fl: federated rounds with two attacking clients, screened and aggregated")
    problems.append(_show(fl_demo(folder / "fl"), "federated"))
    found = [p for p in problems if p]
    return "; ".join(found) if found else None
