"""The kNN trust score of the adversarial detector, and format-1 references without it."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.detect.conftest import Fitted

from mlwarden.detect import Monitor, Reference, load_reference
from mlwarden.detect import _scores as sc
from mlwarden.errors import ReferenceDataError


def _d2(z: np.ndarray, bank: np.ndarray) -> np.ndarray:
    out: np.ndarray = ((z[:, None, :] - bank[None, :, :]) ** 2).sum(axis=2)
    return out


def test_trust_score_known_answers() -> None:
    bank = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 4.0]])
    labels = np.array([0, 1, 1])
    z = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    # Answer 0: nearest class-0 point at 1, nearest other at sqrt(17) -> log(1 / sqrt(17)).
    # Answer 1: the reverse. Answer 2 (absent from the bank): the farthest point (9) stands in.
    got = sc.trust_score(_d2(z, bank), labels, np.array([0, 1, 2]))
    np.testing.assert_allclose(got, [-0.5 * np.log(17), 0.5 * np.log(17), np.log(9.0)])


def test_trust_score_of_a_one_class_bank_stays_finite() -> None:
    bank = np.array([[0.0], [2.0]])
    got = sc.trust_score(_d2(np.array([[1.0]]), bank), np.array([0, 0]), np.array([0]))
    assert np.isfinite(got).all() and got[0] == pytest.approx(0.0)


def _format_1(ref: Reference) -> Reference:
    return dataclasses.replace(ref, cal_trust=np.empty(0))


def test_trust_lifts_small_epsilon_detection(fitted: Fitted) -> None:
    """FGSM at eps 0.05 (the adversarial examples just past a boundary): at 5% FPR on the
    clean test rows the trust-score detector catches more than the kNN vote did."""
    x, y = fitted.data.x_test, fitted.data.y_test
    ok = fitted.model.predict(x) == y
    adv = fitted.fgsm(x[ok], y[ok], 0.05)
    adv = adv[fitted.model.predict(adv) != y[ok]]
    assert adv.shape[0] >= 30
    rates = {}
    for name, ref in (("trust", fitted.reference), ("vote", _format_1(fitted.reference))):
        m = Monitor(ref)
        clean = m.observe(m.new_state(), x, fitted.proba(x), predict_proba=fitted.proba)
        cut = np.quantile(clean.adversarial, 0.95)
        attacked = m.observe(m.new_state(), adv, fitted.proba(adv), predict_proba=fitted.proba)
        rates[name] = float((attacked.adversarial > cut).mean())
    assert rates["trust"] >= 0.9
    assert rates["trust"] > rates["vote"]


def _arrays(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _write(path: Path, arrays: dict[str, Any], **meta_changes: Any) -> None:
    meta = json.loads(arrays["meta"].tobytes().decode())
    meta.update(meta_changes)
    arrays = {**arrays, "meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


def test_format_1_file_loads_and_scores_without_trust(fitted: Fitted, tmp_path: Path) -> None:
    path = tmp_path / "ref.npz"
    fitted.reference.save(path)
    arrays = _arrays(path)
    assert json.loads(arrays["meta"].tobytes().decode())["version"] == 2
    del arrays["cal_trust"]
    _write(path, arrays, version=1)
    loaded = load_reference(path)
    assert not loaded.uses_trust and fitted.reference.uses_trust
    x = fitted.data.x_test[:50]
    expected = Monitor(_format_1(fitted.reference)).observe(
        Monitor(fitted.reference).new_state(), x, fitted.proba(x), predict_proba=fitted.proba
    )
    m = Monitor(loaded)
    got = m.observe(m.new_state(), x, fitted.proba(x), predict_proba=fitted.proba)
    np.testing.assert_allclose(got.adversarial, expected.adversarial)
    # Written back, it stays a format-1 file (it has no trust calibration to write).
    again = tmp_path / "again.npz"
    loaded.save(again)
    assert "cal_trust" not in _arrays(again)
    assert not load_reference(again).uses_trust


@pytest.mark.parametrize(
    ("change", "message"),
    [("drop", "lacks cal_trust"), ("short", "too short"), ("unsorted", "not sorted")],
)
def test_format_2_file_needs_its_trust_calibration(
    fitted: Fitted, tmp_path: Path, change: str, message: str
) -> None:
    path = tmp_path / "ref.npz"
    fitted.reference.save(path)
    arrays = _arrays(path)
    if change == "drop":
        del arrays["cal_trust"]
    elif change == "short":
        arrays["cal_trust"] = np.arange(3.0)
    else:
        arrays["cal_trust"] = np.arange(50.0)[::-1].copy()
    _write(path, arrays)
    with pytest.raises(ReferenceDataError, match=message) as info:
        load_reference(path)
    assert info.value.code == "E160"


@pytest.mark.parametrize("version", [0, 3, True, "2", None])
def test_unknown_versions_are_refused(fitted: Fitted, tmp_path: Path, version: Any) -> None:
    path = tmp_path / "ref.npz"
    fitted.reference.save(path)
    _write(path, _arrays(path), version=version)
    with pytest.raises(ReferenceDataError, match="reads versions 1 and 2"):
        load_reference(path)


def test_fit_calibrates_the_trust_score_on_the_scoring_split(fitted: Fitted) -> None:
    ref = fitted.reference
    assert ref.cal_trust.shape == (ref.fit_info["scoring_rows"],)
    assert np.all(np.diff(ref.cal_trust) >= 0)
    # Benign scoring rows mostly sit nearer their answered class than any other.
    assert float(np.median(ref.cal_trust)) < 0.0
    assert "cal_trust" in ref.tails
