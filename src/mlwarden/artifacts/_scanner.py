"""Walk the inputs, scan each file, and account for every one of them.

Every input ends in exactly one ObjectResult: checked (with its findings),
skipped (with a reason), or failed (with an error code). Symbolic links are
followed only when their target stays inside the scanned root, so a Hugging
Face cache snapshot (links into ../../blobs) scans correctly while a link to
/etc/passwd planted in a model folder is a finding, not a read.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from mlwarden import __version__
from mlwarden.artifacts._context import Limits, ScanContext
from mlwarden.artifacts._dispatch import check_claimed_format, scan_stream
from mlwarden.errors import PathNotFoundError, UnreadableInputError
from mlwarden.report import ObjectResult, Report, Status


def scan(
    paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    limits: Limits | None = None,
) -> Report:
    """Scan model files and folders for unsafe serialization.

    Returns a Report with one result per file found. Never raises for what the
    files contain: malformed or hostile content is a finding.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    limits = limits or Limits()
    started = time.monotonic()
    results: list[ObjectResult] = []
    for raw in paths:
        path = Path(raw)
        results.extend(_scan_input(path, limits))
    return Report(
        kind="scan",
        tool_version=__version__,
        results=tuple(results),
        duration_s=time.monotonic() - started,
    )


def _scan_input(path: Path, limits: Limits) -> Iterator[ObjectResult]:
    if not os.path.lexists(path):
        error = PathNotFoundError(f"{path}: no such file or folder")
        yield ObjectResult(
            path=str(path), status=Status.FAILED, code=error.code, reason=error.message
        )
        return
    if path.is_dir():
        root = _symlink_root(path.resolve())
        yield from _walk(path, root, limits)
        return
    # A file named on the command line is the user's explicit choice: follow it.
    yield _scan_file(path, path.resolve().parent, limits)


def _symlink_root(folder: Path) -> Path:
    """The folder links may point into: the scanned folder, widened to the whole
    repository folder for a Hugging Face cache snapshot (models--x--y/snapshots/REV),
    whose files are links to ../../blobs."""
    parts = folder.parts
    for index in range(len(parts) - 1, 0, -1):
        if parts[index] == "snapshots" and parts[index - 1].startswith(
            ("models--", "datasets--", "spaces--")
        ):
            return Path(*parts[:index])
    return folder


def _walk(top: Path, root: Path, limits: Limits) -> Iterator[ObjectResult]:
    seen_dirs: set[Path] = set()
    stack = [top]
    while stack:
        folder = stack.pop()
        real = folder.resolve()
        if real in seen_dirs:
            continue
        seen_dirs.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            error = UnreadableInputError(f"{folder}: cannot list folder: {exc.strerror}")
            yield ObjectResult(
                path=str(folder), status=Status.FAILED, code=error.code, reason=error.message
            )
            continue
        subfolders: list[Path] = []
        for entry in entries:
            entry_path = Path(entry.path)
            if entry.is_symlink():
                target = entry_path.resolve()
                if not _inside(target, root):
                    yield _escaping_link(entry_path, target)
                    continue
                if target.is_dir():
                    subfolders.append(entry_path)
                    continue
            if entry.is_dir():
                subfolders.append(entry_path)
            else:
                yield _scan_file(entry_path, root, limits)
        stack.extend(reversed(subfolders))


def _inside(target: Path, root: Path) -> bool:
    try:
        target.relative_to(root)
    except ValueError:
        return False
    return True


def _escaping_link(link: Path, target: Path) -> ObjectResult:
    ctx = ScanContext(limits=Limits(), root=link.parent)
    ctx.add(
        "SCAN002",
        f"symbolic link to {target} leaves the scanned folder; not followed",
        str(link),
        target=target,
    )
    return ObjectResult(
        path=str(link), status=Status.CHECKED, format="symlink", findings=tuple(ctx.findings)
    )


def _scan_file(path: Path, root: Path, limits: Limits) -> ObjectResult:
    location = str(path)
    started = time.monotonic()
    try:
        info = path.stat()
    except OSError as exc:
        return _failed(location, f"cannot stat: {exc.strerror}")
    if not stat.S_ISREG(info.st_mode):
        return ObjectResult(
            path=location,
            status=Status.SKIPPED,
            reason="not a regular file (device, pipe or socket)",
        )
    try:
        stream = path.open("rb")
    except OSError as exc:
        return _failed(location, f"cannot open: {exc.strerror}")
    ctx = ScanContext(limits=limits, root=root)
    with stream:
        try:
            fmt = scan_stream(stream, location, ctx, 0)
        except OSError as exc:
            return _failed(location, f"read error: {exc.strerror or exc}")
    check_claimed_format(location, fmt, ctx)
    duration = time.monotonic() - started
    if fmt is None and not ctx.findings:
        return ObjectResult(
            path=location,
            status=Status.SKIPPED,
            size=info.st_size,
            reason="not a model format",
            duration_s=duration,
        )
    return ObjectResult(
        path=location,
        status=Status.CHECKED,
        format=_format_name(ctx.formats, fmt),
        findings=tuple(ctx.findings),
        size=info.st_size,
        duration_s=duration,
    )


def _format_name(formats: list[str], top: str | None) -> str:
    """`gzip>tar>zip>pickle` style: the chain of formats found, outermost first."""
    if not formats:
        return top or "unknown"
    chain: list[str] = []
    for name in formats:
        if name not in chain:
            chain.append(name)
        if len(chain) == 4:
            break
    return ">".join(chain)


def _failed(location: str, message: str) -> ObjectResult:
    error = UnreadableInputError(f"{location}: {message}")
    return ObjectResult(path=location, status=Status.FAILED, code=error.code, reason=error.message)
