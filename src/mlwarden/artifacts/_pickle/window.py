"""A bounded, chunked view of a seekable stream, for reading opcodes one by one.

The analyzer reads pickles of any size without slurping them: bytes come in
chunks, large arguments (tensor bytes, long strings) are skipped by seeking and
remembered only by offset. The window re-seeks before every read, so a nested
analysis may use the same stream in between.
"""

from __future__ import annotations

from typing import BinaryIO

CHUNK = 1 << 20
MAX_LINE = 1 << 20
"""Longest text argument kept in memory; longer string lines are skipped (`text`)."""


class EndOfData(Exception):
    """The stream or the analysis bound ended inside an opcode."""

    def __init__(self, offset: int, *, bound: bool) -> None:
        super().__init__(offset)
        self.offset = offset
        self.bound = bound
        """True when the analysis bound, not the stream, cut the opcode."""


class Window:
    """Bytes of `stream` between `start` and `stop`, read forward in chunks."""

    __slots__ = ("_eof", "_next", "_stream", "bound_is_limit", "buf", "pos", "start", "stop")

    def __init__(self, stream: BinaryIO, start: int, stop: int, *, bound_is_limit: bool) -> None:
        self._stream = stream
        self.buf = b""
        self._next = start
        self._eof = False
        self.pos = 0
        self.start = start
        self.stop = stop
        self.bound_is_limit = bound_is_limit

    @property
    def offset(self) -> int:
        """Absolute stream offset of the next unread byte."""
        return self._next - len(self.buf) + self.pos

    @property
    def base(self) -> int:
        """Absolute stream offset of buf[0]."""
        return self._next - len(self.buf)

    def fill(self, need: int) -> bool:
        """Make `need` bytes available from pos (keeping what is buffered); False at the end."""
        return len(self.buf) - self.pos >= need or self._fill(need)

    def _fill(self, need: int) -> bool:
        """Make `need` bytes available from pos; False at the end of data."""
        keep = self.buf[self.pos :]
        while len(keep) < need and not self._eof and self._next < self.stop:
            self._stream.seek(self._next)
            chunk = self._stream.read(min(max(CHUNK, need - len(keep)), self.stop - self._next))
            if not chunk:
                self._eof = True
                break
            self._next += len(chunk)
            keep += chunk
        self.buf = keep
        self.pos = 0
        return len(keep) >= need

    def _end(self) -> EndOfData:
        at_bound = self._next >= self.stop and self.bound_is_limit
        return EndOfData(self.offset, bound=at_bound)

    def at_end(self) -> bool:
        return self.pos >= len(self.buf) and not self._fill(1)

    def byte(self) -> int:
        if self.pos >= len(self.buf) and not self._fill(1):
            raise self._end()
        value = self.buf[self.pos]
        self.pos += 1
        return value

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.buf) and not self._fill(size):
            raise self._end()
        data = self.buf[self.pos : self.pos + size]
        self.pos += size
        return data

    def skip(self, size: int) -> None:
        """Move past `size` bytes without reading them (if they are not buffered)."""
        buffered = len(self.buf) - self.pos
        if size <= buffered:
            self.pos += size
            return
        target = self.offset + size
        self._stream.seek(0, 2)
        end_of_stream = self._stream.tell()
        if target > end_of_stream and end_of_stream < self.stop:
            # The stream itself ends first: a truncated pickle, whatever the bound.
            self.seek(end_of_stream)
            self._eof = True
            raise EndOfData(end_of_stream, bound=False)
        if target > self.stop:
            self.seek(self.stop)
            raise self._end()
        self.seek(target)

    def seek(self, offset: int) -> None:
        """Continue reading at an absolute offset (after a nested analysis moved on)."""
        self.buf = b""
        self.pos = 0
        self._next = offset
        self._eof = False

    def line(self) -> bytes:
        """One text argument, without its newline."""
        searched = 0
        while True:
            end = self.buf.find(b"\n", self.pos + searched)
            if end >= 0:
                data = self.buf[self.pos : end]
                self.pos = end + 1
                return data
            searched = len(self.buf) - self.pos
            if searched > MAX_LINE:
                raise ValueError("text argument longer than 1 MiB")
            if not self._fill(searched + 1):
                raise self._end()

    def text(self) -> bytes | tuple[int, int]:
        """A string line: its bytes, or (offset, length) when longer than MAX_LINE.

        Protocol 0 writes whole arrays as one string line; those are skipped in
        chunks rather than held in memory.
        """
        start = self.offset
        try:
            return self.line()
        except ValueError:
            pass
        self.pos = len(self.buf)
        while True:
            if not self._fill(1):
                raise self._end()
            end = self.buf.find(b"\n", self.pos)
            if end >= 0:
                self.pos = end + 1
                return start, self.base + end - start
            self.pos = len(self.buf)
