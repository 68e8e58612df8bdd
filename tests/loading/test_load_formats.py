"""The format loaders on their own: real models in, the same predictions out.

These call the private loaders directly with in-memory bytes, the way `load`
does after verification; the end-to-end tests (test_load_verified.py) add the
signature and the scan in front.
"""

from __future__ import annotations

import bz2
import io
import lzma
import os
import pickle
import zlib
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlwarden.errors import LimitExceededError, MalformedInputError, UnsupportedLoadError
from mlwarden.loading._joblib import compression_of, decompress, load_joblib
from mlwarden.loading._pickle_restricted import load_pickle

X, Y = make_classification(n_samples=200, n_features=6, random_state=0)


def _estimators() -> list[object]:
    return [
        LogisticRegression(max_iter=500).fit(X, Y),
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, Y),
        RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y),
    ]


@pytest.mark.parametrize("model", _estimators(), ids=lambda m: type(m).__name__)
def test_restricted_pickle_loads_sklearn_estimators(model: object) -> None:
    data = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    loaded = load_pickle(data, "model.pkl")
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "compress", [0, ("zlib", 3), ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)]
)
def test_joblib_loads_plain_and_compressed(tmp_path: Path, compress: object) -> None:
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path, compress=compress)
    data = path.read_bytes()
    expected = None if compress == 0 else compress[0]  # type: ignore[index]
    assert compression_of(data) == expected
    loaded = load_joblib(data, str(path), max_bytes=1 << 30)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_joblib_numpy_arrays_round_trip() -> None:
    arrays = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "f": np.asfortranarray(np.eye(3))}
    buffer = io.BytesIO()
    joblib.dump(arrays, buffer)
    loaded = load_joblib(buffer.getvalue(), "arrays.joblib", max_bytes=1 << 30)
    for key, value in arrays.items():
        np.testing.assert_array_equal(loaded[key], value)


class _Payload:
    """Pickles as os.system(touch MARKER): the classic code-execution payload."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_restricted_pickle_never_runs_a_payload(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = pickle.dumps({"model": _Payload(marker)})
    with pytest.raises(UnsupportedLoadError, match=r"posix\.system|os\.system") as info:
        load_pickle(data, "evil.pkl")
    assert info.value.code == "E113"
    assert not marker.exists()


def test_joblib_never_runs_a_payload(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    joblib.dump({"w": np.ones(3), "x": _Payload(marker)}, buffer)
    with pytest.raises(UnsupportedLoadError):
        load_joblib(buffer.getvalue(), "evil.joblib", max_bytes=1 << 30)
    assert not marker.exists()


def test_unknown_global_is_refused_even_if_harmless() -> None:
    # collections.ChainMap is harmless, but not on the allowlist: unknown is refused.
    from collections import ChainMap

    data = pickle.dumps(ChainMap({"a": 1}))
    with pytest.raises(UnsupportedLoadError, match=r"collections\.ChainMap.*unknown"):
        load_pickle(data, "model.pkl")


def test_companion_file_joblib_wrapper_is_refused() -> None:
    # The pre-0.10 wrapper is on the scanner's allowlist but reads files beside the pickle.
    from joblib.numpy_pickle_compat import NDArrayWrapper

    data = pickle.dumps(NDArrayWrapper("companion.npy", np.ndarray))
    with pytest.raises(UnsupportedLoadError, match="NDArrayWrapper"):
        load_joblib(data, "old.joblib", max_bytes=1 << 30)


def test_pickle_with_trailing_bytes_is_refused() -> None:
    data = pickle.dumps([1, 2, 3]) + b"extra"
    with pytest.raises(MalformedInputError, match="5 bytes follow"):
        load_pickle(data, "model.pkl")


def test_truncated_pickle_is_malformed() -> None:
    data = pickle.dumps(LogisticRegression().fit(X, Y))
    with pytest.raises(MalformedInputError) as info:
        load_pickle(data[: len(data) // 2], "model.pkl")
    assert info.value.code == "E105"


def test_joblib_array_larger_than_the_file_is_refused_before_allocation() -> None:
    buffer = io.BytesIO()
    joblib.dump(np.zeros(4, dtype=np.float64), buffer, protocol=2)  # no frames to fix up
    # Forge the shape tuple (4,) into (2**40,): joblib would allocate 8 TiB first.
    data = buffer.getvalue().replace(b"K\x04\x85", b"\x8a\x06\x00\x00\x00\x00\x00\x01\x85", 1)
    assert data != buffer.getvalue()
    with pytest.raises(MalformedInputError, match="needs more bytes than the file holds"):
        load_joblib(data, "forged.joblib", max_bytes=1 << 30)


def test_decompression_is_bounded() -> None:
    bomb = zlib.compress(b"\0" * (8 << 20))
    with pytest.raises(LimitExceededError) as info:
        decompress(bomb, "zlib", "bomb.joblib", max_bytes=1 << 20)
    assert info.value.code == "E106"


@pytest.mark.parametrize(
    ("name", "blob"),
    [
        ("zlib", zlib.compress(b"x" * 1000)[:-5]),
        ("bz2", bz2.compress(b"x" * 1000)[:-5]),
        ("xz", lzma.compress(b"x" * 1000)[:-5]),
        ("zlib", zlib.compress(b"x") + b"junk"),
    ],
)
def test_truncated_or_padded_streams_are_malformed(name: str, blob: bytes) -> None:
    with pytest.raises(MalformedInputError):
        decompress(blob, name, "broken.joblib", max_bytes=1 << 20)


def test_zfile_joblib_is_refused() -> None:
    with pytest.raises(UnsupportedLoadError, match=r"joblib < 0\.10"):
        load_joblib(b"ZF0x" + b"0" * 17 + zlib.compress(b"."), "old.pkl", max_bytes=1 << 20)


def _old_joblib_read_array(
    self: object, unpickler: object, ensure_native_byte_order: bool
) -> object:
    # What joblib < 1.6 does for an object array: a plain, unrestricted pickle.load.
    return pickle.load(unpickler.file_handle)  # type: ignore[attr-defined]


@pytest.mark.parametrize("old_joblib", [False, True], ids=["installed", "pre-1.6"])
def test_object_array_nested_pickle_goes_through_the_allowlist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old_joblib: bool
) -> None:
    from joblib.numpy_pickle import NumpyArrayWrapper

    marker = tmp_path / "pwned"
    array = np.empty(2, dtype=object)
    array[0], array[1] = "label", _Payload(marker)
    buffer = io.BytesIO()
    joblib.dump({"classes": array}, buffer)
    if old_joblib:
        monkeypatch.setattr(NumpyArrayWrapper, "read_array", _old_joblib_read_array)
    with pytest.raises(UnsupportedLoadError):
        load_joblib(buffer.getvalue(), "evil.joblib", max_bytes=1 << 30)
    assert not marker.exists()
    # A harmless object array still loads, through the same path.
    buffer = io.BytesIO()
    joblib.dump({"classes": np.array(["a", 1], dtype=object)}, buffer)
    loaded = load_joblib(buffer.getvalue(), "ok.joblib", max_bytes=1 << 30)
    assert list(loaded["classes"]) == ["a", 1]


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("collections", "OrderedDict.fromkeys"),
        ("collections", "OrderedDict.__reduce__"),
        ("numpy", "ndarray.tofile"),
        ("numpy", "lib.npyio.load"),
        ("numpy.core.multiarray", "_reconstruct.__call__"),
        ("builtins", "object.__subclasses__"),
        ("numpy", ".dtype"),
        ("numpy.", "dtype"),
        ("", "numpy.dtype"),
        ("commands", "getoutput"),  # fix_imports maps it to subprocess.getoutput
    ],
)
def test_dotted_and_mapped_names_are_refused(module: str, name: str) -> None:
    # Protocol 4 resolves dotted names attribute by attribute, and protocols < 3 rename
    # Python 2 modules: the allowlist judges the whole name before either happens.
    from mlwarden.loading._pickle_restricted import RefusedGlobalError, check_global

    with pytest.raises(RefusedGlobalError):
        check_global(module, name)
    body = f"c{module}\n{name}\n".encode() if "\n" not in module + name else b""
    data = b"\x80\x02" + body + b")R."  # GLOBAL, empty tuple, REDUCE, STOP
    with pytest.raises((UnsupportedLoadError, MalformedInputError)):
        load_pickle(data, "dotted.pkl")


def test_restricted_unpickler_refuses_dotted_walks_out_of_framework_modules() -> None:
    # Protocol 4 resolves `sklearn._min_dependencies` + `joblib.Logger` by walking
    # attributes: a framework-looking name that is not a framework class.
    from mlwarden.loading._pickle_restricted import RefusedGlobalError, check_global

    with pytest.raises(RefusedGlobalError):
        check_global("sklearn._min_dependencies", "joblib.Logger")
    check_global("collections", "OrderedDict")
