"""Each attack against a small real model, with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

from mlwarden.assess import (
    SklearnTarget,
    TorchTarget,
    as_label_only,
    evasion,
    extraction,
    inversion,
    membership,
)
from mlwarden.assess.attacks import adversarial_examples
from mlwarden.errors import (
    AttackInputError,
    AttackNotApplicableError,
    QueryBudgetExhaustedError,
)


def _net_target(net) -> TorchTarget:
    return TorchTarget(net, input_shape=(64,), value_range=(0.0, 1.0))


@pytest.mark.parametrize("method", ["pgd", "fgsm"])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_eps_zero_leaves_accuracy_and_attack_lowers_it(digits, digits_net, method, norm) -> None:
    target = _net_target(digits_net)
    x, y = digits.test_x[:200] / 16, digits.test_y[:200]
    big = 0.15 if norm == "linf" else 1.5
    result = evasion(target, x, y, epsilons=[0.0, big], norm=norm, method=method)
    assert result.white_box and result.method == method
    assert result.robust_accuracy[0] == result.clean_accuracy > 0.85
    assert result.robust_accuracy[1] < result.clean_accuracy - 0.3
    assert result.queries > 0


def test_pgd_examples_stay_in_the_ball_and_the_range(digits, digits_net) -> None:
    target = _net_target(digits_net)
    x, y = digits.test_x[:50] / 16, digits.test_y[:50]
    adv = adversarial_examples(target, x, y, eps=0.1, norm="linf", steps=5)
    assert np.abs(adv - x).max() <= 0.1 + 1e-6
    assert adv.min() >= 0.0 and adv.max() <= 1.0
    adv2 = adversarial_examples(target, x, y, eps=1.0, norm="l2", steps=5)
    assert np.linalg.norm(adv2 - x, axis=1).max() <= 1.0 + 1e-5
    # Deterministic: no random start.
    np.testing.assert_array_equal(adv, adversarial_examples(target, x, y, eps=0.1, steps=5))


def test_pgd_works_on_the_sklearn_pipeline(digits, digits_logreg) -> None:
    target = SklearnTarget(digits_logreg, value_range=(0, 16))
    result = evasion(target, digits.test_x[:100], digits.test_y[:100], epsilons=[0, 2.0])
    assert result.white_box
    assert result.robust_accuracy[1] < 0.3 < result.robust_accuracy[0]


def test_black_box_square_attack_on_a_forest(digits, digits_forest) -> None:
    target = SklearnTarget(digits_forest, value_range=(0, 16))
    x, y = digits.test_x[:30], digits.test_y[:30]
    result = evasion(target, x, y, epsilons=[0, 6.0], steps=60)
    assert not result.white_box and result.method == "square"
    assert result.robust_accuracy[1] < result.robust_accuracy[0] - 0.2
    with pytest.raises(AttackNotApplicableError) as info:
        evasion(target, x, y, epsilons=[1.0], norm="l2")
    assert info.value.code == "E172"


def test_label_only_target_gets_rays(digits, digits_logreg) -> None:
    target = as_label_only(SklearnTarget(digits_logreg, value_range=(0, 16)))
    x, y = digits.test_x[:40], digits.test_y[:40]
    result = evasion(target, x, y, epsilons=[0, 1.0, 3.0], steps=200)
    assert result.method == "rays" and not result.white_box
    assert result.robust_accuracy[0] == result.clean_accuracy > 0.9
    assert result.robust_accuracy[2] <= result.robust_accuracy[1] < result.clean_accuracy
    assert result.robust_accuracy[2] < 0.2
    assert result.queries <= 40 * (200 + 9) + 2 * 40  # per-sample cap, one bisection over


def test_black_box_respects_the_budget(digits, digits_forest) -> None:
    target = SklearnTarget(digits_forest, value_range=(0, 16), max_queries=200)
    with pytest.raises(QueryBudgetExhaustedError):
        evasion(target, digits.test_x[:30], digits.test_y[:30], epsilons=[6.0], steps=60)


def test_evasion_input_errors(digits, digits_net) -> None:
    target = _net_target(digits_net)
    with pytest.raises(AttackInputError, match="labels must be class indices"):
        evasion(target, digits.test_x[:5] / 16, np.array([0, 1, 2, 3, 10]), epsilons=[0.1])
    with pytest.raises(AttackInputError, match="epsilons"):
        evasion(target, digits.test_x[:5] / 16, digits.test_y[:5], epsilons=[-1.0])


def test_overfit_forest_leaks_membership_and_labels_only_do_not(digits, digits_forest) -> None:
    target = SklearnTarget(digits_forest)
    args = (digits.train_x, digits.train_y, digits.test_x, digits.test_y)
    result = membership(
        target, *args, reference_x=digits.ref_x, reference_y=digits.ref_y, shadows=8
    )
    assert result.method == "lira"
    assert result.auc > 0.9
    assert result.tpr_at_fpr[0.01] > 0.2
    assert result.by_method["lira"] > result.by_method["loss"]
    assert result.queries == len(digits.train_x) + len(digits.test_x)
    labels_only = membership(as_label_only(target), *args, method="loss")
    assert abs(labels_only.auc - 0.5) < 0.05


def test_lira_needs_shadows_it_can_make(digits, digits_net) -> None:
    target = _net_target(digits_net)
    with pytest.raises(AttackNotApplicableError, match="LiRA needs"):
        membership(
            target,
            digits.train_x[:50] / 16,
            digits.train_y[:50],
            digits.test_x[:50] / 16,
            digits.test_y[:50],
            method="lira",
        )
    result = membership(
        target,
        digits.train_x / 16,
        digits.train_y,
        digits.test_x / 16,
        digits.test_y,
        method="best",
    )
    assert result.method in ("loss", "confidence") and 0.4 < result.auc < 1.0


def test_extraction_fidelity_rises_with_queries(digits, digits_logreg) -> None:
    target = SklearnTarget(digits_logreg, value_range=(0, 16))
    result = extraction(
        target,
        digits.ref_x,
        test_x=digits.test_x,
        test_y=digits.test_y,
        budgets=(20, 300),
        strategies=("random", "active", "uniform"),
        epochs=100,
    )
    random = result.curves["random"]
    assert random.fidelity[1] > random.fidelity[0] + 0.1
    assert random.fidelity[1] > 0.9
    assert result.curves["active"].fidelity[1] > 0.9
    assert result.queries == 3 * 300 + len(digits.test_x)


def test_extraction_stops_at_the_budget(digits, digits_logreg) -> None:
    target = SklearnTarget(digits_logreg, value_range=(0, 16), max_queries=250)
    with pytest.raises(QueryBudgetExhaustedError, match="budget of 250"):
        extraction(
            target,
            digits.ref_x,
            test_x=digits.test_x[:50],
            test_y=digits.test_y[:50],
            budgets=(100, 300),
            strategies=("random",),
            epochs=20,
        )


def test_image_inversion_reconstructs_recognisable_digits(digits, digits_logreg) -> None:
    target = SklearnTarget(digits_logreg, value_range=(0, 16))
    result = inversion(target, reference_x=digits.ref_x, reference_y=digits.ref_y)
    assert result.recognised_count >= 9
    assert result.reconstructions is not None and result.reconstructions.shape == (10, 64)
    assert result.reconstructions.min() >= 0 and result.reconstructions.max() <= 16
    assert max(result.steps) < 300  # stopped early


def test_image_inversion_needs_gradients(digits, digits_forest) -> None:
    with pytest.raises(AttackNotApplicableError, match="gradients"):
        inversion(SklearnTarget(digits_forest), reference_x=digits.ref_x, reference_y=digits.ref_y)


def test_attribute_inference_advantage() -> None:
    x, y = make_classification(
        n_samples=600, n_features=6, n_informative=4, random_state=0, flip_y=0.0
    )
    # A binary sensitive column the label depends on.
    sensitive = (x[:, 0] + 0.5 * np.random.default_rng(0).normal(size=600) > 0).astype(float)
    x = np.column_stack([x[:, 1:], sensitive]).astype(np.float32)
    y = (y ^ (sensitive > 0)).astype(np.int64)
    model = RandomForestClassifier(n_estimators=50, random_state=0).fit(x[:300], y[:300])
    target = SklearnTarget(model)
    kwargs = {
        "kind": "tabular",
        "reference_x": x[300:],
        "reference_y": y[300:],
        "records_x": x[:300],
        "records_y": y[:300],
        "sensitive_column": 5,
    }
    result = inversion(target, **kwargs)
    assert result.advantage is not None and result.advantage > 0.2
    assert result.queries == 300 * 2
    blind = inversion(as_label_only(target), **kwargs)
    assert blind.advantage is not None and blind.advantage < result.advantage
