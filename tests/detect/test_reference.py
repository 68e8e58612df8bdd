"""Reference files: round trip, and every kind of bad file refused with E160."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.detect.conftest import Fitted

from mlwarden.detect import Monitor, Signal, load_reference
from mlwarden.errors import ReferenceDataError


def _arrays(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _write(path: Path, arrays: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


def _with_meta(arrays: dict[str, Any], **changes: Any) -> dict[str, Any]:
    meta = json.loads(arrays["meta"].tobytes().decode())
    meta.update(changes)
    return {**arrays, "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}


def test_round_trip_gives_the_same_detector(fitted: Fitted, tmp_path: Path) -> None:
    path = tmp_path / "ref.npz"
    fitted.reference.save(path)
    loaded = load_reference(path)
    assert dict(loaded.thresholds) == dict(fitted.reference.thresholds)
    assert loaded.image_shape == (8, 8) and loaded.value_range == (0.0, 1.0)
    np.testing.assert_array_equal(loaded.bank, fitted.reference.bank)
    x = fitted.data.x_test[:40]
    a, b = Monitor(fitted.reference), Monitor(loaded)
    sa, sb = a.new_state(), b.new_state()
    for i in range(40):
        oa = a.observe(sa, x[i : i + 1], fitted.proba(x[i : i + 1]), predict_proba=fitted.proba)
        ob = b.observe(sb, x[i : i + 1], fitted.proba(x[i : i + 1]), predict_proba=fitted.proba)
        assert dict(oa.scores) == dict(ob.scores)


def test_file_is_a_plain_npz_without_pickles(fitted: Fitted, tmp_path: Path) -> None:
    path = tmp_path / "ref.npz"
    fitted.reference.save(path)
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            assert name.endswith(".npy")
    arrays = _arrays(path)  # loads with allow_pickle=False
    assert all(a.dtype != object for a in arrays.values())


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ReferenceDataError, match="cannot be read") as info:
        load_reference(tmp_path / "absent.npz")
    assert info.value.code == "E160"
    assert "mlwarden detect fit" in info.value.one_line()


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04broken"])
def test_garbage_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "ref.npz"
    path.write_bytes(content)
    with pytest.raises(ReferenceDataError, match="not a detector reference"):
        load_reference(path)


def test_pickled_array_is_refused(fitted: Fitted, tmp_path: Path) -> None:
    path = tmp_path / "ref.npz"
    fitted.reference.save(path)
    arrays = _arrays(path)
    arrays["center"] = np.array([{"a": 1}], dtype=object)
    _write(path, arrays)
    with pytest.raises(ReferenceDataError, match="not a detector reference"):
        load_reference(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 99}, "version 99"),
        ({"format": "something-else"}, "not a detector reference"),
        ({"n_features": 63}, "do not fit together"),
        ({"n_classes": 9}, "do not fit together"),
        ({"k": 100000}, "do not fit together"),
        ({"image_shape": [4, 4]}, "image shape"),
        ({"thresholds": {"extraction": 1.0}}, "one positive threshold per signal"),
        ({"thresholds": {"extraction": -1.0, "adversarial": 1.0, "probing": 1.0}}, "positive"),
        ({"power": 2.0}, "out of range"),
        ({"n_features": "64"}, "not integers"),
    ],
)
def test_mismatched_metadata(
    fitted: Fitted, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    path = tmp_path / "ref.npz"
    fitted.reference.save(path)
    _write(path, _with_meta(_arrays(path), **change))
    with pytest.raises(ReferenceDataError, match=message):
        load_reference(path)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("center", np.full(64, np.nan), "non-finite"),
        ("bank", np.zeros(64), "wrong shape"),
        ("cal_distance", np.arange(50.0)[::-1].copy(), "not sorted"),
        ("cal_margin", np.arange(3.0), "too short"),
        ("bank_labels", np.zeros(3, dtype=np.int64), "bank labels"),
        ("inv_scale", np.zeros(64), "do not fit together"),
    ],
)
def test_tampered_arrays(
    fitted: Fitted, tmp_path: Path, name: str, value: Any, message: str
) -> None:
    path = tmp_path / "ref.npz"
    fitted.reference.save(path)
    arrays = _arrays(path)
    arrays[name] = value
    _write(path, arrays)
    with pytest.raises(ReferenceDataError, match=message):
        load_reference(path)


def test_missing_array(fitted: Fitted, tmp_path: Path) -> None:
    path = tmp_path / "ref.npz"
    fitted.reference.save(path)
    arrays = _arrays(path)
    del arrays["projection"]
    _write(path, arrays)
    with pytest.raises(ReferenceDataError, match="lacks projection"):
        load_reference(path)


def test_thresholds_cover_every_signal(fitted: Fitted) -> None:
    assert set(fitted.reference.thresholds) == set(Signal)
    assert all(v > 0 for v in fitted.reference.thresholds.values())
