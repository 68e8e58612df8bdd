"""`mlwarden detect fit` and `mlwarden admin` on bad input: one line with a stable code,
exit 2 (1 for a refused verification, as everywhere in the CLI), never a traceback,
nothing unpickled, no reference written whose thresholds could not be measured."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.cli_support import Marker, one_line_error
from tests.detect_gateway.conftest import Fitted

from mlwarden.cli import main


def _fit(fitted: Fitted, data: Path, out: Path, *extra: str, model: Path | None = None) -> int:
    return main([
        "detect", "fit", "--model", str(model or fitted.models.folder / "digits.joblib"),
        "--key", str(fitted.models.signer_public), "--data", str(data), "--out", str(out),
        *extra,
    ])  # fmt: skip


def _digits(fitted: Fitted, tmp_path: Path, **change: Any) -> Path:
    arrays: dict[str, Any] = {"x": fitted.x_train[:300], "y": np.arange(300) % 10}
    arrays.update(change)
    path = tmp_path / "ref-data.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "the file is empty"),
        (b"x,y\n1,2\n", "not an .npz archive"),
        (b"PK\x03\x04 truncated", "corrupt .npz"),
    ],
)
def test_unreadable_data_files(
    fitted: Fitted, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, words: str
) -> None:
    path = tmp_path / "data.npz"
    path.write_bytes(content)
    assert _fit(fitted, path, tmp_path / "ref") == 2
    assert words in one_line_error(capsys, "E105")
    assert not (tmp_path / "ref").exists()


def test_missing_file_and_single_npy(
    fitted: Fitted, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _fit(fitted, tmp_path / "absent.npz", tmp_path / "ref") == 2
    one_line_error(capsys, "E102")
    np.save(tmp_path / "x.npy", fitted.x_train)
    assert _fit(fitted, tmp_path / "x.npy", tmp_path / "ref") == 2
    assert "single .npy" in one_line_error(capsys, "E105")


def test_object_arrays_are_refused_without_unpickling(
    fitted: Fitted, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "unpickled"
    path = _digits(fitted, tmp_path, x=np.array([Marker(marker)] * 3, dtype=object))
    assert _fit(fitted, path, tmp_path / "ref") == 2
    assert "pickled data is refused" in one_line_error(capsys, "E105")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ({"x": np.full((300, 64), np.nan)}, "E105", "NaN"),
        ({"x": np.zeros((0, 64))}, "E105", "numeric array 'x'"),
        ({"x": np.zeros((300, 0))}, "E105", "numeric array 'x'"),
        ({"x": np.zeros((300, 64), dtype=complex)}, "E105", "numeric array 'x'"),
        ({"y": np.zeros(300, dtype=float)}, "E105", "integer labels"),
        ({"y": np.full(300, 10**12)}, "E161", "class indices"),
        ({"x": np.zeros((300, 10))}, "E105", "the model takes 64"),
        ({"x": np.ones((300, 64)) * 3.0}, "E161", "could not calibrate"),
        ({"x": np.random.default_rng(0).random((300, 64)) * 1e300}, "E161", "overflow"),
        ({"x": np.zeros((20, 64)), "y": np.zeros(20, dtype=int)}, "E161", "at least"),
    ],
)
def test_bad_reference_data(
    fitted: Fitted,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, Any],
    code: str,
    words: str,
) -> None:
    out = tmp_path / "ref"
    assert _fit(fitted, _digits(fitted, tmp_path, **change), out) == 2
    assert words in one_line_error(capsys, code)
    assert not out.exists()  # no reference whose thresholds flag everything or nothing


@pytest.mark.parametrize(
    ("extra", "code", "words"),
    [
        (("--value-range", "0:1"), "E161", "outside value_range"),
        (("--value-range", "16:0"), "E161", "low < high"),
        (("--value-range", "nan:inf"), "E161", "low < high"),
        (("--value-range", "zero:one"), "E101", "--value-range"),
        (("--image-shape", "3x3"), "E161", "does not match 64"),
        (("--image-shape", "8by8"), "E101", "--image-shape"),
        (("--false-alarm", "2"), "E101", "--false-alarm"),
        (("--false-alarm", "nan"), "E101", "--false-alarm"),
        (("--seed", "-3"), "E101", "--seed"),
    ],
)
def test_nonsense_options(
    fitted: Fitted,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    code: str,
    words: str,
) -> None:
    assert _fit(fitted, _digits(fitted, tmp_path), tmp_path / "ref", *extra) == 2
    assert words in one_line_error(capsys, code)


def test_out_into_a_missing_folder(
    fitted: Fitted, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _fit(fitted, _digits(fitted, tmp_path), tmp_path / "no" / "ref") == 2
    assert "no folder" in one_line_error(capsys, "E111")


def test_unsigned_and_scan_flagged_models_are_refused_before_loading(
    fitted: Fitted, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlwarden.signing import sign

    marker = tmp_path / "unpickled"
    model = tmp_path / "evil.pkl"
    model.write_bytes(pickle.dumps(Marker(marker)))
    data = _digits(fitted, tmp_path)
    assert _fit(fitted, data, tmp_path / "ref", model=model) == 1
    one_line_error(capsys, "E208")
    sign(model, key=fitted.models.signer_private, signature=tmp_path / "evil.pkl.sig")
    assert _fit(fitted, data, tmp_path / "ref", model=model) == 1
    one_line_error(capsys, "E205")
    assert not marker.exists()


# --- admin -----------------------------------------------------------------------------


def _config(tmp_path: Path, store: dict[str, Any]) -> Path:
    path = tmp_path / "mlwarden.yaml"
    path.write_text(json.dumps({"version": 1, "budgets": {"store": store}}))
    return path


@pytest.mark.parametrize(
    "command", [["quarantined"], ["release", "--identity", "a", "--model", "m"]]
)
def test_admin_refuses_a_store_it_cannot_reach(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    assert main(["admin", *command, "--config", str(tmp_path / "absent.yaml")]) == 2
    one_line_error(capsys, "E110")
    memory = _config(tmp_path, {"kind": "memory"})
    assert main(["admin", *command, "--config", str(memory)]) == 2
    assert "memory" in one_line_error(capsys, "E324")
    # A wrong --config must not create an empty store and report "nothing quarantined".
    sqlite = _config(tmp_path, {"kind": "sqlite", "path": "gw.sqlite3"})
    assert main(["admin", *command, "--config", str(sqlite)]) == 2
    assert "no detector store" in one_line_error(capsys, "E324")
    assert not (tmp_path / "gw.sqlite3").exists()
    # A Redis store nothing answers on (port 1): one line, fail closed, no traceback.
    redis = _config(tmp_path, {"kind": "redis", "url": "redis://127.0.0.1:1/0", "timeout": 0.25})
    assert main(["admin", *command, "--config", str(redis)]) == 2
    assert "Redis" in one_line_error(capsys, "E324")


def test_release_of_an_unknown_identity_is_not_a_success(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlwarden.detect._store import open_detector_store
    from mlwarden.policy import load_policy

    config = _config(tmp_path, {"kind": "sqlite", "path": "gw.sqlite3"})
    open_detector_store(load_policy(config).budgets, base=tmp_path).close()  # as a gateway would
    args = ["admin", "release", "--config", str(config), "--identity", "api_key:nobody"]
    assert main([*args, "--model", "digits"]) == 1
    captured = capsys.readouterr()
    assert "no sanction" in captured.err and "released" not in captured.out
