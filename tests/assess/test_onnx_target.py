"""OnnxTarget on small graphs built here: logits get a softmax, probabilities do not."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

from mlwarden.assess import OnnxTarget, as_label_only, evasion


def _session(weights: np.ndarray, bias: np.ndarray, *, softmax: bool):
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["logits"])]
    out = "logits"
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
        out = "probabilities"
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", weights.shape[0]])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["n", weights.shape[1]])],
        initializer=[numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_logits_and_probabilities_give_the_same_scores() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 3)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    x = rng.normal(size=(20, 5)).astype(np.float32)
    expected = _softmax(x.astype(np.float64) @ w + b)
    for softmax in (False, True):
        target = OnnxTarget(_session(w, b, softmax=softmax), value_range=(-5.0, 5.0))
        assert target.n_classes == 3 and target.input_shape == (5,)
        np.testing.assert_allclose(target.predict_scores(x), expected, atol=1e-5)
        assert target.queries == 20


def test_onnx_target_is_attacked_black_box() -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(5, 3)).astype(np.float32)
    target = OnnxTarget(_session(w, np.zeros(3, np.float32), softmax=True), value_range=(-3, 3))
    x = rng.uniform(-1, 1, size=(30, 5)).astype(np.float32)
    y = target.predict_labels(x)
    result = evasion(target, x, y, epsilons=[0.0, 1.0], steps=50)
    assert not result.white_box
    assert result.robust_accuracy[0] == 1.0 > result.robust_accuracy[1]
    blind = evasion(as_label_only(target), x, y, epsilons=[1.0], steps=100)
    assert blind.method == "rays" and blind.robust_accuracy[0] < 1.0


def test_data_of_another_shape_than_the_graph_is_refused_up_front() -> None:
    import pytest

    from mlwarden.errors import TargetMismatchError

    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 3)).astype(np.float32)
    session = _session(w, np.zeros(3, dtype=np.float32), softmax=True)
    with pytest.raises(TargetMismatchError, match=r"takes samples of shape \(5,\)") as info:
        OnnxTarget(session, input_shape=(10,), value_range=(-5.0, 5.0))
    assert info.value.code == "E179"
