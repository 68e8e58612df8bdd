"""The `update` section of `mlwarden.yaml` (boundary model, pydantic, extra=forbid).

Every threshold of `mlwarden update check` lives here with a safe default, so an
`mlwarden.yaml` without the section still gates (fail closed, never a vacuous pass).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class UpdateConfig(BaseModel):
    """The `update` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    expect: Literal["fine-tune", "retrain", "any"] = "fine-tune"
    """What an update may be: a fine-tune keeps the architecture and hyperparameters and
    stays near the old weights; a retrain keeps the architecture; any allows both changed."""

    max_accuracy_drop: float = Field(default=0.02, ge=0, le=1)
    """Largest drop in canary accuracy (absolute, 0.02 = 2 points)."""
    max_class_accuracy_drop: float = Field(default=0.10, ge=0, le=1)
    """Largest drop in the accuracy of any one class."""
    max_flip_rate: float = Field(default=0.10, ge=0, le=1)
    """Largest share of canary rows whose predicted class changes."""
    max_flips_into_one_class: float = Field(default=0.03, ge=0, le=1)
    """Largest share of canary rows that flip from a correct prediction into one class."""
    min_agreement: float = Field(default=0.90, ge=0, le=1)
    """Smallest share of canary rows on which both versions predict the same class."""
    max_confidence_drop: float = Field(default=0.10, ge=0, le=1)
    """Largest drop of the mean probability given to the true class."""

    max_relative_change: float = Field(default=3.0, gt=0)
    """Largest ||new - old|| / ||old|| of one tensor for a fine-tune."""
    min_cosine: float = Field(default=0.0, ge=-1, le=1)
    """Smallest cosine between a tensor's old and new values for a fine-tune (a
    sign-flipped layer has cosine -1)."""
    max_norm_ratio: float = Field(default=2.5, gt=1)
    """Largest ||new|| / ||old|| (or its inverse) of one tensor for a fine-tune."""

    trigger_search: bool = True
    """Run the differential trigger search on the new version."""
    anomaly_index: float = Field(default=10.0, gt=0)
    """A class whose trigger share's anomaly index (MAD, floored at 0.02) exceeds this is
    flagged. With the old-lean null most classes share near 0, so the floor rules and 10
    means about 0.2 above the median class (bench/update_check.py)."""
    min_trigger_success: float = Field(default=0.25, gt=0, le=1)
    """A flagged class also needs its pattern to hijack at least this share of the canary
    rows the old version does not send to it (the new version sends them there stamped,
    the old version neither does nor leans to it)."""
    max_old_lean: float = Field(default=1.0, ge=0)
    """A stamped row counts as hijacked only if the stamp raises the old version's
    log-odds for the target (against its median class) by at most this many nats: an
    association the old version already has is not a trigger."""
    old_lean_swing: float = Field(default=0.4, ge=0)
    """Where a stamp sends the old version far outside the data (its per-class rises
    deviate from their median by tens of nats, typically on a near-constant feature
    amplified by a scaler), a lean of `max_old_lean` is noise, not an association: the
    tolerance grows to this share of that deviation (median over classes). 0 keeps the
    tolerance at `max_old_lean`."""
    trigger_features: int = Field(default=4, ge=1, le=32)
    """Largest pattern (features stamped) the search grows per class."""
    trigger_rows: int = Field(default=100, ge=10, le=100_000)
    """Canary rows the trigger search stamps (the first rows of a stratified order)."""
    representation_screen: bool = False
    """Run the data screen's backdoor search on the canary in the new model's
    representation space."""

    min_canary_rows: int = Field(default=50, ge=1)
    """Fewer canary rows than this cannot decide anything: refused (E185)."""
    torch_activation: Literal["relu", "tanh", "sigmoid"] = "relu"
    """The activation between the Linear layers of a PyTorch state dict."""
