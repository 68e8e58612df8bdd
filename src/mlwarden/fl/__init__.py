"""Robust aggregation and screening of federated client updates.

>>> from mlwarden.fl import aggregate, screen
>>> screening = screen(deltas, threshold=5.0, round=7, audit=log)   # quarantine outliers
>>> kept = {c: deltas[c] for c in screening.accepted}
>>> step = aggregate(kept, "trimmed_mean", trim=0.2, clip="median")

An `Update` is one client's tensors by name: `dict[str, numpy.ndarray]` or a PyTorch
state dict (`dict[str, torch.Tensor]`); a cohort is `{client_id: update}` or a list of
updates. Every update must have the same names, shapes and dtypes (E190), finite values
(E191), and at least one non-empty tensor (E192); parameters that do not fit the cohort,
or that the rule would ignore (`trim` for "median"), are E193, anything that is not an
update E194. Results have the names, dtypes and kind (NumPy or
torch, on the first update's device) of the first update.

`aggregate(updates, rule, *, weights, trim, f, m, clip)`:
- `"mean"`: FedAvg, weighted by `weights` (samples per client); no robustness at all.
- `"median"`: coordinate-wise median; robust while fewer than half the clients attack.
- `"trimmed_mean"`: drops `floor(trim * n)` values at each end of each coordinate
  (`trim` defaults to 0.1).
- `"krum"` / `"multi_krum"`: the update(s) closest to their n - f - 2 nearest neighbours;
  needs n >= 2f + 3 (`f` defaults to the largest such f), multi-Krum averages `m` of them.
- `clip=C` or `clip="median"`: every update is first scaled to an L2 norm of at most C
  (or the cohort's median norm); combine it with any rule. Pass deltas (client weights
  minus global weights), not weights, when clipping or screening.

`screen(updates, *, threshold=5.0, round=0, audit=None, model=None) -> Screening` scores
each client (norm, cosine distance to the cohort's median and to the others, sign
agreement) as one-sided robust z-scores (median/MAD) and quarantines those past the
threshold; each quarantine becomes an audit event (kind `fl.quarantine`) when `audit` is
an `AuditLog` or `BatchedAuditWriter`, and `Screening.findings()` gives FL001-FL004.
The core never trains and never prints: it decides on the updates it is given.
`fl_demo(workdir)` runs the federated part of `mlwarden demo` and returns its lines.
"""

from mlwarden.fl._aggregate import RULES, Rule, aggregate
from mlwarden.fl._cohort import Cohort, Update
from mlwarden.fl._demo import FlDemoResult, fl_demo
from mlwarden.fl._screen import FEATURES, ClientScore, Screening, screen

__all__ = [
    "FEATURES",
    "RULES",
    "ClientScore",
    "Cohort",
    "FlDemoResult",
    "Rule",
    "Screening",
    "Update",
    "aggregate",
    "fl_demo",
    "screen",
]
