"""joblib files: joblib's own unpickler, restricted, over the verified bytes.

joblib writes numpy arrays as a `NumpyArrayWrapper` in the pickle followed by
the raw array bytes, and reads them back from the same file handle while
unpickling. Here that handle is a BytesIO over the verified buffer (decompressed
in memory first for compressed files, with a bounded output), `find_class`
consults the allowlist, memory mapping is off, and the pre-0.10 companion-file
format is refused, so no byte from outside the verified buffer is ever read.
"""

from __future__ import annotations

import bz2
import io
import lzma
import math
import pickle
import zlib
from typing import Any

from mlwarden.errors import LimitExceededError, MissingExtraError, UnsupportedLoadError
from mlwarden.loading._pickle_restricted import (
    RefusedGlobalError,
    check_global,
    malformed,
    refused,
)

CHUNK = 1024 * 1024

# joblib's compressor prefixes (joblib/compressor.py). lz4 needs an extra package
# and is refused as unknown content by the scanner's sniffing anyway.
_PREFIXES: tuple[tuple[str, bytes], ...] = (
    ("gzip", b"\x1f\x8b"),
    ("bz2", b"BZh"),
    ("xz", b"\xfd7zXZ"),
    ("lzma", b"]\x00\x00"),
    ("zlib", b"x"),
)
# joblib < 0.10 wrote "ZF" + a zlib stream, with arrays in companion files.
ZFILE_PREFIX = b"ZF"


def compression_of(data: bytes) -> str | None:
    """The joblib compressor that wrote `data`, or None for an uncompressed file."""
    if data.startswith(ZFILE_PREFIX):
        return "zfile"
    for name, prefix in _PREFIXES:
        if data.startswith(prefix):
            return name
    return None


def decompress(data: bytes, name: str, location: str, max_bytes: int) -> bytes:
    """Inflate in memory, producing at most `max_bytes` (a bomb stops early)."""
    if name == "zfile":
        raise UnsupportedLoadError(
            f"{location}: written by joblib < 0.10, whose arrays live in companion files; "
            "load reads only the verified file"
        )
    out = bytearray()

    def take(chunk: bytes) -> None:
        out.extend(chunk)
        if len(out) > max_bytes:
            raise LimitExceededError(
                f"{location}: decompresses to more than {max_bytes} bytes", rule_id="ARCH003"
            )

    try:
        if name in ("gzip", "zlib"):
            wbits = 16 + zlib.MAX_WBITS if name == "gzip" else zlib.MAX_WBITS
            inflater = zlib.decompressobj(wbits=wbits)
            pending = data
            while True:
                chunk = inflater.decompress(pending, CHUNK)
                take(chunk)
                pending = inflater.unconsumed_tail
                if inflater.eof or (not pending and not chunk):
                    break
            complete, trailing = inflater.eof, inflater.unused_data
        else:
            engine: bz2.BZ2Decompressor | lzma.LZMADecompressor = (
                bz2.BZ2Decompressor() if name == "bz2" else lzma.LZMADecompressor()
            )
            pending = data
            while not engine.eof:
                chunk = engine.decompress(pending, CHUNK)
                pending = b""
                take(chunk)
                if not chunk and engine.needs_input:
                    break
            complete, trailing = engine.eof, engine.unused_data
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
        raise malformed(location, f"the {name} stream", exc) from None
    if not complete:
        raise malformed(location, f"the {name} stream", EOFError("truncated"))
    if trailing:
        raise malformed(location, f"the {name} stream", ValueError("data after the stream"))
    return bytes(out)


def load_joblib(data: bytes, location: str, max_bytes: int) -> Any:
    """Load a joblib file (plain or compressed) from verified bytes."""
    try:
        from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler
        from joblib.numpy_pickle_compat import NDArrayWrapper
    except ImportError:
        raise MissingExtraError("joblib", "sklearn") from None

    compressor = compression_of(data)
    raw = data if compressor is None else decompress(data, compressor, location, max_bytes)
    stream = io.BytesIO(raw)

    class _Restricted(NumpyUnpickler):  # type: ignore[misc]
        """NumpyUnpickler with the allowlist, no mmap, no companion files, sized arrays."""

        dispatch = NumpyUnpickler.dispatch.copy()

        def find_class(self, module: str, name: str) -> Any:
            check_global(module, name)
            return super().find_class(module, name)

        def persistent_load(self, pid: Any) -> Any:
            raise RefusedGlobalError("persistent_load", "persistent ids are not supported")

        def load_build(self) -> None:
            pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]
            top = self.stack[-1]
            if isinstance(top, NDArrayWrapper):
                raise RefusedGlobalError(type(top).__qualname__, "it reads companion files")
            if isinstance(top, NumpyArrayWrapper):
                _check_wrapper(top, remaining=len(raw) - stream.tell())
                self.stack.pop()
                if top.dtype.hasobject:
                    self.stack.append(self._nested_pickle())
                else:
                    self.stack.append(top.read(self, self.ensure_native_byte_order))

        def _nested_pickle(self) -> Any:
            # An object array is stored as a pickle nested in the stream. joblib before 1.6
            # reads it with a plain pickle.load (any global at all): read it here instead,
            # through the same allowlist, whatever joblib version is installed.
            outer = self

            class _Nested(pickle._Unpickler):
                def find_class(self, module: str, name: str) -> Any:
                    return outer.find_class(module, name)

                def persistent_load(self, pid: Any) -> Any:
                    return outer.persistent_load(pid)

            return _Nested(stream).load()

        dispatch[pickle.BUILD[0]] = load_build

    unpickler = _Restricted("", stream, ensure_native_byte_order=True, mmap_mode=None)
    try:
        return unpickler.load()
    except RefusedGlobalError as exc:
        raise refused(location, exc) from None
    except Exception as exc:  # allowlisted constructors raise anything on bad state
        raise malformed(location, "the joblib pickle", exc) from None


def _check_wrapper(wrapper: Any, *, remaining: int) -> None:
    """Refuse an array header that claims more bytes than the buffer still holds.

    joblib allocates the whole array before reading it, so a forged shape would
    otherwise ask for terabytes before the short read is noticed.
    """
    import numpy as np

    shape, dtype = getattr(wrapper, "shape", None), getattr(wrapper, "dtype", None)
    if not isinstance(dtype, np.dtype) or not isinstance(shape, tuple):
        raise ValueError("array wrapper without a dtype and shape")
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError(f"array wrapper with an invalid shape {shape!r}")
    if getattr(wrapper, "allow_mmap", False) not in (True, False):
        raise ValueError("array wrapper with an invalid allow_mmap")
    if not dtype.hasobject and math.prod(shape) * dtype.itemsize > remaining:
        raise ValueError(
            f"array of shape {shape} and dtype {dtype} needs more bytes than the file holds"
        )
