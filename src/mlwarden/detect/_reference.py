"""The detector reference: everything a Monitor needs, thresholds included.

Stored as ONE `.npz` file read with `allow_pickle=False`: the arrays, plus the
metadata as a JSON document kept in a uint8 array under the key `meta`. One file
so it can be signed and verified like the model it belongs to; no pickle so that
loading a reference never runs code.

Format versions: 2 adds `cal_trust` (the kNN trust score of the adversarial
detector). Version 1 files still load and score as they were calibrated: without
that term.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlwarden._npz import read_npz
from mlwarden.detect._signal import Signal
from mlwarden.errors import OutputError, ReferenceDataError

FORMAT = "mlwarden-detect-reference"
VERSION = 2
READABLE_VERSIONS = (1, 2)
MAX_BYTES = 256 * 1024 * 1024

_ARRAYS = (
    "center",
    "inv_scale",
    "bank",
    "bank_labels",
    "projection",
    "class_prior",
    "cal_distance",
    "cal_lid",
    "cal_disagree",
    "cal_squeeze",
    "cal_margin",
    "cal_nearest",
    "cal_trust",
)
# Arrays a file of each format version must hold.
_REQUIRED = {1: tuple(a for a in _ARRAYS if a != "cal_trust"), 2: _ARRAYS}


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Reference:
    """Fitted detector reference for one model (see `fit_reference`).

    The `cal_*` arrays are sorted benign calibration scores: per-request scores
    become conformal p-values against them. `thresholds` are the documented
    decision points: a stream or request whose score reaches one raises its signal.
    """

    n_features: int
    n_classes: int
    k: int
    image_shape: tuple[int, int] | None
    value_range: tuple[float, float] | None
    squeeze_bits: int
    power: float  # Beta(power, 1) alternative of the extraction evidence
    near_distance: float  # projected distance under which a query is "near-identical"
    center: NDArray[np.float64]
    inv_scale: NDArray[np.float64]
    bank: NDArray[np.float64]
    bank_labels: NDArray[np.int64]
    projection: NDArray[np.float64]
    class_prior: NDArray[np.float64]
    cal_distance: NDArray[np.float64]
    cal_lid: NDArray[np.float64]
    cal_disagree: NDArray[np.float64]
    cal_squeeze: NDArray[np.float64]
    cal_margin: NDArray[np.float64]
    cal_nearest: NDArray[np.float64]
    thresholds: Mapping[Signal, float]
    fit_info: Mapping[str, Any] = field(default_factory=dict)
    # Empty for version-1 references, whose adversarial threshold was set without it.
    cal_trust: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    bank_sq: NDArray[np.float64] = field(init=False)
    tails: Mapping[str, float] = field(init=False)  # exponential tail scales of cal_*

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds", MappingProxyType(dict(self.thresholds)))
        object.__setattr__(self, "fit_info", MappingProxyType(dict(self.fit_info)))
        object.__setattr__(self, "bank_sq", np.einsum("ij,ij->i", self.bank, self.bank))
        for name in _ARRAYS:
            getattr(self, name).setflags(write=False)
        from mlwarden.detect._scores import tail_scale

        tails = {
            name: tail_scale(getattr(self, name), upper=name != "cal_margin")
            for name in _ARRAYS
            if name.startswith("cal_") and getattr(self, name).shape[0] >= 10
        }
        object.__setattr__(self, "tails", MappingProxyType(tails))

    @property
    def uses_trust(self) -> bool:
        return "cal_trust" in self.tails  # a calibration long enough for its tail

    @property
    def uses_squeezing(self) -> bool:
        return self.image_shape is not None and self.cal_squeeze.shape[0] > 0

    def meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            # A version-1 reference (no trust term) is written back as version 1.
            "version": VERSION if self.uses_trust else 1,
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "k": self.k,
            "image_shape": list(self.image_shape) if self.image_shape else None,
            "value_range": list(self.value_range) if self.value_range else None,
            "squeeze_bits": self.squeeze_bits,
            "power": self.power,
            "near_distance": self.near_distance,
            "thresholds": {str(s): float(v) for s, v in self.thresholds.items()},
            "fit_info": dict(self.fit_info),
        }

    def save(self, path: Path) -> None:
        """Write the reference to `path` (an `.npz` file, no pickle)."""
        meta = json.dumps(self.meta(), sort_keys=True).encode()
        names = _REQUIRED[VERSION if self.uses_trust else 1]
        arrays = {name: getattr(self, name) for name in names}
        arrays["meta"] = np.frombuffer(meta, dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, allow_pickle=False, **arrays)
        try:
            path.write_bytes(buffer.getvalue())
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def fit_reference(
    x: NDArray[np.float64],
    y: NDArray[np.int64] | None,
    *,
    predict_proba: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    image_shape: tuple[int, int] | None = None,
    value_range: tuple[float, float] | None = None,
    target_false_alarm: float = 0.01,
    seed: int = 0,
) -> Reference:
    """Fit the detectors on the model's reference data (see `mlwarden.detect._fit`)."""
    from mlwarden.detect._fit import fit

    return fit(
        x,
        y,
        predict_proba=predict_proba,
        image_shape=image_shape,
        value_range=value_range,
        target_false_alarm=target_false_alarm,
        seed=seed,
    )


def _bad(path: Path, why: str) -> ReferenceDataError:
    return ReferenceDataError(
        f"detector reference {path}: {why}",
        hint="refit it with `mlwarden detect fit` for this model",
    )


def _as_float(arrays: Mapping[str, NDArray[Any]], name: str, ndim: int, path: Path) -> Any:
    value = arrays[name]
    if value.ndim != ndim or value.dtype.kind not in "fiu":
        raise _bad(path, f"array {name!r} has the wrong shape or type")
    out = np.ascontiguousarray(value, dtype=np.float64)
    if not np.all(np.isfinite(out)):
        raise _bad(path, f"array {name!r} holds non-finite values")
    return out


def _pair(value: Any, path: Path, name: str, kind: type) -> Any:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise _bad(path, f"{name} must be a pair")
    if not all(isinstance(v, kind | int) and not isinstance(v, bool) for v in value):
        raise _bad(path, f"{name} must hold numbers")
    return (kind(value[0]), kind(value[1]))


def load_reference(path: Path) -> Reference:
    """Read a reference written by `Reference.save`; anything wrong -> ReferenceDataError."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _bad(path, f"cannot be read ({exc.strerror or exc})") from None
    if size > MAX_BYTES:
        raise _bad(path, f"is larger than {MAX_BYTES} bytes")
    try:
        arrays = read_npz(path, error=ReferenceDataError)
    except ReferenceDataError as exc:
        detail = exc.message.removeprefix(f"{path}: ")
        raise _bad(path, f"is not a detector reference file: {detail}") from None
    if "meta" not in arrays:
        raise _bad(path, "lacks meta")
    try:
        meta = json.loads(arrays["meta"].astype(np.uint8).tobytes().decode())
    except (ValueError, UnicodeDecodeError):
        raise _bad(path, "its metadata is not JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _bad(path, "is not a detector reference file")
    version = meta.get("version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        readable = " and ".join(str(v) for v in READABLE_VERSIONS)
        raise _bad(path, f"has version {version!r}, this mlwarden reads versions {readable}")
    missing = [name for name in _REQUIRED[version] if name not in arrays]
    if missing:
        raise _bad(path, f"lacks {', '.join(missing)}")
    try:
        return _build(arrays, meta, path)
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(path, f"its metadata is invalid ({type(exc).__name__})") from None


def _build(arrays: Mapping[str, NDArray[Any]], meta: dict[str, Any], path: Path) -> Reference:
    d, n_classes, k = int(meta["n_features"]), int(meta["n_classes"]), int(meta["k"])
    ints = (meta["n_features"], meta["n_classes"], meta["k"], meta["squeeze_bits"])
    if any(not isinstance(v, int) or isinstance(v, bool) for v in ints):
        raise _bad(path, "its sizes are not integers")
    center = _as_float(arrays, "center", 1, path)
    inv_scale = _as_float(arrays, "inv_scale", 1, path)
    bank = _as_float(arrays, "bank", 2, path)
    projection = _as_float(arrays, "projection", 2, path)
    prior = _as_float(arrays, "class_prior", 1, path)
    labels = arrays["bank_labels"]
    if labels.dtype.kind not in "iu" or labels.shape != (bank.shape[0],):
        raise _bad(path, "bank labels do not match the bank")
    if (
        d < 1
        or n_classes < 2
        or center.shape != (d,)
        or inv_scale.shape != (d,)
        or bank.shape[1] != d
        or projection.shape[0] != d
        or prior.shape != (n_classes,)
        or not 1 < k <= bank.shape[0]
        or np.any(inv_scale <= 0)
        or labels.min(initial=0) < 0
        or labels.max(initial=0) >= n_classes
    ):
        raise _bad(path, "its arrays do not fit together (sizes, classes or neighbours)")
    cal = {}
    for name in _REQUIRED[int(meta["version"])]:
        if name.startswith("cal_"):
            values = _as_float(arrays, name, 1, path)
            if np.any(np.diff(values) < 0):
                raise _bad(path, f"calibration array {name!r} is not sorted")
            if name != "cal_squeeze" and values.shape[0] < 10:
                raise _bad(path, f"calibration array {name!r} is too short")
            cal[name] = values
    thresholds_raw = meta["thresholds"]
    thresholds = {Signal(key): float(value) for key, value in thresholds_raw.items()}
    if set(thresholds) != set(Signal) or not all(
        np.isfinite(v) and v > 0 for v in thresholds.values()
    ):
        raise _bad(path, "needs one positive threshold per signal")
    image_shape = _pair(meta["image_shape"], path, "image_shape", int)
    value_range = _pair(meta["value_range"], path, "value_range", float)
    if image_shape is not None and image_shape[0] * image_shape[1] != d:
        raise _bad(path, "its image shape does not match the number of features")
    power, near = float(meta["power"]), float(meta["near_distance"])
    if not (0 < power < 1 and near >= 0):
        raise _bad(path, "its evidence parameters are out of range")
    return Reference(
        n_features=d,
        n_classes=n_classes,
        k=k,
        image_shape=image_shape,
        value_range=value_range,
        squeeze_bits=int(meta["squeeze_bits"]),
        power=power,
        near_distance=near,
        center=center,
        inv_scale=inv_scale,
        bank=bank,
        bank_labels=labels.astype(np.int64),
        projection=projection,
        class_prior=prior,
        thresholds=thresholds,
        fit_info=dict(meta.get("fit_info") or {}),
        **cal,
    )
