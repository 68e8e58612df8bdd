"""Listing a model tree and hashing its files in parallel, close to the machine's limit.

sha256 is sequential within a file, so the parallelism is across files: a few
threads, each reading into its own reusable buffer (`os.readv`, which releases the
GIL) and feeding `hashlib.sha256` (which releases the GIL on large updates).
Files are hashed smallest first, so a changed small file is known in
milliseconds even beside multi-gigabyte weights, and a stop event lets a caller
end every worker between two chunks.

Every file is opened with O_NOFOLLOW and checked against the stat taken when the
tree was listed, and again after hashing: a file that is replaced or written while
it is hashed is reported (FileChangedError), never given a digest.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlwarden.errors import FileChangedError, InternalError, UnreadableInputError
from mlwarden.signing._names import SINGLE_FILE_NAME

CHUNK = 4 << 20
_SMALL = 1 << 20
_O_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def default_workers() -> int:
    return max(2, min(32, os.cpu_count() or 2))


@dataclass(frozen=True, slots=True, kw_only=True)
class Listing:
    """The files of a tree (name -> lstat) and what could not be listed as a file."""

    files: dict[str, os.stat_result]
    symlinks: tuple[str, ...] = ()
    special: tuple[str, ...] = ()


def list_tree(root: Path, *, ignore: Iterable[str] = (), skip: Iterable[Path] = ()) -> Listing:
    """Every regular file under root, by POSIX name relative to it. Symlinks are not followed.

    `ignore` holds signed relative names (a name and everything under it is left out);
    `skip` holds absolute paths left out too (the signature files themselves).
    """
    top = os.lstat(root)
    if stat.S_ISLNK(top.st_mode):
        return Listing(files={}, symlinks=(SINGLE_FILE_NAME,))
    if stat.S_ISREG(top.st_mode):
        return Listing(files={SINGLE_FILE_NAME: top})
    if not stat.S_ISDIR(top.st_mode):
        return Listing(files={}, special=(SINGLE_FILE_NAME,))
    ignored = {p.strip("/") for p in ignore if p.strip("/")}
    base = os.path.abspath(root)
    skipped: set[str] = set()
    for item in skip:
        relative = os.path.relpath(os.path.abspath(item), base)
        if not relative.startswith(".."):
            skipped.add(relative.replace(os.sep, "/"))
    files: dict[str, os.stat_result] = {}
    symlinks: list[str] = []
    special: list[str] = []
    stack: list[tuple[str, str]] = [(os.fspath(root), "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError as exc:
            raise UnreadableInputError(f"cannot list {directory}: {exc.strerror}") from None
        for entry in entries:
            name = prefix + entry.name
            # Exact names suffice: an ignored folder is never entered, so nothing under it
            # is reached.
            if name in ignored:
                continue
            if skipped and name in skipped:
                continue
            # Files first: they are most entries. None of these tests follows a link.
            if entry.is_file(follow_symlinks=False):
                files[name] = entry.stat(follow_symlinks=False)
            elif entry.is_dir(follow_symlinks=False):
                stack.append((entry.path, name + "/"))
            elif entry.is_symlink():
                symlinks.append(name)
            else:
                special.append(name)
    return Listing(files=files, symlinks=tuple(sorted(symlinks)), special=tuple(sorted(special)))


def path_of(root: Path, name: str) -> str:
    return os.fspath(root) if name == SINGLE_FILE_NAME else os.path.join(root, name)


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns, a.st_ctime_ns) == (
        b.st_dev,
        b.st_ino,
        b.st_size,
        b.st_mtime_ns,
        b.st_ctime_ns,
    )


class Stopped(Exception):
    """The caller asked every worker to stop (fail fast)."""


def hash_file(path: str, listed: os.stat_result, buffer: bytearray, stop: threading.Event) -> str:
    """The sha256 of the file, provided it is the file listed and it stays unchanged."""
    try:
        fd = os.open(path, _O_FLAGS)
    except FileNotFoundError:
        raise FileChangedError(f"{path} disappeared while it was being verified") from None
    except OSError as exc:
        if exc.errno == getattr(os, "ELOOP", -1):
            raise FileChangedError(f"{path} became a symbolic link while verified") from None
        raise UnreadableInputError(f"cannot read {path}: {exc.strerror}") from None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode) or not same_file(before, listed):
            raise FileChangedError(f"{path} changed between listing and hashing")
        hasher = hashlib.sha256()
        total = 0
        if before.st_size >= CHUNK and hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        view = memoryview(buffer)
        while True:
            if stop.is_set():
                raise Stopped
            count = os.readv(fd, [buffer])
            if count == 0:
                break
            hasher.update(view[:count])
            total += count
        after = os.fstat(fd)
        if total != before.st_size or not same_file(after, before):
            raise FileChangedError(f"{path} changed while it was being hashed")
        return hasher.hexdigest()
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True, kw_only=True)
class HashJob:
    name: str
    path: str
    listed: os.stat_result


HashDone = Callable[[HashJob, "str | Exception"], bool]


def hash_many(jobs: Sequence[HashJob], on_done: HashDone, *, workers: int | None = None) -> bool:
    """Hash the jobs smallest first on a few threads; `on_done` returns False to stop all.

    `on_done` receives the digest, or the FileChangedError / UnreadableInputError of that
    file; it is called under a lock, so it may update shared state. Returns True when every
    job was reported, False when `on_done` stopped the run. Anything else a worker meets is
    re-raised here as an InternalError: a file is never silently left unchecked.
    """
    ordered = sorted(jobs, key=lambda j: j.listed.st_size)
    if not ordered:
        return True
    count = min(workers or default_workers(), len(ordered))
    stop = threading.Event()
    lock = threading.Lock()
    position = [0]
    reported = [0]
    crashed: list[BaseException] = []

    def take() -> HashJob | None:
        with lock:
            if stop.is_set() or position[0] >= len(ordered):
                return None
            job = ordered[position[0]]
            position[0] += 1
            return job

    def work() -> None:
        buffer = bytearray(CHUNK)
        try:
            while (job := take()) is not None:
                result: str | Exception
                try:
                    result = hash_file(job.path, job.listed, buffer, stop)
                except Stopped:
                    return
                except (FileChangedError, UnreadableInputError) as exc:
                    result = exc
                with lock:
                    if stop.is_set():
                        return
                    reported[0] += 1
                    if not on_done(job, result):
                        stop.set()
        except BaseException as exc:  # re-raised below, in the caller's thread
            crashed.append(exc)
            stop.set()

    if count == 1 or (ordered[-1].listed.st_size < _SMALL and len(ordered) < 64):
        work()
    else:
        threads = [threading.Thread(target=work, daemon=True) for _ in range(count - 1)]
        for thread in threads:
            thread.start()
        work()
        for thread in threads:
            thread.join()
    if crashed:
        raise InternalError(f"hashing failed: {crashed[0]!r}") from crashed[0]
    if reported[0] == len(ordered):
        return True
    if not stop.is_set():
        raise InternalError("hashing ended with files unchecked")
    return False
