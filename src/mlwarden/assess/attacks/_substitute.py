"""The attacker's copy: a small torch MLP trained on the target's answers.

Trained on the target's scores as soft labels (knowledge distillation): with
scores, every query tells the copy more than its top label; against a label-only
target the soft labels are one-hot and the copy learns less per query, which is
exactly what the assessment measures.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray


class Substitute:
    """Fit/predict wrapper around an MLP with inputs standardised by the attacker's pool."""

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        *,
        mean: NDArray[np.float32],
        std: NDArray[np.float32],
        seed: int,
        hidden: int = 128,
        epochs: int = 200,
    ) -> None:
        self.n_features = n_features
        self.n_classes = n_classes
        self.mean = torch.from_numpy(mean.reshape(1, -1).astype(np.float32))
        self.std = torch.from_numpy(np.maximum(std, 1e-6).reshape(1, -1).astype(np.float32))
        self.seed = seed
        self.hidden = hidden
        self.epochs = epochs
        self.net = self._new_net()

    def _new_net(self) -> torch.nn.Module:
        torch.manual_seed(self.seed)
        return torch.nn.Sequential(
            torch.nn.Linear(self.n_features, self.hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(self.hidden, self.n_classes),
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        z: torch.Tensor = self.net((x.reshape(len(x), -1) - self.mean) / self.std)
        return z

    def fit(self, x: NDArray[np.float32], soft: NDArray[np.float64]) -> Substitute:
        """Train from scratch on (x, target scores); full batch Adam, fixed seed."""
        self.net = self._new_net()
        xt = torch.from_numpy(x.reshape(len(x), -1).astype(np.float32))
        st = torch.from_numpy(soft.astype(np.float32))
        opt = torch.optim.Adam(self.net.parameters(), lr=1e-2, weight_decay=1e-4)
        batch = 256
        rng = np.random.default_rng(self.seed)
        self.net.train()
        for _ in range(self.epochs if len(x) <= batch else max(20, self.epochs * batch // len(x))):
            order = torch.from_numpy(rng.permutation(len(x)))
            for i in range(0, len(x), batch):
                idx = order[i : i + batch]
                opt.zero_grad()
                logp = torch.log_softmax(self.logits(xt[idx]), dim=1)
                loss = -(st[idx] * logp).sum(dim=1).mean()
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
        self.net.eval()
        return self

    def proba(self, x: NDArray[np.float32]) -> NDArray[np.float64]:
        with torch.no_grad():
            z = self.logits(torch.from_numpy(x.astype(np.float32)))
            return np.asarray(torch.softmax(z, dim=1).numpy(), dtype=np.float64)

    def predict(self, x: NDArray[np.float32]) -> NDArray[np.int64]:
        return np.asarray(self.proba(x).argmax(axis=1), dtype=np.int64)

    def label_gradient_sign(
        self, x: NDArray[np.float32], y: NDArray[np.int64]
    ) -> NDArray[np.float32]:
        """sign of d logit_y / d x: Papernot's Jacobian-based augmentation direction."""
        xt = torch.from_numpy(x.astype(np.float32)).requires_grad_(True)
        z = self.logits(xt)
        picked = z[torch.arange(len(y)), torch.from_numpy(y)].sum()
        (grad,) = torch.autograd.grad(picked, xt)
        return np.asarray(grad.sign().numpy(), dtype=np.float32)
