"""Screen a dataset before training on it: which rows not to trust, and why.

>>> from mlwarden.data import screen
>>> report = screen(Path("train.csv"), label="label", test=Path("test.csv"))
>>> [f.rule_id for f in report.findings]

`screen` returns a Report of DATA (poisoned, mislabeled, duplicated, leaked or
drifted rows) and PII (personal data) findings, each naming its rows.
`screen_rows` returns the same report with the suspect rows themselves, which
`write_quarantine` and `write_clean` take. Inputs are CSV and Parquet (the
`[data]` extra), NumPy `.npy`/`.npz` arrays and image folders; see `_inputs`.

Representation space: `embed=` takes a function from the feature matrix to a
representation (one row per row); the label, backdoor and outlier screens then run on
it. `model_embedding(model)` makes one from a model loaded with `mlwarden.load` (an
MLP's last hidden layer, a PyTorch Linear state dict's penultimate layer, otherwise
`predict_proba`/`decision_function`); `import_embedding("pkg.mod:fn")` imports a user's
function (that runs the user's code). Wrong output is refused with E145-E147.

The backdoor screen is public and stable for other callers (for example a model's
representations at an update gate): `find_backdoors(x, y) -> BackdoorResult` from
`mlwarden.data.screens`, re-exported here; `x` is rows by features (or by
representation dimensions), `y` one label per row; `result.rows` are the suspect rows,
`result.target` the suspected target class (None when nothing is found), and
`result.triggers` the features, source and target of each trigger found.

A baseline is trusted only once `mlwarden.signing.verify` accepts its
signature with the given key or trust policy; with neither, nothing is trusted
and the screen refuses (E208) rather than compare against unverified data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mlwarden.data._detectors import CHECKS, MODEL_CHECKS, run_detectors
from mlwarden.data._findings import (
    duplicate_findings,
    flag_findings,
    leakage_finding,
    pii_findings,
)
from mlwarden.data._inputs import (
    DEFAULT_MAX_ROW_BYTES,
    Dataset,
    dataset_file,
    from_table,
    iter_table_batches,
    kind_of,
    load_dataset,
)
from mlwarden.data._outputs import write_clean, write_quarantine
from mlwarden.data._pii import PiiHits, merge
from mlwarden.data._represent import import_embedding, model_embedding
from mlwarden.data._scale import (
    DEFAULT_CHUNK_ROWS,
    Chunk,
    ChunkResult,
    duplicate_groups,
    map_chunks,
    screen_chunk,
)
from mlwarden.data.screens.backdoors import BackdoorResult, Trigger, find_backdoors
from mlwarden.errors import DatasetShapeError, NotVerifiedError, UsageError
from mlwarden.policy import TrustPolicy
from mlwarden.report import Finding, ObjectResult, Report, Status

__all__ = [
    "CHECKS",
    "DEFAULT_CHUNK_ROWS",
    "BackdoorResult",
    "Dataset",
    "Screening",
    "Trigger",
    "find_backdoors",
    "import_embedding",
    "load_dataset",
    "model_embedding",
    "screen",
    "screen_rows",
    "write_clean",
    "write_quarantine",
]

Embed = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Screening:
    """A screen's report, and the suspect rows: row id -> the rule ids that flagged it."""

    report: Report
    suspects: Mapping[int, tuple[str, ...]]
    path: Path
    kind: str
    dataset: Dataset | None = None


def screen(path: Path, **options: Any) -> Report:
    """Screen the dataset at PATH; the options are `screen_rows`'s."""
    return screen_rows(path, **options).report


def screen_rows(
    path: Path,
    *,
    label: str | None = None,
    test: Path | None = None,
    baseline: Path | None = None,
    baseline_key: Path | None = None,
    trust: TrustPolicy | None = None,
    embed: Embed | None = None,
    checks: Collection[str] | None = None,
    near: float = 0.0,
    pii: bool = True,
    region: str = "US",
    workers: int = 1,
    dask: str | Any | None = None,
    stream: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
) -> Screening:
    """Run every screen the data allows; return the report and the suspect rows.

    `checks` chooses among CHECKS (default: all); `pii=False` drops "pii". `near` > 0
    also reports near duplicates and near leakage within that robustly scaled distance.
    `stream` reads a CSV or Parquet file chunk by chunk (`chunk_rows` rows) and
    runs only the row-local screens (personal data, exact duplicates, exact
    leakage), in bounded memory. `workers` > 1 or `dask` (a scheduler address or
    a `distributed.Client`) run those chunks in parallel. The model-based screens
    need the whole feature matrix and run in this process; `embed` maps features
    to the representation the label, backdoor and outlier screens run in (for
    example `model_embedding(mlwarden.load(...))`, a network's last hidden layer).
    """
    started = time.perf_counter()
    path = Path(path)
    chosen = set(CHECKS if checks is None else checks)
    unknown = chosen - set(CHECKS)
    if unknown:
        raise UsageError(
            f"unknown check(s) {', '.join(sorted(unknown))}",
            hint=f"choose from {', '.join(CHECKS)}",
        )
    if not pii:
        chosen.discard("pii")
    if near < 0:
        raise UsageError(f"the near-duplicate radius must not be negative, not {near}")
    if chunk_rows < 1:
        raise UsageError(f"chunk size must be at least 1 row, not {chunk_rows}")
    kind = kind_of(path)
    trusted = _trusted_baseline(baseline, baseline_key, trust, label) if baseline else None
    streaming = stream and kind in ("csv", "parquet")
    if streaming and embed is not None:
        # Streaming runs only the row-local screens: the representation would be ignored.
        raise UsageError(
            "a representation needs the whole dataset; it cannot be used when streaming",
            hint="drop --stream, or screen without --model/--embed",
        )
    dataset = None if streaming else load_dataset(path, label=label, max_row_bytes=max_row_bytes)
    location = str(path)

    pii_parts: list[tuple[PiiHits, ...]] = []
    digests: list[npt.NDArray[np.uint64]] = []
    shape_out: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    chunks = _shaped(
        _chunks(
            path,
            kind,
            dataset,
            label,
            chunk_rows,
            max_row_bytes,
            region,
            pii="pii" in chosen,
            digests=bool(chosen & {"duplicates", "leakage"}),
        ),
        shape_out,
    )
    for result in map_chunks(screen_chunk, chunks, workers=workers, dask=dask):
        _collect(result, pii_parts, digests)
    shape = shape_out[0] if shape_out else None
    rows = sum(len(d) for d in digests)

    findings: list[Finding] = []
    suspects: dict[int, set[str]] = {}
    hits = merge(pii_parts)
    findings += pii_findings(location, hits)
    for hit in hits:
        _flag(suspects, hit.rows.tolist(), hit.rule_id)
    groups = duplicate_groups(digests) if "duplicates" in chosen else {}
    findings += duplicate_findings(location, groups)
    for later in groups.values():
        _flag(suspects, later, "DATA004")
    if test is not None and "leakage" in chosen:
        leaked = _exact_leakage(digests, Path(test), shape, label, chunk_rows, max_row_bytes)
        findings += leakage_finding(location, str(test), leaked)
        _flag(suspects, leaked, "DATA006")

    if dataset is not None and (chosen & set(MODEL_CHECKS) or near > 0):
        test_data = (
            load_dataset(Path(test), label=label, max_row_bytes=max_row_bytes)
            if test is not None and near > 0
            else None
        )
        flags, extra = run_detectors(
            dataset,
            checks=chosen,
            baseline=trusted,
            test=test_data,
            near=near,
            embed=embed,
            workers=workers,
        )
        findings += flag_findings(dataset, flags)
        findings += extra
        for flag in flags:
            _flag(suspects, [flag.row], flag.rule_id)

    from mlwarden import __version__

    outcome = ObjectResult(
        path=location,
        status=Status.CHECKED,
        format=kind,
        findings=tuple(findings),
        size=rows,
        duration_s=time.perf_counter() - started,
    )
    report = Report(
        kind="data-screen",
        tool_version=__version__,
        results=(outcome,),
        duration_s=time.perf_counter() - started,
    )
    return Screening(
        report=report,
        suspects={row: tuple(sorted(rules)) for row, rules in sorted(suspects.items())},
        path=path,
        kind=kind,
        dataset=dataset,
    )


def _flag(suspects: dict[int, set[str]], rows: Any, rule_id: str) -> None:
    for row in rows:
        suspects.setdefault(int(row), set()).add(rule_id)


def _collect(
    result: ChunkResult,
    pii_parts: list[tuple[PiiHits, ...]],
    digests: list[npt.NDArray[np.uint64]],
) -> None:
    pii_parts.append(result.pii)
    digests.append(result.digests)


def _shaped(
    chunks: Iterator[tuple[Chunk, tuple[tuple[str, ...], tuple[str, ...]]]],
    shape_out: list[tuple[tuple[str, ...], tuple[str, ...]]],
) -> Iterator[Chunk]:
    """Pass chunks on, remembering the columns they have (all chunks must agree)."""
    for chunk, shape in chunks:
        if not shape_out:
            shape_out.append(shape)
        elif shape_out[0] != shape:
            raise DatasetShapeError(
                f"rows from {chunk.offset} on have other columns than the rows before them"
            )
        yield chunk


def _chunks(
    path: Path,
    kind: str,
    dataset: Dataset | None,
    label: str | None,
    chunk_rows: int,
    max_row_bytes: int,
    region: str,
    *,
    pii: bool,
    digests: bool = True,
) -> Iterator[tuple[Chunk, tuple[tuple[str, ...], tuple[str, ...]]]]:
    """Chunks of rows, each with its column names (numeric, text)."""
    if dataset is None:
        offset = 0
        for table in iter_table_batches(
            path, kind, chunk_rows=chunk_rows, max_row_bytes=max_row_bytes
        ):
            part = from_table(path, kind, table, label=label)
            yield _chunk(part, 0, part.rows, offset, region, pii, digests)
            offset += part.rows
        if offset == 0:
            from mlwarden.errors import EmptyDatasetError

            raise EmptyDatasetError(f"{path} has no data rows")
        return
    for start in range(0, dataset.rows, chunk_rows):
        stop = min(start + chunk_rows, dataset.rows)
        yield _chunk(dataset, start, stop, start, region, pii, digests)


def _chunk(
    data: Dataset, start: int, stop: int, offset: int, region: str, pii: bool, digests: bool
) -> tuple[Chunk, tuple[tuple[str, ...], tuple[str, ...]]]:
    text = {name: values[start:stop] for name, values in data.text.items()}
    chunk = Chunk(
        offset=offset,
        features=data.features[start:stop],
        text=text,
        region=region,
        pii=pii,
        digests=digests,
    )
    return chunk, (data.feature_names, tuple(data.text))


def _exact_leakage(
    train_digests: list[npt.NDArray[np.uint64]],
    test: Path,
    shape: tuple[tuple[str, ...], tuple[str, ...]] | None,
    label: str | None,
    chunk_rows: int,
    max_row_bytes: int,
) -> list[int]:
    """Rows of the training data whose values (label aside) are exactly a test row's."""
    test_kind = kind_of(test)
    test_data = (
        None
        if test_kind in ("csv", "parquet")
        else load_dataset(test, label=label, max_row_bytes=max_row_bytes)
    )
    seen: set[int] = set()
    test_shape: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    chunks = _chunks(test, test_kind, test_data, label, chunk_rows, max_row_bytes, "US", pii=False)
    for chunk in _shaped(chunks, test_shape):
        seen.update(screen_chunk(chunk).digests.tolist())
    if shape is not None and test_shape and test_shape[0] != shape:
        raise DatasetShapeError(
            f"{test} has other columns than the data it is the test split of",
            hint="give the test split of the same table",
        )
    rows: list[int] = []
    offset = 0
    for block in train_digests:
        hits = np.flatnonzero(np.isin(block, np.fromiter(seen, dtype=np.uint64, count=len(seen))))
        rows.extend((hits + offset).tolist())
        offset += len(block)
    return rows


def _trusted_baseline(
    folder: Path,
    public_key: Path | None,
    trust: TrustPolicy | None,
    label: str | None,
) -> Dataset:
    """The baseline dataset, once its signature verifies; refused (E208) otherwise."""
    from mlwarden.signing import verify

    folder = Path(folder)
    result = verify(folder, public_key=public_key, trust=trust)
    if not result.verified:
        first = result.report.findings[0] if result.report.findings else None
        why = f"{first.rule_id}: {first.message}" if first else "no trusted signature"
        raise NotVerifiedError(
            f"baseline {folder} is not verified ({why})",
            hint="sign it with `mlwarden data manifest`, and give --baseline-key or --trust",
        )
    return load_dataset(dataset_file(folder), label=label)
