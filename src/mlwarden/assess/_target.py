"""One adapter interface over the models an assessment attacks.

Every attack talks to a `Target`: scores or labels for a batch of inputs, nothing
else. `TargetBase` holds what every adapter shares: input checks, the count of
queries, the query budget (refused *before* the query is made, so an endpoint
never sees a call beyond its budget) and the output check. Adapters implement
`_query`; a label-only adapter returns labels and the base turns them into one-hot
scores, so every attack runs unchanged against label-only output.

Targets that can also hand over a differentiable torch module are `WhiteBox`;
white-box attacks (FGSM, PGD, gradient inversion) use it, the others only query.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from mlwarden.errors import (
    AttackInputError,
    QueryBudgetExhaustedError,
    TargetOutputError,
    UsageError,
)

if TYPE_CHECKING:
    import torch

Output = Literal["scores", "labels"]

__all__ = ["LabelOnly", "Output", "Target", "TargetBase", "WhiteBox", "as_label_only"]


@runtime_checkable
class Target(Protocol):
    """What an attack may ask of a model: its scores or its labels, and the figures."""

    name: str
    n_classes: int
    input_shape: tuple[int, ...]
    value_range: tuple[float, float]
    output: Output
    queries: int

    def predict_scores(self, x: NDArray[np.float32]) -> NDArray[np.float64]: ...

    def predict_labels(self, x: NDArray[np.float32]) -> NDArray[np.int64]: ...


@runtime_checkable
class WhiteBox(Protocol):
    """A target that also exposes a differentiable module returning logits."""

    def torch_module(self) -> torch.nn.Module: ...


def is_white_box(target: Target) -> bool:
    """True when `target` hands over a torch module (and reveals scores)."""
    return (
        isinstance(target, WhiteBox)
        and target.output == "scores"
        and bool(getattr(target, "white_box", True))
    )


class TargetBase(abc.ABC):
    """The shared half of every adapter: shapes, the query count and the budget.

    `max_queries` counts samples (one row of a batch is one query), None means no
    budget. The budget is checked before a batch is sent: a batch that would cross
    it raises `QueryBudgetExhaustedError` (E171) and is not sent.
    """

    def __init__(
        self,
        *,
        name: str,
        n_classes: int,
        input_shape: tuple[int, ...],
        value_range: tuple[float, float],
        output: Output = "scores",
        max_queries: int | None = None,
    ) -> None:
        if n_classes < 2:
            raise UsageError(f"target {name!r}: needs at least 2 classes, not {n_classes}")
        if output not in ("scores", "labels"):
            raise UsageError(f"target {name!r}: output must be 'scores' or 'labels'")
        low, high = float(value_range[0]), float(value_range[1])
        if not low < high:
            raise UsageError(f"target {name!r}: value_range must be (low, high) with low < high")
        if max_queries is not None and max_queries < 0:
            raise UsageError(f"target {name!r}: max_queries must be >= 0")
        self.name = name
        self.n_classes = int(n_classes)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.value_range = (low, high)
        self.output: Output = output
        self.max_queries = max_queries
        self.queries = 0

    @property
    def remaining(self) -> int | None:
        """Queries left in the budget, None without a budget."""
        return None if self.max_queries is None else self.max_queries - self.queries

    def charge(self, n: int) -> None:
        """Count `n` queries, refusing (before anything is sent) past the budget."""
        if self.max_queries is not None and self.queries + n > self.max_queries:
            raise QueryBudgetExhaustedError(
                f"target {self.name!r}: {n} more queries would exceed the budget of "
                f"{self.max_queries} ({self.queries} spent)",
                hint="raise the query budget or lower the attacks' sample counts",
            )
        self.queries += n

    def check_input(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        """`x` as a float32 batch of this target's input shape, or E170."""
        arr = np.asarray(x, dtype=np.float32)
        if arr.ndim == len(self.input_shape):
            arr = arr[None]
        if arr.shape[1:] != self.input_shape:
            raise AttackInputError(
                f"target {self.name!r}: inputs of shape {arr.shape[1:]} given, "
                f"the target takes {self.input_shape}"
            )
        if not np.isfinite(arr).all():
            raise AttackInputError(f"target {self.name!r}: inputs hold NaN or infinity")
        return arr

    def predict_scores(self, x: NDArray[np.float32]) -> NDArray[np.float64]:
        """Scores (n, n_classes); one-hot rows when the target reveals labels only."""
        arr = self.check_input(x)
        if arr.shape[0] == 0:
            return np.zeros((0, self.n_classes), dtype=np.float64)
        self.charge(arr.shape[0])
        raw = np.asarray(self._query(arr))
        if raw.ndim == 1 or self.output == "labels":
            labels = self._as_labels(raw, arr.shape[0])
            # (n, k), not np.eye(k)[labels]: k x k would be gigabytes for many classes.
            onehot = np.zeros((labels.shape[0], self.n_classes), dtype=np.float64)
            onehot[np.arange(labels.shape[0]), labels] = 1.0
            return onehot
        return self._as_scores(raw, arr.shape[0])

    def predict_labels(self, x: NDArray[np.float32]) -> NDArray[np.int64]:
        """The predicted class index of each row."""
        return np.asarray(self.predict_scores(x).argmax(axis=1), dtype=np.int64)

    @abc.abstractmethod
    def _query(self, x: NDArray[np.float32]) -> NDArray[np.generic]:
        """Ask the model: (n, n_classes) scores, or (n,) class indices if label-only."""

    def _as_scores(self, raw: NDArray[np.generic], n: int) -> NDArray[np.float64]:
        scores = np.asarray(raw, dtype=np.float64)
        if scores.shape != (n, self.n_classes) or not np.isfinite(scores).all():
            raise TargetOutputError(
                f"target {self.name!r}: expected finite scores of shape "
                f"({n}, {self.n_classes}), got {scores.shape}"
            )
        return scores

    def _as_labels(self, raw: NDArray[np.generic], n: int) -> NDArray[np.int64]:
        if raw.ndim == 2:
            raw = self._as_scores(raw, n).argmax(axis=1)
        if raw.shape != (n,):
            raise TargetOutputError(
                f"target {self.name!r}: expected {n} labels, got shape {raw.shape}"
            )
        labels = np.asarray(raw, dtype=np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= self.n_classes):
            raise TargetOutputError(
                f"target {self.name!r}: a label lies outside 0..{self.n_classes - 1}"
            )
        return labels


class LabelOnly(TargetBase):
    """The same model behind an output that reveals the top label only.

    This is what the gateway's output minimization does; attacks against it
    measure what that defence removes. Queries are counted on both this wrapper
    and the wrapped target.
    """

    def __init__(self, inner: Target, *, max_queries: int | None = None) -> None:
        super().__init__(
            name=f"{inner.name} (labels only)",
            n_classes=inner.n_classes,
            input_shape=inner.input_shape,
            value_range=inner.value_range,
            output="labels",
            max_queries=max_queries,
        )
        self.inner = inner

    def _query(self, x: NDArray[np.float32]) -> NDArray[np.generic]:
        return self.inner.predict_labels(x)


def as_label_only(target: Target, *, max_queries: int | None = None) -> LabelOnly:
    """Wrap `target` so that it reveals labels only (no gradients, no scores)."""
    return LabelOnly(target, max_queries=max_queries)
