"""The optional verification cache: skip re-hashing files that cannot have changed.

An entry is keyed on the file's absolute path and its (device, inode, size,
mtime_ns, ctime_ns), and holds the digest that file had when it was last hashed.
A hit only *skips hashing when everything matches*, including the digest the
signature now expects: the cache never supplies a digest of its own. Writing a
file changes its ctime, and ctime cannot be set from user space, so a tampered
file misses the cache and is hashed again.

Two more guards: entries are not recorded for files whose ctime or mtime is within
two seconds of now (a write in the same timestamp tick would keep the same
ctime: the "racy git" problem), and the cache file itself is untrusted input. A
cache that is malformed is ignored and rewritten; one that is a symlink, is not
owned by the current user, is writable by group or others, or lies inside the
tree being verified is ignored and left alone, since whoever can write it could
vouch for a tampered file.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import time
from pathlib import Path

_VERSION = 1
_RACY_NS = 2_000_000_000
_MAX_CACHE_BYTES = 512 << 20

Entry = tuple[int, int, int, int, int, str]


class VerifyCache:
    def __init__(self, path: Path, *, tree: Path) -> None:
        self.path = path
        self._entries: dict[str, list[object]] = {}
        self._dirty = False
        self._prefix = os.path.abspath(tree) + "\0"
        self.usable = self._load(tree)
        self.hits = 0

    def _load(self, tree: Path) -> bool:
        target = os.path.abspath(self.path)
        root = os.path.abspath(tree)
        if target == root or target.startswith(root.rstrip(os.sep) + os.sep):
            return False
        try:
            fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return self._parent_safe(target)
        except OSError:
            return False
        try:
            info = os.fstat(fd)
            # The folder matters as much as the file: in one others may write (no sticky
            # bit) the file can be swapped for another between two runs.
            if not self._owned_safely(info) or not self._parent_safe(target):
                return False
            with os.fdopen(os.dup(fd), "rb") as handle:
                raw = handle.read(_MAX_CACHE_BYTES + 1)
        finally:
            os.close(fd)
        try:
            data = json.loads(raw)
            if (
                len(raw) <= _MAX_CACHE_BYTES
                and isinstance(data, dict)
                and data.get("version") == _VERSION
                and isinstance(data.get("entries"), dict)
            ):
                self._entries = data["entries"]
            else:
                self._dirty = True
        except (ValueError, UnicodeDecodeError, RecursionError):
            self._dirty = True  # malformed: start afresh, rewrite on save
        return True

    @staticmethod
    def _owned_safely(info: os.stat_result) -> bool:
        getuid = getattr(os, "getuid", None)
        if getuid is not None and info.st_uid != getuid():
            return False
        return stat.S_ISREG(info.st_mode) and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)

    def _parent_safe(self, target: str) -> bool:
        try:
            info = os.stat(os.path.dirname(target) or ".")
        except OSError:
            return False
        # A new cache in a folder others may write could be swapped before the next run.
        sticky = bool(info.st_mode & stat.S_ISVTX)
        return sticky or not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)

    def matches(self, name: str, info: os.stat_result, expected: str) -> bool:
        """True only when the entry agrees on the whole stat key and on the expected digest.

        `name` is the resource name; entries are keyed on the tree's absolute path and it.
        """
        if not self.usable:
            return False
        entry = self._entries.get(self._prefix + name)
        if (
            type(entry) is list
            and len(entry) == 6
            and entry[5] == expected
            and entry[4] == info.st_ctime_ns
            and entry[3] == info.st_mtime_ns
            and entry[2] == info.st_size
            and entry[1] == info.st_ino
            and entry[0] == info.st_dev
        ):
            self.hits += 1
            return True
        return False

    def record(self, name: str, info: os.stat_result, digest: str) -> None:
        if not self.usable:
            return
        now = time.time_ns()
        if now - info.st_ctime_ns < _RACY_NS or now - info.st_mtime_ns < _RACY_NS:
            self.forget(name)
            return
        entry: list[object] = [
            info.st_dev,
            info.st_ino,
            info.st_size,
            info.st_mtime_ns,
            info.st_ctime_ns,
            digest,
        ]
        if self._entries.get(self._prefix + name) != entry:
            self._entries[self._prefix + name] = entry
            self._dirty = True

    def forget(self, name: str) -> None:
        if self._entries.pop(self._prefix + name, None) is not None:
            self._dirty = True

    def save(self) -> None:
        """Write atomically (temporary file, then rename), readable by the owner only."""
        if not self.usable or not self._dirty:
            return
        target = os.path.abspath(self.path)
        body = json.dumps({"version": _VERSION, "entries": self._entries}, separators=(",", ":"))
        fd, temp = tempfile.mkstemp(prefix=".mlwarden-cache-", dir=os.path.dirname(target))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(body)
            os.replace(temp, target)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            return  # a cache that cannot be written only costs time
        self._dirty = False
