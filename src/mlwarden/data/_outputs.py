"""Write the suspect rows aside (`--quarantine`) and the dataset without them (`--clean`).

Both keep the input's own format, so the cleaned dataset trains with the same
code as before. The quarantine adds two columns (`_row_id`, `_rules`) so each
row can be traced back to its findings; for an image folder it is a CSV list of
the images. The cleaned dataset is written into a new folder and signed with a
manifest (`mlwarden verify OUT --key PUB` checks it later, and `--baseline OUT`
trusts it for the next screen). CSV and Parquet are rewritten chunk by chunk.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlwarden.data._inputs import Dataset, iter_table_batches, load_dataset
from mlwarden.errors import OutputError, UsageError

Suspects = Mapping[int, Sequence[str]]


def _batches(dataset: Dataset | None, path: Path, kind: str, chunk_rows: int) -> Iterator[Any]:
    if dataset is not None and dataset.source is not None:
        yield dataset.source
        return
    yield from iter_table_batches(path, kind, chunk_rows=chunk_rows)


def _writer(target: Path, schema: Any) -> Any:
    suffix = target.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return pq.ParquetWriter(target, schema)
        from pyarrow import csv as pacsv

        return pacsv.CSVWriter(target, schema)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc}") from None


def _table_rows(
    path: Path,
    kind: str,
    dataset: Dataset | None,
    chunk_rows: int,
    target: Path,
    suspects: Suspects,
    *,
    keep_suspects: bool,
) -> int:
    """Copy the rows that are (or are not) suspects from the table into `target`."""
    import pyarrow as pa

    writer = None
    written = offset = 0
    flagged = np.fromiter(suspects, dtype=np.int64, count=len(suspects))
    try:
        for table in _batches(dataset, path, kind, chunk_rows):
            ids = np.arange(offset, offset + table.num_rows)
            offset += table.num_rows
            mask = np.isin(ids, flagged)
            chosen = ids[mask if keep_suspects else ~mask]
            part = table.take(pa.array(chosen - (offset - table.num_rows)))
            if keep_suspects:
                rules = [";".join(sorted(set(suspects[int(i)]))) for i in chosen]
                part = part.append_column("_row_id", pa.array(chosen, type=pa.int64()))
                part = part.append_column("_rules", pa.array(rules, type=pa.string()))
            if writer is None:
                writer = _writer(target, part.schema)
            writer.write_table(part)
            written += part.num_rows
    finally:
        if writer is not None:
            writer.close()
    return written


def write_quarantine(
    path: Path,
    kind: str,
    suspects: Suspects,
    target: Path,
    *,
    dataset: Dataset | None = None,
    chunk_rows: int = 50_000,
) -> int:
    """Write the suspect rows to `target` (by its suffix: .csv, .parquet, .npz); count them."""
    if kind in ("csv", "parquet"):
        if target.suffix.lower() not in (".csv", ".parquet", ".pq"):
            raise UsageError(f"--quarantine {target}: a table quarantines to .csv or .parquet")
        return _table_rows(path, kind, dataset, chunk_rows, target, suspects, keep_suspects=True)
    data = dataset if dataset is not None else load_dataset(path)
    rows = np.array(sorted(suspects), dtype=np.int64)
    rules = np.array([";".join(sorted(set(suspects[int(i)]))) for i in rows], dtype=str)
    if kind == "images":
        if target.suffix.lower() != ".csv":
            raise UsageError(f"--quarantine {target}: an image folder quarantines to a .csv list")
        try:
            with target.open("w", newline="", encoding="utf-8") as handle:
                out = csv.writer(handle)
                out.writerow(["_row_id", "path", "label", "_rules"])
                labels = data.labels if data.labels is not None else np.zeros(data.rows, int)
                for row, rule in zip(rows.tolist(), rules.tolist(), strict=True):
                    out.writerow([row, data.files[row], data.classes[labels[row]], rule])
        except OSError as exc:
            raise OutputError(f"cannot write {target}: {exc}") from None
        return len(rows)
    if target.suffix.lower() != ".npz":
        raise UsageError(f"--quarantine {target}: an array quarantines to .npz")
    arrays = _array_parts(data, rows)
    _save_npz(target, {**arrays, "_row_id": rows, "_rules": rules})
    return len(rows)


def _array_parts(data: Dataset, rows: np.ndarray[Any, Any]) -> dict[str, Any]:
    source = data.source or {}
    parts: dict[str, Any] = {"X": np.asarray(source["X"])[rows]}
    if source.get("y") is not None:
        parts[data.label_name or "y"] = np.asarray(source["y"])[rows]
    return parts


def _save_npz(target: Path, arrays: Mapping[str, Any]) -> None:
    try:
        with target.open("wb") as handle:
            np.savez(handle, **arrays)
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {exc}") from None


def write_clean(
    path: Path,
    kind: str,
    suspects: Suspects,
    out: Path,
    *,
    key: Path,
    dataset: Dataset | None = None,
    chunk_rows: int = 50_000,
) -> tuple[int, Path]:
    """Write the dataset without the suspect rows into the new folder `out`, and sign it.

    Returns the number of rows kept and the manifest bundle's path (`OUT.sig`).
    """
    from mlwarden.signing import manifest

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--clean {out} exists and is not an empty folder")
    if not key.is_file():
        raise UsageError(f"--clean needs --key: a private key to sign {out} ({key} is no file)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out}: {exc}") from None
    if kind in ("csv", "parquet"):
        target = out / path.name
        kept = _table_rows(path, kind, dataset, chunk_rows, target, suspects, keep_suspects=False)
    else:
        data = dataset if dataset is not None else load_dataset(path)
        rows = np.setdiff1d(np.arange(data.rows), np.fromiter(suspects, dtype=np.int64))
        kept = len(rows)
        if kind == "images":
            _copy_images(data, rows, out)
        elif kind == "npy":
            try:
                np.save(out / path.name, np.asarray(data.source["X"])[rows])
            except OSError as exc:
                raise OutputError(f"cannot write {out / path.name}: {exc}") from None
        else:
            _save_npz(out / path.name, _array_parts(data, rows))
    return kept, manifest(out, key=key)


def _copy_images(data: Dataset, rows: np.ndarray[Any, Any], out: Path) -> None:
    for row in rows.tolist():
        source = data.files[row]
        target = out / source.parent.name / source.name
        try:
            target.parent.mkdir(exist_ok=True)
            shutil.copyfile(source, target)
        except OSError as exc:
            raise OutputError(f"cannot write {target}: {exc}") from None
