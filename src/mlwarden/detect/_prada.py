"""PRADA (Juuti et al., "PRADA: Protecting against DNN Model Stealing Attacks", 2019).

The published baseline the extraction detector is measured against. For every
query it records the minimum L2 distance to the caller's earlier queries of the
same predicted class (adding the query to that class's set when the distance is
above the running mean minus one standard deviation), and raises an alarm when a
Shapiro-Wilk test finds those distances far from normal (W below `delta`).
Kept to `memory` queries per class and `memory` distances so it stays bounded.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from numpy.typing import NDArray
from scipy.stats import shapiro

MIN_DISTANCES = 20


class Prada:
    """One caller's PRADA detector."""

    def __init__(self, *, delta: float = 0.9, memory: int = 512) -> None:
        self.delta = delta
        self._growing: dict[int, deque[NDArray[np.float64]]] = {}
        self._distances: deque[float] = deque(maxlen=memory)
        self._memory = memory
        self.statistic = 1.0  # the latest Shapiro-Wilk W

    def observe(self, x: NDArray[np.float64], label: int) -> bool:
        """Record one query and its predicted class; True when the caller is flagged."""
        growing = self._growing.setdefault(label, deque(maxlen=self._memory))
        if growing:
            nearest = float(np.sqrt(((np.asarray(growing) - x) ** 2).sum(axis=1)).min())
            distances = np.asarray(self._distances) if self._distances else np.array([nearest])
            if nearest > distances.mean() - distances.std():
                growing.append(x)
            self._distances.append(nearest)
        else:
            growing.append(x)
        if len(self._distances) < MIN_DISTANCES:
            return False
        values = np.asarray(self._distances)
        if np.ptp(values) == 0.0:
            self.statistic = 0.0
        else:
            self.statistic = float(shapiro(values).statistic)
        return self.statistic < self.delta
