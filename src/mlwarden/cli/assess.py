"""`mlwarden assess`: attack a model file or a live endpoint and gate on the measured risk.

Exit status: 0 every threshold holds, 1 a threshold is crossed, 2 bad input or an attack
that could not finish (nothing was decided). With `--compare BARE DEFENDED` the gate
applies to the defended endpoint; the bare one is measured to show what the defenses
removed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlwarden.cli._common import EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE, FORMAT_OPTION, OUTPUT_OPTION
from mlwarden.errors import OutputError, UsageError

if TYPE_CHECKING:
    from mlwarden.assess._compare import AssessData, Removed
    from mlwarden.assess._config import AssessConfig
    from mlwarden.assess._remote import Credentials, RemoteTarget
    from mlwarden.assess._target import Target
    from mlwarden.assess.report import Assessment
    from mlwarden.policy import PolicyFile
    from mlwarden.report import Report


@click.command("assess")
@click.argument("model_file", required=False, type=click.Path(path_type=Path))
@click.option(
    "--data",
    "data_file",
    required=True,
    type=click.Path(path_type=Path),
    help="An .npz with members_x/_y, nonmembers_x/_y (and reference_x/_y).",
)
@click.option(
    "--attacks",
    default=None,
    metavar="LIST",
    help="Comma-separated: evasion, membership, extraction, inversion (default: all).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    help="mlwarden.yaml: its `assess` section (thresholds, budget) and `trust`.",
)
@click.option(
    "--key",
    "public_key",
    type=click.Path(path_type=Path),
    default=None,
    help="The signer's public key (PEM) that MODEL_FILE must verify against.",
)
@click.option(
    "--signature",
    "signatures",
    multiple=True,
    type=click.Path(path_type=Path),
    help="MODEL_FILE's signature bundle (default: MODEL_FILE.sig).",
)
@click.option("--url", default=None, help="An Open Inference Protocol v2 endpoint to attack.")
@click.option("--model", "model_name", default=None, help="The model's name at the endpoint.")
@click.option(
    "--compare",
    nargs=2,
    default=None,
    metavar="BARE_URL DEFENDED_URL",
    help="Run the same attacks against two endpoints, side by side.",
)
@click.option(
    "--api-key-env",
    default=None,
    metavar="VAR",
    help="Environment variable holding the endpoint's API key.",
)
@click.option("--api-key-header", default="x-api-key", show_default=True)
@click.option(
    "--token-env",
    default=None,
    metavar="VAR",
    help="Environment variable holding a bearer token for the endpoint.",
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the self-contained HTML report to FILE.",
)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option(
    "--strict",
    is_flag=True,
    help="A requested attack that does not apply to the target fails the run (exit 2) "
    "instead of being skipped.",
)
@FORMAT_OPTION
@OUTPUT_OPTION
def assess_command(
    model_file: Path | None,
    data_file: Path,
    attacks: str | None,
    config_file: Path | None,
    public_key: Path | None,
    signatures: tuple[Path, ...],
    url: str | None,
    model_name: str | None,
    compare: tuple[str, str] | None,
    api_key_env: str | None,
    api_key_header: str,
    token_env: str | None,
    html_file: Path | None,
    seed: int,
    strict: bool,
    fmt: str,
    output: Path | None,
) -> int:
    """Attack a model (a signed file, or a live endpoint) and gate on the measured risk.

    Evasion, membership inference, extraction and inversion; thresholds and the query
    budget come from the `assess` section of mlwarden.yaml.
    """
    from mlwarden.assess._compare import available_attacks, load_data

    chosen = _parse_attacks(attacks, available_attacks())
    modes = sum(x is not None for x in (model_file, url, compare))
    if modes != 1:
        raise UsageError("give exactly one of MODEL_FILE, --url or --compare BARE_URL DEFENDED_URL")
    # Before the attacks run (minutes, queries spent), not after.
    for target_file in (output, html_file):
        if target_file is not None and not target_file.parent.is_dir():
            raise OutputError(f"cannot write {target_file}: no folder {target_file.parent}")
    policy = _load_config(config_file)
    from mlwarden.assess._config import AssessConfig

    config = (policy.assess if policy is not None else None) or AssessConfig()
    data = load_data(data_file)
    assessments: list[Assessment] = []
    removed: Sequence[Removed] = ()
    if model_file is not None:
        target = _local(model_file, data, policy, public_key, signatures)
        assessments.append(_run(target, data, config, chosen, "", seed))
    else:
        credentials = _credentials(api_key_env, token_env, api_key_header)
        urls = [url] if url is not None else list(compare or ())
        labels = [""] if url is not None else ["bare", "defended"]
        for endpoint, label in zip(urls, labels, strict=True):
            with _remote(endpoint, model_name, data, config, credentials) as target:
                assessments.append(_run(target, data, config, chosen, label, seed))
        if compare is not None:
            from mlwarden.assess._compare import compare as compare_assessments

            removed = compare_assessments(assessments[0], assessments[1], config)
    return _finish(assessments, config, removed, fmt, output, html_file, strict)


def _parse_attacks(text: str | None, available: Sequence[str]) -> tuple[str, ...]:
    if text is None:
        return tuple(available)
    names = tuple(dict.fromkeys(a.strip() for a in text.split(",") if a.strip()))
    unknown = [n for n in names if n not in available]
    if not names or unknown:
        raise click.BadParameter(
            f"{', '.join(unknown) or 'nothing'}: choose from {', '.join(available)}",
            param_hint="--attacks",
        )
    return names


def _load_config(path: Path | None) -> PolicyFile | None:
    if path is None:
        return None
    from mlwarden.policy import load_policy

    return load_policy(path)


def _credentials(api_key_env: str | None, token_env: str | None, header: str) -> Credentials:
    from mlwarden.assess._remote import Credentials

    def read(var: str, what: str) -> str:
        value = os.environ.get(var, "").strip()
        if not value:
            raise UsageError(f"environment variable {var} holding the {what} is unset or empty")
        return value

    return Credentials(
        api_key=read(api_key_env, "API key") if api_key_env else None,
        token=read(token_env, "bearer token") if token_env else None,
        api_key_header=header,
    )


def _local(
    model_file: Path,
    data: AssessData,
    policy: PolicyFile | None,
    public_key: Path | None,
    signatures: tuple[Path, ...],
) -> Target:
    from mlwarden.assess._adapters import local_target

    if public_key is None and (policy is None or policy.trust.trusts_nothing):
        raise UsageError(
            "MODEL_FILE is loaded only once its signature verifies: give --key PUB "
            "or --config with a trust section"
        )
    return local_target(
        model_file,
        trust=policy.trust if policy is not None and public_key is None else None,
        public_key=public_key,
        signature=list(signatures) or None,
        value_range=data.value_range,
        input_shape=tuple(data.members_x.shape[1:]),
        max_queries=None,  # a local model's queries cost nothing: the budget is an endpoint's
    )


def _remote(
    url: str, model: str | None, data: AssessData, config: AssessConfig, credentials: Credentials
) -> RemoteTarget:
    from mlwarden.assess._compare import connect_remote

    return connect_remote(url, model=model, data=data, config=config, credentials=credentials)


def _run(
    target: Target,
    data: AssessData,
    config: AssessConfig,
    chosen: Sequence[str],
    label: str,
    seed: int,
) -> Assessment:
    from mlwarden.assess._compare import run_assessment

    return run_assessment(target, data, config=config, attacks=chosen, label=label, seed=seed)


def _finish(
    assessments: list[Assessment],
    config: AssessConfig,
    removed: Sequence[Removed],
    fmt: str,
    output: Path | None,
    html_file: Path | None,
    strict: bool,
) -> int:
    from mlwarden.assess.report import assessment_report, render_html, render_json
    from mlwarden.report.render import OutputFormat, render

    seconds = sum(a.seconds for a in assessments)
    report = assessment_report(assessments, config.thresholds, duration_s=seconds)
    status, errors = _gate(report, assessments[-1], strict)
    verdict = {EXIT_CLEAN: "pass", EXIT_FINDINGS: "fail"}.get(status, "error")
    if html_file is not None:
        page = render_html(assessments, report, config.thresholds, verdict=verdict, removed=removed)
        _write(html_file, page)
    if fmt == OutputFormat.JSON.value:
        text = render_json(assessments, report, removed=removed)
    elif fmt == OutputFormat.SARIF.value:
        text = render(report, OutputFormat.SARIF)
    else:
        text = render(report, OutputFormat.TABLE) + _figures(assessments, removed)
    if output is None:
        click.echo(text, nl=False)
    else:
        _write(output, text)
    for line in errors:
        click.echo(f"mlwarden: error: {line}", err=True)
    return status


def _gate(report: Report, gated: Assessment, strict: bool) -> tuple[int, list[str]]:
    """The exit status from the gated target's results, and the lines that explain a 2.

    A failed attack, or an assessment that measured nothing at all, decides nothing: 2,
    never a pass. With `strict`, a requested attack that did not apply does the same.
    """
    from mlwarden.report import Status

    judged = [r for r in report.results if r.path.startswith(gated.target + "#")]
    errors = [f"{r.code}: {r.path}: {r.reason}" for r in judged if r.status is Status.FAILED]
    if strict:
        errors += [
            f"{o.code}: {gated.target}#{o.attack}: {o.reason} (--strict)"
            for o in gated.outcomes
            if o.status == "not run" and o.code is not None
        ]
    if not errors and not any(r.status is Status.CHECKED for r in judged):
        errors.append(f"E172: {gated.target}: no attack could be measured, nothing was decided")
    if errors:
        return EXIT_USAGE, errors
    return (EXIT_FINDINGS if any(r.findings for r in judged) else EXIT_CLEAN), []


def _figures(assessments: Sequence[Assessment], removed: Sequence[Removed]) -> str:
    from mlwarden.assess.report import (
        EvasionSummary,
        ExtractionSummary,
        InversionSummary,
        MembershipSummary,
    )

    lines = []
    for a in assessments:
        head = f"{a.label or 'target'} {a.target} (reveals {a.output}, {a.queries} queries)"
        lines.append(head)
        for o in a.outcomes:
            s = o.summary
            if isinstance(s, EvasionSummary):
                pairs = ", ".join(
                    f"{e:g}: {r:.2f}" for e, r in zip(s.epsilons, s.robust_accuracy, strict=True)
                )
                lines.append(f"  evasion ({s.method}) robust accuracy by epsilon {pairs}")
            elif isinstance(s, MembershipSummary):
                lines.append(
                    f"  membership ({s.method}) AUC {s.auc:.3f}, TPR@1%FPR {s.tpr_at_1pct_fpr:.3f}"
                )
            elif isinstance(s, ExtractionSummary):
                for c in s.curves:
                    pairs = ", ".join(
                        f"{q}: {f:.2f}" for q, f in zip(c.queries, c.fidelity, strict=True)
                    )
                    lines.append(f"  extraction ({c.strategy}) fidelity by queries {pairs}")
            elif isinstance(s, InversionSummary):
                lines.append(f"  inversion {s.recognised}/{s.classes} classes recognised")
            elif o.status == "failed":
                lines.append(f"  {o.attack}: {o.code}: {o.reason}")
    for r in removed:
        share = "n/a" if r.removed is None else f"{100 * r.removed:.0f}%"
        lines.append(f"defense removed {share} of the advantage: {r.figure}")
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
