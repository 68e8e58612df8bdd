"""Verification: signatures and trust first, then the file set, then the bytes.

The order is what makes a refusal fast. The manifest is only used once a trusted
signature vouches for it; names in it are checked before any is opened; the file
set and sizes are compared from stat calls alone; then files are hashed smallest
first. Every difference is reported (missing, extra, changed, renamed, resized),
unless the caller asks to stop at the first one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mlwarden import __version__
from mlwarden.errors import (
    InternalError,
    MlwardenError,
    PathNotFoundError,
    UnreadableInputError,
    all_error_classes,
)
from mlwarden.policy import TrustPolicy
from mlwarden.report import Finding, ObjectResult, Report, Status
from mlwarden.rules.signing import ERROR_CODES
from mlwarden.signing import _keys
from mlwarden.signing._bundle import BundleError, read_bundle
from mlwarden.signing._cache import VerifyCache
from mlwarden.signing._hashing import HashJob, hash_many, list_tree, path_of
from mlwarden.signing._names import SINGLE_FILE_NAME, all_plain, collision_key, unsafe_reason
from mlwarden.signing._sign import default_signature_path, model_name_of
from mlwarden.signing._statement import Manifest, StatementError, parse_statement
from mlwarden.signing._trust import Accepted, TrustContext

FORMAT = "model-signing v1.0"


@dataclass(frozen=True, slots=True, kw_only=True)
class Verification:
    """The outcome of `verify`: a verdict, the report behind it, and what was verified."""

    verified: bool
    report: Report
    digests: Mapping[str, str] = field(default_factory=dict)
    signers: tuple[str, ...] = ()


class _Refused(Exception):
    """Internal: stop at the first finding (fail fast)."""


class _Findings:
    def __init__(self, fail_fast: bool) -> None:
        self.items: list[Finding] = []
        self.fail_fast = fail_fast

    def add(self, rule_id: str, message: str, location: str, **detail: str) -> None:
        self.items.append(
            Finding(
                rule_id=rule_id,
                message=message,
                location=location,
                detail={"code": ERROR_CODES[rule_id], **detail},
            )
        )
        if self.fail_fast:
            raise _Refused


def _policy_for(
    public_key: Path | None, trust: TrustPolicy | None
) -> tuple[TrustPolicy, list[Path]]:
    if trust is not None:
        return trust, [public_key] if public_key is not None else []
    if public_key is not None:
        key = _keys.load_public_key(public_key)
        return TrustPolicy.single_key(_keys.fingerprint(key), public_key), []
    return TrustPolicy(), []


def _trusted_manifest(
    findings: _Findings,
    signatures: Sequence[Path],
    *,
    root_name: str,
    location: str,
    single_file: bool | None,
    public_key: Path | None,
    trust: TrustPolicy | None,
    now: datetime | None,
) -> tuple[Manifest | None, tuple[str, ...]]:
    """Check every signature, trust, agreement, the model name and the resource names."""
    policy, extra_keys = _policy_for(public_key, trust)
    context = TrustContext(policy, extra_keys=extra_keys)
    moment = now if now is not None else datetime.now(UTC)
    accepted: list[tuple[Accepted, Manifest]] = []
    for signature in signatures:
        where = str(signature)
        try:
            bundle = read_bundle(signature)
        except BundleError as exc:
            findings.add("SIG011", str(exc), where)
            continue
        outcome = context.check(bundle, moment)
        if not isinstance(outcome, Accepted):
            findings.add(outcome.rule_id, outcome.message, where)
            continue
        try:
            manifest = parse_statement(bundle.payload)
        except StatementError as exc:
            findings.add("SIG011", f"signed statement is malformed: {exc}", where)
            continue
        accepted.append((outcome, manifest))
    if findings.items:
        return None, ()
    distinct = _distinct_signers(a for a, _ in accepted)
    if len(distinct) < policy.threshold:
        findings.add(
            "SIG010",
            f"{len(distinct)} distinct trusted signer(s), the policy requires {policy.threshold}",
            location,
            signers=", ".join(sorted(distinct)),
        )
        return None, ()
    manifest = accepted[0][1]
    for acc, other in accepted[1:]:
        if (other.model_name, other.ignore_paths, other.digests()) != (
            manifest.model_name,
            manifest.ignore_paths,
            manifest.digests(),
        ):
            findings.add(
                "SIG017",
                f"the signature of {acc.signer.name!r} signs a different manifest",
                location,
            )
            return None, ()
    if manifest.model_name != root_name:
        findings.add(
            "SIG016",
            f"the signature is for the model {manifest.model_name!r}, not {root_name!r}",
            location,
            signed_name=manifest.model_name,
        )
    _check_names(findings, manifest, single_file, str(signatures[0]))
    if findings.items:
        return None, ()
    identities = tuple(dict.fromkeys(a.identity for a, _ in accepted))
    return manifest, identities


def _distinct_signers(accepted: Iterable[Accepted]) -> set[str]:
    """The signers that count towards k of n: each policy entry once, and each key once.

    One key can match two policy entries (a fingerprint entry and a certificate for the same
    key, or two certificates with different subjects): whoever holds it is still one signer.
    """
    signers: set[str] = set()
    keys: set[str] = set()
    for item in accepted:
        if item.signer.name not in signers and item.key not in keys:
            signers.add(item.signer.name)
            keys.add(item.key)
    return signers


def _check_names(
    findings: _Findings, manifest: Manifest, single_file: bool | None, where: str
) -> None:
    for ignored in manifest.ignore_paths:
        # A signed ignore path hides what lies under it from verification (model_signing
        # honours it too), so it must be a plain relative name: "/x" or "../x" would mean
        # one thing here and another to other verifiers.
        reason = (
            "it names the model root" if ignored == SINGLE_FILE_NAME else unsafe_reason(ignored)
        )
        if reason is not None:
            findings.add("SIG012", f"ignore path {ignored!r}: {reason}", where)
    names = [r.name for r in manifest.resources]
    # Fast path for tens of thousands of names: all plain and all distinct is the usual case.
    keys = (
        {n.lower() for n in names}
        if "".join(names).isascii()
        else {collision_key(n) for n in names}
    )
    if len(keys) == len(names) and (all_plain(names) or not any(map(unsafe_reason, names))):
        _check_shape(findings, names, single_file, where)
        return
    seen: dict[str, str] = {}
    for name in names:
        reason = unsafe_reason(name)
        if reason is not None:
            findings.add("SIG012", f"resource {name!r}: {reason}", where)
            continue
        key = collision_key(name)
        first = seen.get(key)
        if first is None:
            seen[key] = name
        else:
            message = (
                f"resource {name!r} is listed twice"
                if first == name
                else f"resources {first!r} and {name!r} are one file on case-insensitive "
                "or normalising file systems"
            )
            findings.add("SIG013", message, where)
    _check_shape(findings, names, single_file, where)


def _check_shape(
    findings: _Findings, names: list[str], single_file: bool | None, where: str
) -> None:
    if not names:
        findings.add("SIG011", "the manifest lists no resource", where)
    elif single_file is not None and (SINGLE_FILE_NAME in names) != single_file:
        what = "a single file" if SINGLE_FILE_NAME in names else "a folder"
        findings.add("SIG011", f"the signature is for {what}", where)


def verify_tree(
    path: Path,
    *,
    signatures: Sequence[Path],
    public_key: Path | None,
    trust: TrustPolicy | None,
    cache: Path | None,
    fail_fast: bool,
    now: datetime | None,
    model_name: str | None,
    workers: int | None = None,
) -> Verification:
    started = time.perf_counter()
    root = Path(path)
    if not os.path.lexists(root):
        raise PathNotFoundError(f"{path} does not exist")
    sig_paths = list(signatures) or [default_signature_path(path)]
    findings = _Findings(fail_fast)
    manifest: Manifest | None = None
    identities: tuple[str, ...] = ()
    size = 0
    try:
        manifest, identities = _trusted_manifest(
            findings,
            sig_paths,
            root_name=model_name or model_name_of(path),
            location=str(path),
            single_file=None if os.path.islink(root) else os.path.isfile(root),
            public_key=public_key,
            trust=trust,
            now=now,
        )
        if manifest is not None:
            size = _compare_files(findings, root, manifest, sig_paths, cache, workers)
    except _Refused:
        pass
    verified = manifest is not None and not findings.items
    result = ObjectResult(
        path=str(path),
        status=Status.CHECKED,
        format=FORMAT,
        findings=tuple(findings.items),
        size=size,
        duration_s=time.perf_counter() - started,
    )
    report = Report(
        kind="verify",
        tool_version=__version__,
        results=(result,),
        duration_s=time.perf_counter() - started,
    )
    if not verified or manifest is None:
        return Verification(verified=False, report=report)
    return Verification(
        verified=True, report=report, digests=manifest.digests(), signers=identities
    )


def _compare_files(
    findings: _Findings,
    root: Path,
    manifest: Manifest,
    signatures: Sequence[Path],
    cache_path: Path | None,
    workers: int | None,
) -> int:
    listing = list_tree(root, ignore=manifest.ignore_paths, skip=signatures)
    for name in listing.symlinks:
        where = path_of(root, name)
        findings.add("SIG014", "is a symbolic link", where)
    for name in listing.special:
        where = path_of(root, name)
        findings.add("SIG014", "is not a regular file", where)
    expected = {r.name: r for r in manifest.resources}
    missing = [n for n in expected if n not in listing.files]
    extra = sorted(n for n in listing.files if n not in expected)
    jobs: list[HashJob] = []
    cache = VerifyCache(cache_path, tree=root) if cache_path is not None else None
    hit = cache.matches if cache is not None and cache.usable else None
    for name, info in listing.files.items():
        resource = expected.get(name)
        if resource is None:
            continue
        if hit is not None and hit(name, info, resource.digest):
            continue
        where = path_of(root, name)
        if resource.size is not None and info.st_size != resource.size:
            findings.add(
                "SIG005",
                f"has {info.st_size} bytes, {resource.size} were signed",
                where,
                expected_size=str(resource.size),
                actual_size=str(info.st_size),
            )
            continue
        jobs.append(HashJob(name=name, path=where, listed=info))
    # Extra files are hashed only to recognise renames, and only when a signed file is gone.
    wanted_sizes = {expected[n].size for n in missing}
    rename_jobs = (
        [
            HashJob(name=n, path=path_of(root, n), listed=listing.files[n])
            for n in extra
            if None in wanted_sizes or listing.files[n].st_size in wanted_sizes
        ]
        if missing
        else []
    )
    if findings.fail_fast and missing:
        where = path_of(root, missing[0])
        findings.add("SIG001", "is signed but missing", where)
    if findings.fail_fast and extra:
        where = path_of(root, extra[0])
        findings.add("SIG002", "is not covered by the signature", where)
    extra_digests: dict[str, str] = {}
    unreadable: list[MlwardenError] = []

    def done(job: HashJob, result: str | Exception) -> bool:
        if isinstance(result, UnreadableInputError):
            unreadable.append(result)
            return False
        resource = expected.get(job.name)
        try:
            if isinstance(result, Exception):
                if cache is not None:
                    cache.forget(job.name)
                findings.add("SIG015", str(result), job.path)
            elif resource is None:
                extra_digests[job.name] = result
            elif result != resource.digest:
                if cache is not None:
                    cache.forget(job.name)
                findings.add(
                    "SIG003",
                    "does not have the signed sha256",
                    job.path,
                    expected=resource.digest,
                    actual=result,
                )
            elif cache is not None:
                cache.record(job.name, job.listed, result)
        except _Refused:
            return False
        return True

    complete = hash_many(jobs + rename_jobs, done, workers=workers)
    if cache is not None:
        cache.save()
    if unreadable:
        raise unreadable[0]
    if findings.fail_fast and findings.items:
        raise _Refused
    if not complete:
        raise InternalError("verification stopped before every file was checked")
    renamed: set[str] = set()
    for name in sorted(missing):
        digest = expected[name].digest
        match = next(
            (e for e in extra if e not in renamed and extra_digests.get(e) == digest), None
        )
        if match is not None:
            renamed.add(match)
            findings.add(
                "SIG004",
                f"is the signed file {name!r}, renamed",
                path_of(root, match),
                signed_name=name,
            )
        else:
            where = path_of(root, name)
            findings.add("SIG001", "is signed but missing", where)
    for name in extra:
        if name not in renamed:
            where = path_of(root, name)
            findings.add("SIG002", "is not covered by the signature", where)
    return sum(info.st_size for info in listing.files.values())


def error_for(finding: Finding) -> MlwardenError:
    """The exception the API raises for a refusal it cannot return as a report."""
    code = finding.detail.get("code", "E200")
    for cls in all_error_classes():
        if cls.code == code:
            return cls(finding.message)
    return MlwardenError(finding.message)


def manifest_only(
    signatures: Sequence[Path],
    *,
    root_name: str,
    public_key: Path | None,
    trust: TrustPolicy | None,
    now: datetime | None,
) -> Mapping[str, str]:
    findings = _Findings(fail_fast=True)
    try:
        manifest, _ = _trusted_manifest(
            findings,
            signatures,
            root_name=root_name,
            location=root_name,
            single_file=None,
            public_key=public_key,
            trust=trust,
            now=now,
        )
    except _Refused:
        manifest = None
    if manifest is None or findings.items:
        raise error_for(findings.items[0])
    return manifest.digests()
