"""Seekable views of part of a stream, shared by the container readers and the pickle reader."""

from __future__ import annotations

import io
from typing import BinaryIO


class MemberWindow(io.RawIOBase):
    """A read-only view of `length` bytes at `offset` of a seekable stream.

    Lets a stored (uncompressed) archive member be scanned in place, so a large
    stored tensor file is never copied. Every read seeks the shared stream first,
    so interleaved use with the container's own reads is safe.
    """

    def __init__(self, base: BinaryIO, offset: int, length: int) -> None:
        super().__init__()
        self._base = base
        self._offset = offset
        self._length = length
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            target = self._length + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if target < 0:
            raise ValueError("negative seek position")
        self._pos = target
        return target

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self._length - self._pos)
        if want <= 0:
            return 0
        self._base.seek(self._offset + self._pos)
        data = self._base.read(want)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    @classmethod
    def open(cls, base: BinaryIO, offset: int, length: int) -> BinaryIO:
        """The window wrapped as a buffered binary file, the type readers expect."""
        return io.BufferedReader(cls(base, offset, length), buffer_size=64 * 1024)
