"""The demo helpers, the PRADA baseline and the DET rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tests.detect.conftest import Fitted

from mlwarden.detect import Signal, load_reference
from mlwarden.detect._prada import Prada
from mlwarden.detect.simulate import benign_queries, detect_demo, simulate_extraction_queries
from mlwarden.rules.detect import BAD_REFERENCE_RULE, SIGNAL_RULES
from mlwarden.taxonomy import Threat, get_rule


def test_simulated_queries() -> None:
    attack = simulate_extraction_queries(30, seed=1)
    assert attack.shape == (30, 64) and attack.min() >= 0.0 and attack.max() <= 1.0
    np.testing.assert_array_equal(attack, simulate_extraction_queries(30, seed=1))
    benign = benign_queries(40, seed=2)
    assert benign.shape == (40, 64)
    assert len({row.tobytes() for row in benign}) == 40  # distinct samples


def test_demo_flags_the_attacker_only(tmp_path: Path) -> None:
    result = detect_demo(tmp_path)
    assert result.problems == ()
    assert any("extraction attacker: flagged" in line for line in result.lines)
    assert any("ordinary caller: 200 queries, not flagged" in line for line in result.lines)
    assert load_reference(tmp_path / "digits.detect.npz").n_features == 64


def test_prada_flags_a_perturbation_walk_not_natural_samples(fitted: Fitted) -> None:
    rng = np.random.default_rng(0)
    walk = [fitted.data.x_test[0]]
    for _ in range(80):  # each query a small step from the previous one
        walk.append(np.clip(walk[-1] + 0.05 * np.sign(rng.standard_normal(64)), 0, 1))
    natural = fitted.data.x_test[:80]

    def flagged(rows: list[np.ndarray] | np.ndarray) -> bool:
        prada = Prada(delta=0.83)
        labels = fitted.model.predict(np.asarray(rows))
        return any(prada.observe(r, int(c)) for r, c in zip(rows, labels, strict=True))

    assert flagged(walk)
    assert not flagged(natural)


def test_every_signal_has_its_rule() -> None:
    assert set(SIGNAL_RULES) == {str(s) for s in Signal}
    threats = {get_rule(rule_id).threat for rule_id in SIGNAL_RULES.values()}
    assert threats == {Threat.MODEL_STEALING, Threat.ADVERSARIAL_EXAMPLES, Threat.MODEL_INVERSION}
    assert get_rule(BAD_REFERENCE_RULE).id == "DET004"
