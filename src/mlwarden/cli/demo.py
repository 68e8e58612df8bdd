"""`mlwarden demo`: walk the system on its embedded defaults."""

from __future__ import annotations

from pathlib import Path

import click

from mlwarden.cli._common import EXIT_CLEAN, EXIT_FINDINGS
from mlwarden.demo import DemoFile
from mlwarden.report import Gate, Verdict
from mlwarden.report.render import OutputFormat, render


def _step(title: str) -> None:
    click.secho(f"\n== {title}", bold=True)


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
    copy refused, and load the verified model."""
    from mlwarden.artifacts import scan
    from mlwarden.demo import make_demo_models

    _fresh_folder(folder)
    _step("1. Train a scikit-learn model on the digits data and save it as people do")
    files = make_demo_models(folder)
    for item in files:
        tag = "poisoned (harmless payload: `true`)" if item.malicious else "benign"
        click.echo(f"  {item.path}  [{tag}] {item.what}")

    _step(f"2. mlwarden scan {folder}")
    report = scan([folder])
    click.echo(render(report, OutputFormat.TABLE, width=110), nl=False)

    wrong_supply = _supply_chain_steps(folder, files)

    expected = {str(f.path): f.malicious for f in files}
    wrong = [
        r.path
        for r in report.results
        if r.path in expected and (r.verdict is not Verdict.CLEAN) != expected[r.path]
    ]
    status = EXIT_FINDINGS if Gate.parse("suspicious").fails(report) else EXIT_CLEAN
    _step("Result")
    click.echo(
        f"  `mlwarden scan {folder}` exits {status}: the poisoned pickle is caught, "
        "the real models are clean."
        if not wrong
        else f"  unexpected verdicts for: {', '.join(wrong)}"
    )
    if wrong_supply:
        click.echo(f"  supply-chain step did not behave as expected: {wrong_supply}")
    return 1 if wrong or wrong_supply else 0


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

    _step("3. Sign the release with an EC P-256 key (OpenSSF model-signing v1.0 bundle)")
    private, public = make_demo_key(folder / "keys")
    release = make_release(folder, files)
    bundle = sign(release, key=private)
    click.echo(f"  mlwarden sign {release} --key {private}  ->  {bundle}")

    _step(f"4. mlwarden verify {release} --key {public}")
    good = verify(release, signatures=[bundle], public_key=public)
    click.echo(f"  verified: {good.verified}; {len(good.digests)} files match the signed manifest")

    _step("5. Tamper with one byte of a copy, and verify again")
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

    _step("6. mlwarden.load: only the verified, scanned-clean bytes are deserialized")
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
