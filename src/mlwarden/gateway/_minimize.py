"""Output minimization: a caller sees the least of the model's answer that serves them.

Modes, from least to most revealing: `label` (the predicted class), `top_k` (the k best
classes and their probabilities rounded to N decimals), `probabilities` (every class,
rounded), `raw` (the model's own outputs, logits included). The model's `output.mode` is
the default; a role listed in `output.grants` can raise it. Rounding and truncation
starve extraction and inversion attacks of the fine-grained scores they need.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np

from mlwarden.gateway._models import ModelOutput, Tensor, tensor_from_array
from mlwarden.serving import OutputMode, OutputPolicyConfig

_RANK: dict[str, int] = {"label": 0, "top_k": 1, "probabilities": 2, "raw": 3}
_MODES: tuple[OutputMode, ...] = ("label", "top_k", "probabilities", "raw")


class OutputPolicy:
    """`mode_for(roles)` (cached per role set) and `apply(output, mode)`."""

    def __init__(self, config: OutputPolicyConfig) -> None:
        self._config = config
        self._cache: dict[frozenset[str], OutputMode] = {}

    def mode_for(self, roles: frozenset[str]) -> OutputMode:
        mode = self._cache.get(roles)
        if mode is None:
            mode = _widest(self._config.mode, roles, self._config.grants)
            if len(self._cache) < 4096:
                self._cache[roles] = mode
        return mode

    def apply(self, output: ModelOutput, mode: OutputMode) -> list[dict[str, Any]]:
        """The outputs of the response body in this mode (OIP tensors as dicts)."""
        tensors: list[Tensor] = [tensor_from_array("label", output.labels)]
        probabilities = output.probabilities
        if mode == "raw":
            tensors.extend(output.raw_tensors())
        elif mode != "label" and probabilities is not None:
            decimals = self._config.decimals
            if mode == "top_k":
                k = min(self._config.top_k, probabilities.shape[1])
                order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
                top = np.take_along_axis(probabilities, order, axis=1)
                classes = _class_labels(output, probabilities.shape[1])
                tensors.append(tensor_from_array("top_k_labels", classes[order]))
                tensors.append(tensor_from_array("top_k_probabilities", np.round(top, decimals)))
            else:
                tensors.append(
                    tensor_from_array("probabilities", np.round(probabilities, decimals))
                )
        return [t.to_json() for t in tensors]


def _class_labels(output: ModelOutput, count: int) -> np.ndarray[Any, Any]:
    """The class of each probability column (column indices when the adapter has none)."""
    classes = output.classes if output.classes is not None else np.arange(count)
    return np.asarray(classes)


def _widest(
    default: OutputMode, roles: Collection[str], grants: dict[str, OutputMode]
) -> OutputMode:
    rank = _RANK[default]
    for role in roles:
        granted = grants.get(role)
        if granted is not None and _RANK[granted] > rank:
            rank = _RANK[granted]
    return _MODES[rank]
