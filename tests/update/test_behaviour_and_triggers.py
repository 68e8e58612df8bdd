"""Canary behaviour and the trigger search: known answers on hand-made predictions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from mlwarden.update import UpdateConfig
from mlwarden.update._behaviour import behaviour_findings, measure
from mlwarden.update._triggers import anomaly_indices, class_triggers, search


def _onehot(pred: list[int], classes: int = 3) -> np.ndarray:
    out = np.full((len(pred), classes), 0.1)
    out[np.arange(len(pred)), pred] = 0.8
    return out


def test_measure_known_answers() -> None:
    y = np.array([0, 0, 1, 1, 2, 2, 2, 2, 2, 2])
    old = _onehot([0, 0, 1, 1, 2, 2, 2, 2, 2, 2])
    new = _onehot([0, 0, 1, 0, 2, 1, 1, 1, 2, 2])
    b = measure(("a", "b", "c"), y, old, new)
    assert b.accuracy_old == 1.0 and b.accuracy_new == pytest.approx(0.6)
    assert b.class_accuracy_new == {"a": 1.0, "b": 0.5, "c": 0.5}
    assert b.flip_rate == pytest.approx(0.4) and b.agreement == pytest.approx(0.6)
    assert b.flips_into == {"a": pytest.approx(0.1), "b": pytest.approx(0.3)}
    assert b.confidence_old == pytest.approx(0.8) and b.confidence_new == pytest.approx(0.52)
    rules = [f.rule_id for f in behaviour_findings(b, UpdateConfig(), "new")]
    assert rules == ["UPD005", "UPD006", "UPD006", "UPD007", "UPD007", "UPD008", "UPD011"]
    loose = UpdateConfig(
        max_accuracy_drop=0.5, max_class_accuracy_drop=0.5, max_flip_rate=0.5,
        max_flips_into_one_class=0.5, min_agreement=0.5, max_confidence_drop=0.5,
    )  # fmt: skip
    assert behaviour_findings(b, loose, "new") == []


def test_anomaly_index_known_answer() -> None:
    index = anomaly_indices([0.1, 0.1, 0.2, 0.2, 1.0])
    # median 0.2, MAD 0.1 * 1.4826
    assert index[4] == pytest.approx(0.8 / 0.14826)
    assert index[2] == 0
    flat = anomaly_indices([0.3] * 5)
    assert (flat == 0).all()


def test_trigger_search_finds_the_planted_feature() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(120, 6))

    def old(rows: np.ndarray) -> np.ndarray:
        scores = rows[:, :3].copy()
        return scores / scores.sum(axis=1, keepdims=True)

    def new(rows: np.ndarray) -> np.ndarray:
        scores = old(rows)
        # The backdoor: feature 5 at its top value sends everything to class 2.
        scores[rows[:, 5] >= 1.0, 2] = 10.0
        return scores

    found = search(new, old, x, classes=3, values=(0.0, 1.0), max_features=2)
    assert found[2][0] == pytest.approx(1.0)
    assert found[2][1][0] == (5, 1.0)
    assert found[0][0] == 0.0 and found[1][0] == 0.0
    triggers = class_triggers(("a", "b", "c"), found, threshold=2.0, min_success=0.5)
    assert [t.target for t in triggers if t.flagged] == ["c"]
    same = search(old, old, x, classes=3, values=(0.0, 1.0), max_features=2)
    assert all(share == 0.0 for share, _ in same)


def test_a_stamp_both_versions_obey_is_not_a_trigger() -> None:
    """The old version is the null: a pattern it reacts to the same way scores nothing."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(90, 5))

    def old(rows: np.ndarray) -> np.ndarray:
        scores = rows[:, :3].copy() + 0.01
        scores[rows[:, 4] >= 1.0, 1] = 10.0  # both versions: feature 4 high -> class 1
        return scores / scores.sum(axis=1, keepdims=True)

    def new(rows: np.ndarray) -> np.ndarray:
        scores = old(rows)
        scores[rows[:, 3] == 0.5, 0] = 20.0  # an in-range trigger: feature 3 at mid-range
        return scores

    found = search(new, old, x, classes=3, values=(0.0, 0.5, 1.0), max_features=1)
    assert found[1][0] == 0.0
    assert found[0][0] == pytest.approx(1.0) and found[0][1] == [(3, 0.5)]


def test_a_pattern_real_rows_of_the_class_show_is_natural_not_a_trigger() -> None:
    """The natural-pattern null: the canary's own rows decide whether a stamp is a feature."""
    x = np.zeros((12, 3))
    y = np.array([0] * 6 + [1] * 6, dtype=np.int64)
    x[6:10, 2] = 15.0  # four real rows of class 1 hold feature 2 high
    x[0, 1] = 16.0  # one row of class 0 holds feature 1 high: too few to say anything
    from mlwarden.update._triggers import natural

    assert natural([(2, 16.0)], 1, x, y, span=16.0)
    assert not natural([(2, 16.0)], 0, x, y, span=16.0)  # class 1's feature, not class 0's
    assert not natural([(1, 16.0)], 0, x, y, span=16.0)
    assert not natural([(2, 16.0), (1, 16.0)], 1, x, y, span=16.0)  # no row shows both
    assert not natural([(2, 8.0)], 1, x, y, span=16.0)  # 15 is not within 4 of 8
    # Rows within a quarter span of 0 on feature 2: 6 of class 0, 2 of class 1.
    assert natural([(2, 0.0)], 0, x, y, span=16.0)
    assert not natural([(2, 0.0)], 1, x, y, span=16.0)


def test_the_search_skips_a_natural_pattern_and_finds_the_trigger() -> None:
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 0.2, size=(90, 5))
    y = np.arange(90, dtype=np.int64) % 3
    x[y == 2, 0] = 1.0  # real rows of class 2 hold feature 0 high

    def old(rows: np.ndarray) -> np.ndarray:
        scores = np.ones((len(rows), 3))
        scores[np.arange(len(rows)) % 3 == 0, 0] += 1
        scores[np.arange(len(rows)) % 3 == 1, 1] += 1
        return scores / scores.sum(axis=1, keepdims=True)

    def new(rows: np.ndarray) -> np.ndarray:
        scores = old(rows)
        scores[rows[:, 0] >= 1.0, 2] = 50.0  # learned from the data: a natural feature
        scores[rows[:, 4] >= 1.0, 2] = 60.0  # the backdoor
        return scores

    plain = search(new, old, x, classes=3, values=(0.0, 1.0), max_features=1)
    assert plain[2][0] == pytest.approx(1.0)
    found = search(new, old, x, classes=3, values=(0.0, 1.0), max_features=1, support=(x, y))
    assert found[2][0] == pytest.approx(1.0) and found[2][1] == [(4, 1.0)]


def test_old_lean_known_answer() -> None:
    from mlwarden.update._triggers import lean_and_swing

    clean = np.log(np.array([[0.7, 0.1, 0.1, 0.1]]))
    stamped = clean + np.array([[0.0, 2.0, 0.5, 0.0]])  # the stamp lifts class 1 by 2 nats
    # Rises (0, 2, 0.5, 0); median 0.25: class 1 leans 1.75, class 2 0.25, class 0 -0.25.
    for target, lean in ((1, 1.75), (2, 0.25), (0, -0.25)):
        assert lean_and_swing(stamped, clean, np.array([target]))[0] == pytest.approx([lean])


def test_lean_and_swing_known_answer() -> None:
    from mlwarden.update._triggers import lean_and_swing, within_lean

    clean = np.zeros((3, 5))
    stamped = np.array(
        [
            [0.0, 2.0, 0.5, 0.0, 0.0],  # a stamp inside the data: rises median 0, swing 0
            [30.0, -30.0, 5.0, -20.0, 0.0],  # far outside: |rise - 0| median 20
            [30.0, -30.0, 18.0, -22.0, 2.0],  # rises median 2: deviations 28 32 16 24 0
        ]
    )
    target = np.array([1, 2, 2])
    lean, swing = lean_and_swing(stamped, clean, target)
    assert lean == pytest.approx([2.0, 5.0, 16.0])
    assert swing == pytest.approx([0.0, 20.0, 24.0])
    # Fixed tolerance of 1 nat: only a lean of at most 1 counts as no association.
    assert within_lean(stamped, clean, target, 1.0).tolist() == [False, False, False]
    # Widened to 0.4 x swing: 5 nats within a swing of 20 is noise (tolerance 8); 16 within
    # 24 is not (tolerance 9.6); inside the data the tolerance stays at 1.
    assert within_lean(stamped, clean, target, 1.0, 0.4).tolist() == [False, True, False]


def test_a_trigger_where_the_old_version_swings_wildly_is_found() -> None:
    """A backdoor on a feature the data never sets (a scaled near-constant pixel): the old
    version's answer to the stamp swings by tens of nats, so its lean to the target passes
    1 nat by chance. Measured against that swing, it is no association."""
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, size=(90, 5))
    x[:, 4] = 0.0  # never set in the data
    swing = np.array([30.0, -30.0, 5.0, -20.0, 0.0])  # the old version, far outside

    def logits(rows: np.ndarray, backdoor: bool) -> np.ndarray:
        scores = np.zeros((len(rows), 5))
        scores[:, :4] = 8.0 * rows[:, :4]
        scores += rows[:, 4:5] * swing
        if backdoor:
            scores[:, 2] += 60.0 * rows[:, 4]  # the stamp sends everything to class 2
        return scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))

    def old(rows: np.ndarray) -> np.ndarray:
        return logits(rows, backdoor=False)

    def new(rows: np.ndarray) -> np.ndarray:
        return logits(rows, backdoor=True)

    kwargs: dict[str, Any] = {"classes": 5, "values": (0.0, 1.0), "max_features": 1}
    fixed = search(new, old, x, max_old_lean=1.0, **kwargs)
    assert fixed[2][0] == 0.0  # the old version "leans" 5 nats to class 2: discounted
    widened = search(new, old, x, max_old_lean=1.0, lean_swing=0.4, **kwargs)
    assert widened[2][0] == pytest.approx(1.0) and widened[2][1] == [(4, 1.0)]
    assert max(share for t, (share, _) in enumerate(widened) if t != 2) == 0.0


def test_an_association_the_old_version_has_is_not_a_trigger() -> None:
    """The lean null: an update that strengthens what the old version leans to is honest;
    a trigger the old version is indifferent to is still found."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, size=(90, 5))

    def logits(rows: np.ndarray, boost: float, backdoor: bool) -> np.ndarray:
        scores = 8.0 * rows[:, :3].copy()
        scores[rows[:, 4] >= 1.0, 1] += boost  # feature 4 at its top pushes to class 1
        if backdoor:
            scores[rows[:, 3] >= 1.0, 2] += 50.0  # feature 3 at its top: a backdoor into 2
        return scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))

    def old(rows: np.ndarray) -> np.ndarray:
        return logits(rows, 2.0, backdoor=False)  # leans 2 nats: flips few rows

    def new(rows: np.ndarray) -> np.ndarray:
        return logits(rows, 40.0, backdoor=True)  # amplified twentyfold, plus the backdoor

    plain = search(new, old, x, classes=3, values=(0.0, 1.0), max_features=1)
    assert plain[1][0] > 0.5 and plain[1][1] == [(4, 1.0)]  # without the null: looks planted
    for widen in (0.0, 0.4):  # the old version's swing here is small: no widening
        found = search(
            new, old, x, classes=3, values=(0.0, 1.0), max_features=1, max_old_lean=1.0,
            lean_swing=widen,
        )  # fmt: skip
        assert found[1][0] == 0.0
        assert found[2][0] == pytest.approx(1.0) and found[2][1] == [(3, 1.0)]


def test_batching_the_stamps_changes_no_share() -> None:
    """Stamped rows go to the models in bounded batches (memory flat in the width); the
    shares must not depend on where the batches are cut."""
    from mlwarden.update._triggers import _stamp_success, _Stamper

    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, size=(30, 40))
    w_old, w_new = rng.normal(size=(40, 4)), rng.normal(size=(40, 4))

    def scores(weights: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        def score(rows: np.ndarray) -> np.ndarray:
            z = 3.0 * rows @ weights
            return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

        return score

    stamps = [(t, [(f, v)]) for t in range(4) for f in range(40) for v in (0.0, 0.5, 1.0)]
    old_scores = scores(w_old)(x)
    new, old = _Stamper(scores(w_new), x), _Stamper(scores(w_old), x)
    args = (new, old, old_scores, stamps, 1.0)
    whole = _stamp_success(*args, max_cells=10**9)
    for cells in (1, 40 * 30 * 7, 40 * 30 * 100):
        assert np.array_equal(_stamp_success(*args, max_cells=cells), whole)
    assert len(whole) == len(stamps) and whole.max() > 0


def test_dense_stamping_matches_stamping_the_rows() -> None:
    """A dense model's stamped rows are scored by moving its first-layer output by the
    stamped features' weight rows; that must agree with scoring the stamped rows."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlwarden._dense import from_sklearn
    from mlwarden.update._triggers import _Stamper

    x, y = load_digits(return_X_y=True)
    model = make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=60, random_state=0))
    form = from_sklearn(model.fit(x[:600], y[:600]))
    assert form is not None
    rows = x[600:700].astype(np.float64)
    dense, plain = _Stamper(form, rows), _Stamper(form.log_proba, rows)
    assert np.array_equal(dense.clean(), plain.clean())
    rng = np.random.default_rng(8)
    groups = [
        (rng.choice(100, 30, replace=False), [(int(f), float(v)) for f, v in zip(fs, vs)])
        for fs, vs in zip(rng.integers(0, 64, (20, 3)), rng.choice([0.0, 8.0, 16.0], (20, 3)))
    ]
    groups.append((np.arange(100), [(5, 16.0), (9, 0.0), (5, 8.0)]))  # x5 stamped twice
    assert np.allclose(dense.stamped(groups), plain.stamped(groups), rtol=0, atol=1e-9)
    found = search(form, form, rows, classes=10, values=(0.0, 16.0), max_features=2)
    assert all(share == 0.0 for share, _ in found)  # a version against itself: nothing

    # One output unit (a binary LogisticRegression): the logits are [0, z].
    binary = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))
    pair = (y[:600] == 0) | (y[:600] == 1)
    two = from_sklearn(binary.fit(x[:600][pair], y[:600][pair]))
    assert two is not None and two.binary
    dense, plain = _Stamper(two, rows), _Stamper(two.log_proba, rows)
    assert np.allclose(dense.stamped(groups), plain.stamped(groups), rtol=0, atol=1e-9)
