"""Read a dataset into the one shape every screen works on.

Formats: CSV and Parquet (pyarrow, the `[data]` extra), NumPy arrays (`.npy`
features, or `.npz` with `X` and optionally `y`), and image folders (one
sub-folder per class; `.npy` images always, PNG/JPEG/BMP/GIF when Pillow is
installed). Row ids are the 0-based index of the row as read: data rows of a
table, the first axis of an array, the sorted files of an image folder.

Every kind of bad input is refused here with its own code (E140-E144), so the
screens only ever see a consistent dataset: 2-D float features, one label per
row (or none), and the text columns as Python strings.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mlwarden._npz import MAX_NPZ_BYTES, check_npz_size
from mlwarden.errors import (
    DatasetShapeError,
    EmptyDatasetError,
    LimitExceededError,
    MalformedInputError,
    MissingExtraError,
    MissingLabelError,
    MixedTypesError,
    PathNotFoundError,
    RowTooLargeError,
    UnreadableInputError,
    UnsupportedFormatError,
)

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
ARRAY_SUFFIXES = (".npy", ".npz")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
IMAGE_SUFFIXES = (".npy", *PIL_SUFFIXES)
# The label column used when none is named, in this order of preference.
DEFAULT_LABELS = ("label", "target", "class", "y")
# One CSV row larger than this is refused (E144) rather than read.
DEFAULT_MAX_ROW_BYTES = 16 * 1024 * 1024
# A text column whose values are numbers this often, and not always, is "mixed".
_MIXED_SHARE = 0.9

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class Dataset:
    """A dataset as the screens see it.

    `features` holds the numeric columns (or flattened images) as float64, NaN
    replaced by the column's median so distances stay defined. `labels` are the
    class indices into `classes` (the labels as given, as strings). `text` holds
    every string column, None for a missing cell. `source` keeps what the writers
    need to write rows back in the input's own format.
    """

    path: Path
    kind: str
    rows: int
    features: FloatArray
    feature_names: tuple[str, ...]
    labels: npt.NDArray[np.int64] | None = None
    classes: tuple[str, ...] = ()
    label_name: str | None = None
    text: Mapping[str, list[str | None]] = field(default_factory=dict)
    files: tuple[Path, ...] = ()
    source: Any = None
    filled_cells: int = 0
    """Numeric cells that were missing (empty, NaN or infinite) and hold the median."""

    @property
    def has_labels(self) -> bool:
        return self.labels is not None


def kind_of(path: Path) -> str:
    """The dataset kind of a path: csv, parquet, npy, npz or images (a folder)."""
    if not path.exists():
        raise PathNotFoundError(f"{path} does not exist")
    if path.is_dir():
        return "images"
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in ARRAY_SUFFIXES:
        return suffix[1:]
    raise UnsupportedFormatError(
        f"{path}: not a dataset mlwarden reads",
        hint="give a .csv, .parquet, .npy or .npz file, or a folder of one folder per class",
    )


def load_dataset(
    path: Path,
    *,
    label: str | None = None,
    max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
) -> Dataset:
    """Read PATH whole; `label` names the label column (default: label/target/class/y)."""
    path = Path(path)
    kind = kind_of(path)
    if kind in ("csv", "parquet"):
        table = read_table(path, kind, max_row_bytes=max_row_bytes)
        return from_table(path, kind, table, label=label)
    if kind == "images":
        return _read_images(path)
    return _read_arrays(path, kind, label=label)


def dataset_file(folder: Path) -> Path:
    """The dataset inside a signed dataset folder: its one data file, else the folder."""
    candidates = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in (*TABLE_SUFFIXES, *ARRAY_SUFFIXES)
    )
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        return folder
    names = ", ".join(p.name for p in candidates)
    raise UnsupportedFormatError(
        f"{folder} holds more than one data file ({names})",
        hint="give the file itself, or a folder holding exactly one",
    )


# --- tables --------------------------------------------------------------------


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise MissingExtraError("pyarrow", "data") from None
    return pyarrow


def read_table(path: Path, kind: str, *, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES) -> Any:
    """A pyarrow Table of PATH, with every read failure turned into its input error."""
    pa = _pyarrow()
    if path.stat().st_size == 0:
        raise EmptyDatasetError(f"{path} is empty")
    try:
        if kind == "csv":
            from pyarrow import csv

            options = csv.ReadOptions(block_size=max(max_row_bytes, 1 << 20))
            table = csv.read_csv(path, read_options=options)
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
    except pa.ArrowInvalid as exc:
        raise _arrow_error(path, exc) from None
    except OSError as exc:
        raise UnreadableInputError(f"cannot read {path}: {exc}") from None
    return table


def iter_table_batches(
    path: Path, kind: str, *, chunk_rows: int, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES
) -> Iterator[Any]:
    """pyarrow RecordBatches of about `chunk_rows` rows: the file is never read whole."""
    pa = _pyarrow()
    if path.stat().st_size == 0:
        raise EmptyDatasetError(f"{path} is empty")
    try:
        if kind == "csv":
            from pyarrow import csv

            block = max(max_row_bytes, 1 << 20)
            reader = csv.open_csv(path, read_options=csv.ReadOptions(block_size=block))
            pending: list[Any] = []
            count = 0
            for batch in reader:
                pending.append(batch)
                count += batch.num_rows
                while count >= chunk_rows:
                    # One read block may hold many chunks: hand them on chunk_rows at a time.
                    table = pa.Table.from_batches(pending)
                    yield table.slice(0, chunk_rows).combine_chunks()
                    rest = table.slice(chunk_rows)
                    pending, count = rest.to_batches(), rest.num_rows
            if count:
                yield pa.Table.from_batches(pending).combine_chunks()
        else:
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                yield pa.Table.from_batches([batch])
    except pa.ArrowInvalid as exc:
        raise _arrow_error(path, exc) from None
    except OSError as exc:
        raise UnreadableInputError(f"cannot read {path}: {exc}") from None


def _arrow_error(path: Path, exc: Exception) -> Exception:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "straddl" in text or "block size" in text:
        return RowTooLargeError(
            f"{path}: a row is larger than the reader's limit",
            hint="raise --max-row-bytes if the row is genuine",
        )
    if "In CSV column" in text or "conversion error" in text.lower():
        return MixedTypesError(f"{path}: {text}")
    if "Empty CSV file" in text:
        return EmptyDatasetError(f"{path} is empty")
    return MalformedInputError(f"{path}: {text}")


def from_table(path: Path, kind: str, table: Any, *, label: str | None) -> Dataset:
    """Split a pyarrow Table into numeric features, labels and text columns."""
    import pyarrow.types as pat

    if table.num_rows == 0:
        raise EmptyDatasetError(f"{path} has no data rows")
    names = [str(n) for n in table.column_names]
    label_name = _label_column(path, names, label)
    numeric: list[tuple[str, FloatArray]] = []
    text: dict[str, list[str | None]] = {}
    for name in names:
        if name == label_name:
            continue
        column = table.column(name)
        kind_of_column = column.type
        if pat.is_integer(kind_of_column) or pat.is_floating(kind_of_column):
            numeric.append((name, column.to_numpy(zero_copy_only=False).astype(np.float64)))
        elif pat.is_boolean(kind_of_column):
            values = column.cast("int8").to_numpy(zero_copy_only=False)
            numeric.append((name, np.asarray(values, dtype=np.float64)))
        elif pat.is_null(kind_of_column):
            continue
        else:
            strings = [None if v is None else str(v) for v in column.to_pylist()]
            _refuse_mixed(path, name, strings)
            text[name] = strings
    missing = sum(int((~np.isfinite(v)).sum()) for _, v in numeric)
    features = (
        np.column_stack([_filled(v) for _, v in numeric])
        if numeric
        else np.zeros((table.num_rows, 0), dtype=np.float64)
    )
    labels: npt.NDArray[np.int64] | None = None
    classes: tuple[str, ...] = ()
    if label_name is not None:
        labels, classes = _encode_labels(path, label_name, table.column(label_name).to_pylist())
    return Dataset(
        path=path,
        kind=kind,
        rows=int(table.num_rows),
        features=features,
        feature_names=tuple(n for n, _ in numeric),
        labels=labels,
        classes=classes,
        label_name=label_name,
        filled_cells=missing,
        text=text,
        source=table,
    )


def _label_column(path: Path, names: list[str], label: str | None) -> str | None:
    if label is not None:
        if label not in names:
            shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
            raise MissingLabelError(
                f"{path} has no column {label!r}", hint=f"its columns are: {shown}"
            )
        return label
    return next((n for n in DEFAULT_LABELS if n in names), None)


def _filled(values: npt.NDArray[Any]) -> FloatArray:
    out = np.asarray(values, dtype=np.float64)
    missing = ~np.isfinite(out)
    if missing.any():
        # A missing cell becomes the column's median: distances stay defined, no row is lost.
        fill = float(np.median(out[~missing])) if (~missing).any() else 0.0
        out = np.where(missing, fill, out)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _refuse_mixed(path: Path, name: str, values: list[str | None]) -> None:
    """A column of numbers with a few words in it: most likely a broken export, refused."""
    present = [v for v in values if v not in (None, "")]
    if not present:
        return
    sample = present[:10_000]
    numeric = sum(1 for v in sample if _is_number(v))
    if numeric == len(sample) or numeric < _MIXED_SHARE * len(sample):
        return
    row = next(i for i, v in enumerate(values) if v not in (None, "") and not _is_number(v))
    raise MixedTypesError(
        f"{path}: column {name!r} holds numbers and text (row {row}: {values[row]!r:.40})",
        hint="fix the column, or quote it all as text",
    )


def _encode_labels(
    path: Path, name: str, values: list[Any]
) -> tuple[npt.NDArray[np.int64], tuple[str, ...]]:
    missing = next((i for i, v in enumerate(values) if v is None or v == ""), None)
    if missing is not None:
        raise MissingLabelError(f"{path}: row {missing} has no value in label column {name!r}")
    kinds = {type(v) for v in values}
    if len(kinds) > 1 and not kinds <= {int, float}:
        raise MixedTypesError(f"{path}: label column {name!r} mixes types")
    text = [_label_text(v) for v in values]
    classes = tuple(sorted(set(text), key=_class_order))
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[t] for t in text], dtype=np.int64), classes


def _label_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _class_order(name: str) -> tuple[int, float, str]:
    # Numeric labels sort as numbers (2 before 10), others as text.
    try:
        return (0, float(name), "")
    except ValueError:
        return (1, 0.0, name)


# --- arrays --------------------------------------------------------------------


def _load_numpy(path: Path) -> Any:
    try:
        with path.open("rb") as handle:
            magic = handle.read(6)
    except OSError as exc:
        raise UnreadableInputError(f"cannot read {path}: {exc.strerror}") from None
    if not magic:
        raise EmptyDatasetError(f"{path} is empty")
    # Only NumPy's own formats: without this, np.load would read the bytes as a pickle.
    if not magic.startswith((b"\x93NUMPY", b"PK\x03\x04")):
        raise MalformedInputError(f"{path} is not a NumPy .npy or .npz file")
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise MixedTypesError(
                f"{path} holds Python objects, not numbers", hint="save a numeric array"
            ) from None
        raise MalformedInputError(f"{path}: {exc}") from None
    except (OSError, EOFError) as exc:
        if path.stat().st_size == 0:
            raise EmptyDatasetError(f"{path} is empty") from None
        raise MalformedInputError(f"{path} is not a NumPy file: {exc}") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        # An archive is decompressed member by member on access: refuse a zip bomb first.
        try:
            check_npz_size(loaded, path, LimitExceededError, MAX_NPZ_BYTES)
        except LimitExceededError:
            loaded.close()
            raise
    return loaded


def _read_arrays(path: Path, kind: str, *, label: str | None) -> Dataset:
    loaded = _load_numpy(path)
    if kind == "npy":
        if label is not None:
            raise MissingLabelError(
                f"{path} is one array: it has no label {label!r}",
                hint="save features and labels together: np.savez(path, X=X, y=y)",
            )
        return _from_arrays(path, kind, np.asarray(loaded), None, source=None)
    with loaded as archive:
        keys = list(archive.files)
        if "X" not in keys:
            raise MalformedInputError(
                f"{path} has no array 'X' (it has {', '.join(keys) or 'none'})",
                hint="save features and labels together: np.savez(path, X=X, y=y)",
            )
        x = _member(path, archive, "X")
        wanted = label or "y"
        if label is not None and label not in keys:
            raise MissingLabelError(f"{path} has no array {label!r}")
        y = _member(path, archive, wanted) if wanted in keys else None
        extra = {k: _member(path, archive, k) for k in keys if k not in ("X", wanted)}
    return _from_arrays(
        path, kind, x, y, source=extra, label_name=wanted if y is not None else None
    )


def _member(path: Path, archive: Any, key: str) -> npt.NDArray[Any]:
    """One array of an .npz: its members are read only now, so their errors surface here."""
    try:
        return np.asarray(archive[key])
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise MixedTypesError(
                f"{path}: array {key!r} holds Python objects, not numbers",
                hint="save a numeric array",
            ) from None
        raise MalformedInputError(f"{path}: array {key!r}: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise MalformedInputError(f"{path}: array {key!r} cannot be read: {exc}") from None


def _from_arrays(
    path: Path,
    kind: str,
    x: npt.NDArray[Any],
    y: npt.NDArray[Any] | None,
    *,
    source: Any,
    label_name: str | None = None,
) -> Dataset:
    if x.dtype.kind not in "biuf":
        raise MixedTypesError(f"{path}: features are {x.dtype}, not numbers")
    if x.ndim == 1:
        raise DatasetShapeError(
            f"{path}: features are 1-D {x.shape}", hint="features are rows x columns"
        )
    if x.ndim == 0 or x.shape[0] == 0:
        raise EmptyDatasetError(f"{path} has no rows")
    original_shape = x.shape
    features = x.reshape(x.shape[0], -1).astype(np.float64)
    missing = int((~np.isfinite(features)).sum())
    if missing:
        features = np.column_stack([_filled(c) for c in features.T])
    labels: npt.NDArray[np.int64] | None = None
    classes: tuple[str, ...] = ()
    if y is not None:
        if y.ndim != 1:
            raise DatasetShapeError(f"{path}: labels are {y.ndim}-D {y.shape}, not one per row")
        if y.shape[0] != features.shape[0]:
            raise DatasetShapeError(
                f"{path}: {features.shape[0]} rows of features but {y.shape[0]} labels"
            )
        if y.dtype.kind not in "biufUS":
            raise MixedTypesError(f"{path}: labels are {y.dtype}")
        labels, classes = _encode_labels(path, label_name or "y", y.tolist())
    return Dataset(
        path=path,
        kind=kind,
        rows=int(features.shape[0]),
        features=features,
        feature_names=tuple(f"x{i}" for i in range(features.shape[1])),
        labels=labels,
        classes=classes,
        label_name=label_name,
        source={"X": x, "y": y, "extra": source or {}, "shape": original_shape},
        filled_cells=missing,
    )


# --- image folders -------------------------------------------------------------


def _read_images(folder: Path) -> Dataset:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.is_symlink())
    files: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        for item in sorted((folder / name).iterdir()):
            # Symbolic links are skipped: an image folder holds its own images.
            if item.is_file() and not item.is_symlink() and item.suffix.lower() in IMAGE_SUFFIXES:
                files.append(item)
                labels.append(index)
    if not files:
        raise EmptyDatasetError(
            f"{folder} holds no images",
            hint="one sub-folder per class, with .npy (or, with Pillow, .png/.jpg) files",
        )
    pixels = [_read_image(p) for p in files]
    shape = pixels[0].shape
    for path, image in zip(files, pixels, strict=True):
        if image.shape != shape:
            raise DatasetShapeError(
                f"{path} is {image.shape}, but {files[0]} is {shape}",
                hint="resize the images to one shape",
            )
    x = np.stack(pixels).reshape(len(files), -1).astype(np.float64)
    return Dataset(
        path=folder,
        kind="images",
        rows=len(files),
        features=x,
        feature_names=tuple(f"px{i}" for i in range(x.shape[1])),
        labels=np.array(labels, dtype=np.int64),
        classes=tuple(classes),
        label_name="folder",
        files=tuple(files),
        source={"shape": shape},
    )


def _read_image(path: Path) -> npt.NDArray[Any]:
    if path.suffix.lower() == ".npy":
        image = np.asarray(_load_numpy(path))
        if image.dtype.kind not in "biuf":
            raise MixedTypesError(f"{path}: pixels are {image.dtype}, not numbers")
        return image
    try:
        from PIL import Image
    except ImportError:
        raise MissingExtraError("pillow", "data") from None
    try:
        with Image.open(path) as opened:
            # Scaled to [0, 1]: 8-bit pixels as the floats people save from arrays.
            mode = "L" if opened.mode in ("1", "L", "P") else "RGB"
            return np.asarray(opened.convert(mode), dtype=np.float64) / 255.0
    except (OSError, Image.DecompressionBombError) as exc:
        raise MalformedInputError(f"{path} is not a readable image: {exc}") from None
