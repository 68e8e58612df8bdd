"""--quarantine writes the suspect rows, --clean the rest, signed; both keep the format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.data.conftest import ROW_LOCAL

from mlwarden.data import load_dataset, screen_rows, write_clean, write_quarantine
from mlwarden.errors import UsageError
from mlwarden.signing import verify


def test_csv_quarantine_and_clean_partition_the_rows(
    tmp_path: Path, people_csv: Path, keys: tuple[Path, Path]
) -> None:
    private, public = keys
    result = screen_rows(people_csv, checks=ROW_LOCAL)
    quarantine = tmp_path / "q.csv"
    count = write_quarantine(people_csv, result.kind, result.suspects, quarantine)
    assert count == len(result.suspects) == 8
    aside = load_dataset(quarantine, label="label")
    assert aside.text["_rules"][0] == "PII001"
    assert aside.features[:, aside.feature_names.index("_row_id")].tolist() == sorted(
        result.suspects
    )
    kept, bundle = write_clean(
        people_csv, result.kind, result.suspects, tmp_path / "clean", key=private
    )
    assert kept == 40 - 8
    assert bundle == tmp_path / "clean.sig"
    cleaned = tmp_path / "clean" / "people.csv"
    again = screen_rows(cleaned, checks=ROW_LOCAL)
    assert again.suspects == {}
    assert verify(tmp_path / "clean", public_key=public).verified
    cleaned.write_text(cleaned.read_text() + "99,1,1.0,planted,1\n")
    assert not verify(tmp_path / "clean", public_key=public).verified


def test_streamed_outputs_equal_the_in_memory_ones(
    tmp_path: Path, people_csv: Path, keys: tuple[Path, Path]
) -> None:
    whole = screen_rows(people_csv, checks=ROW_LOCAL)
    streamed = screen_rows(people_csv, stream=True, chunk_rows=7, checks=ROW_LOCAL)
    assert streamed.suspects == whole.suspects
    assert streamed.dataset is None
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    write_quarantine(people_csv, "csv", whole.suspects, a, dataset=whole.dataset)
    write_quarantine(people_csv, "csv", streamed.suspects, b, chunk_rows=7)
    import pyarrow.parquet as pq

    assert pq.read_table(a).equals(pq.read_table(b))


def test_npz_quarantine_and_clean(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    x = np.arange(30, dtype=np.int32).reshape(10, 3)
    x[7] = x[1]
    path = tmp_path / "d.npz"
    np.savez(path, X=x, y=np.arange(10) % 2)
    result = screen_rows(path, checks=ROW_LOCAL)
    write_quarantine(path, result.kind, result.suspects, tmp_path / "q.npz", dataset=result.dataset)
    with np.load(tmp_path / "q.npz") as aside:
        assert aside["_row_id"].tolist() == [7]
        assert aside["X"].dtype == np.int32
    kept, _ = write_clean(path, result.kind, result.suspects, tmp_path / "out", key=keys[0])
    assert kept == 9
    with np.load(tmp_path / "out" / "d.npz") as clean:
        assert clean["X"].shape == (9, 3)
        assert clean["y"].tolist() == [0, 1, 0, 1, 0, 1, 0, 0, 1]


def test_image_clean_copies_the_kept_images(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    for name in ("a", "b"):
        (tmp_path / "img" / name).mkdir(parents=True)
        for i in range(3):
            np.save(
                tmp_path / "img" / name / f"{i}.npy",
                np.full((2, 2), i + (10 if name == "b" else 0)),
            )
    np.save(tmp_path / "img" / "b" / "9.npy", np.zeros((2, 2)))  # a copy of a/0
    result = screen_rows(tmp_path / "img", checks=ROW_LOCAL)
    assert set(result.suspects) == {6}
    write_quarantine(tmp_path / "img", "images", result.suspects, tmp_path / "q.csv")
    assert "b/9.npy" in (tmp_path / "q.csv").read_text()
    kept, _ = write_clean(
        tmp_path / "img", "images", result.suspects, tmp_path / "clean", key=keys[0]
    )
    assert kept == 6
    assert not (tmp_path / "clean" / "b" / "9.npy").exists()
    assert (tmp_path / "clean" / "b" / "2.npy").exists()


def test_clean_refuses_a_folder_that_is_not_empty(
    tmp_path: Path, people_csv: Path, keys: tuple[Path, Path]
) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="not an empty folder"):
        write_clean(people_csv, "csv", {}, tmp_path / "out", key=keys[0])
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_quarantine_format_must_fit_the_input(tmp_path: Path, people_csv: Path) -> None:
    with pytest.raises(UsageError):
        write_quarantine(people_csv, "csv", {1: ("DATA004",)}, tmp_path / "q.npz")
