"""`mlwarden detect fit`: fit a model's runtime detectors on its reference data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click
import numpy as np
from numpy.typing import NDArray

from mlwarden._npz import read_npz
from mlwarden.errors import MalformedInputError, OutputError, PathNotFoundError, UsageError

_N = TypeVar("_N", int, float)


@click.group("detect")
def detect_group() -> None:
    """Runtime detectors: fit the reference the gateway's detectors score against."""


@detect_group.command("fit")
@click.option(
    "--model", "model", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="The signed model file (loaded through mlwarden.load: verified, scanned).",
)  # fmt: skip
@click.option(
    "--signature", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="The model's bundle (default: MODEL.sig).",
)  # fmt: skip
@click.option(
    "--key", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="The public key (PEM) the model must be signed with.",
)  # fmt: skip
@click.option(
    "--data", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="NPZ with the reference inputs `x` (n, features) and optionally labels `y`.",
)  # fmt: skip
@click.option("--image-shape", default=None, metavar="HxW", help="e.g. 8x8: enables squeezing.")
@click.option("--value-range", default=None, metavar="LO:HI", help="The inputs' range, e.g. 0:16.")
@click.option("--false-alarm", default=0.01, show_default=True, type=float,
              help="Target false-alarm rate of the thresholds.")  # fmt: skip
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0))
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the reference (then sign it: mlwarden sign OUT --key KEY).",
)  # fmt: skip
def fit_command(
    model: Path,
    signature: Path | None,
    key: Path,
    data: Path,
    image_shape: str | None,
    value_range: str | None,
    false_alarm: float,
    seed: int,
    out: Path,
) -> int:
    """Fit the detectors' reference for MODEL on DATA and write it to OUT."""
    from mlwarden.detect import fit_reference
    from mlwarden.loading import load

    shape = _pair(image_shape, "x", int, "--image-shape") if image_shape else None
    bounds = _pair(value_range, ":", float, "--value-range") if value_range else None
    if not 0 < false_alarm < 0.5:
        raise UsageError("--false-alarm must be between 0 and 0.5")
    if not out.parent.is_dir():  # checked before the fit, which takes seconds
        raise OutputError(f"cannot write {out}: no folder {out.parent}")
    x, y = read_reference_data(data)
    estimator = load(model, public_key=key, signature=signature)
    proba = getattr(estimator, "predict_proba", None)
    if not callable(proba):
        raise UsageError(f"{model}: the model has no predict_proba; detectors need probabilities")
    expected = getattr(estimator, "n_features_in_", None)
    if isinstance(expected, int) and expected != x.shape[1]:
        raise MalformedInputError(
            f"{data}: 'x' has {x.shape[1]} features per row, the model takes {expected}"
        )

    def predict_proba(rows: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(proba(rows), dtype=np.float64)

    reference = fit_reference(
        x,
        y,
        predict_proba=predict_proba,
        image_shape=shape,
        value_range=bounds,
        target_false_alarm=false_alarm,
        seed=seed,
    )
    reference.save(out)
    thresholds = ", ".join(f"{s}={v:.3g}" for s, v in sorted(reference.thresholds.items()))
    click.echo(f"wrote {out}: {x.shape[0]} rows, {reference.n_features} features, "
               f"{reference.n_classes} classes; thresholds {thresholds}")  # fmt: skip
    click.echo(f"next: mlwarden sign {out} --key PRIVATE_KEY, then declare it under 'detectors:'")
    return 0


def read_reference_data(path: Path) -> tuple[NDArray[np.float64], NDArray[np.int64] | None]:
    """`x` (2-d, finite numbers) and `y` (or None) from an NPZ file; E105 otherwise."""
    if not path.exists():
        raise PathNotFoundError(f"{path}: no such file")
    arrays = read_npz(path, error=MalformedInputError)
    x = arrays.get("x", arrays.get("X"))
    if x is None or x.ndim < 2 or x.dtype.kind not in "fiu" or x.size == 0:
        raise MalformedInputError(f"{path}: needs a numeric array 'x' of shape (rows, features)")
    x = np.ascontiguousarray(x.reshape(x.shape[0], -1), dtype=np.float64)
    if not np.isfinite(x).all():
        raise MalformedInputError(f"{path}: 'x' holds NaN or infinite values")
    y = arrays.get("y")
    if y is not None:
        if y.ndim != 1 or y.shape[0] != x.shape[0] or y.dtype.kind not in "iu":
            raise MalformedInputError(f"{path}: 'y' must be integer labels, one per row of 'x'")
        y = y.astype(np.int64)
    return x, y


def _pair(text: str, sep: str, kind: Callable[[str], _N], option: str) -> tuple[_N, _N]:
    parts = text.split(sep)
    try:
        if len(parts) != 2:
            raise ValueError
        return (kind(parts[0]), kind(parts[1]))
    except ValueError:
        raise UsageError(f"{option} {text!r} is not two numbers separated by {sep!r}") from None
