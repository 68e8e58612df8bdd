"""Cohorts for the federated tests: seeded honest updates around one direction, and
attackers made from them the way the benchmark's attackers are."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

Cohort = dict[str, dict[str, NDArray[np.float32]]]


def honest_cohort(n: int, seed: int = 0) -> Cohort:
    """n updates that agree in direction (a shared mean) with independent noise."""
    rng = np.random.default_rng(seed)
    direction_w = rng.normal(0.0, 1.0, (16, 4))
    direction_b = rng.normal(0.0, 1.0, 4)
    return {
        f"c{i:02d}": {
            "w": (direction_w + rng.normal(0.0, 0.5, (16, 4))).astype(np.float32),
            "b": (direction_b + rng.normal(0.0, 0.5, 4)).astype(np.float32),
        }
        for i in range(n)
    }


@pytest.fixture
def cohort() -> Cohort:
    return honest_cohort(12)
