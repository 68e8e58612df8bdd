"""Every kind of bad dataset is refused with its own code, never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tests.data.conftest import write_csv

from mlwarden.cli import main
from mlwarden.data import load_dataset, screen
from mlwarden.errors import (
    DatasetShapeError,
    EmptyDatasetError,
    MalformedInputError,
    MissingLabelError,
    MixedTypesError,
    PathNotFoundError,
    RowTooLargeError,
    UnsupportedFormatError,
)


def test_missing_label_column(people_csv: Path) -> None:
    with pytest.raises(MissingLabelError, match="no column 'species'"):
        load_dataset(people_csv, label="species")


def test_missing_label_value(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", ["x", "label"], [[1, "a"], [2, ""], [3, "b"]])
    with pytest.raises(MissingLabelError, match="row 1"):
        load_dataset(path, label="label")


def test_numbers_with_a_word_in_them_are_mixed_types(tmp_path: Path) -> None:
    rows = [[i, i * 2] for i in range(50)]
    rows[17][1] = "oops"
    path = write_csv(tmp_path / "t.csv", ["x", "y2"], rows)
    with pytest.raises(MixedTypesError, match="row 17"):
        load_dataset(path)


def test_object_arrays_are_mixed_types(tmp_path: Path) -> None:
    path = tmp_path / "o.npy"
    np.save(path, np.array([[1, "a"], [2, "b"]], dtype=object), allow_pickle=True)
    with pytest.raises(MixedTypesError):
        load_dataset(path)


@pytest.mark.parametrize("content", ["", "x,label\n"])
def test_empty_tables(tmp_path: Path, content: str) -> None:
    path = tmp_path / "e.csv"
    path.write_text(content)
    with pytest.raises(EmptyDatasetError):
        load_dataset(path)


def test_empty_arrays_and_folders(tmp_path: Path) -> None:
    np.savez(tmp_path / "e.npz", X=np.zeros((0, 3)))
    with pytest.raises(EmptyDatasetError):
        load_dataset(tmp_path / "e.npz")
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    with pytest.raises(EmptyDatasetError):
        load_dataset(tmp_path / "imgs")
    (tmp_path / "zero.npy").write_bytes(b"")
    with pytest.raises(EmptyDatasetError):
        load_dataset(tmp_path / "zero.npy")


def test_wrong_shapes(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", X=np.zeros((5, 2)), y=np.zeros(4))
    with pytest.raises(DatasetShapeError, match="5 rows of features but 4 labels"):
        load_dataset(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", X=np.zeros(5))
    with pytest.raises(DatasetShapeError, match="1-D"):
        load_dataset(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", X=np.zeros((5, 2)), y=np.zeros((5, 2)))
    with pytest.raises(DatasetShapeError, match="2-D"):
        load_dataset(tmp_path / "c.npz")
    for name, shape in (("a", (4, 4)), ("b", (5, 5))):
        (tmp_path / "img" / name).mkdir(parents=True)
        np.save(tmp_path / "img" / name / "0.npy", np.zeros(shape))
    with pytest.raises(DatasetShapeError, match=r"is \(5, 5\)"):
        load_dataset(tmp_path / "img")


def test_a_huge_row_is_refused_not_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    path.write_text("x,text\n1,short\n2," + "A" * 3_000_000 + "\n3,short\n")
    with pytest.raises(RowTooLargeError):
        load_dataset(path, max_row_bytes=1 << 20)


def test_unknown_formats_and_missing_paths(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(UnsupportedFormatError):
        load_dataset(tmp_path / "x.txt")
    with pytest.raises(PathNotFoundError):
        load_dataset(tmp_path / "nope.csv")
    (tmp_path / "bad.npy").write_bytes(b"not numpy at all")
    with pytest.raises(MalformedInputError):
        load_dataset(tmp_path / "bad.npy")


def test_npz_without_x(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", features=np.zeros((3, 2)))
    with pytest.raises(MalformedInputError, match="no array 'X'"):
        screen(tmp_path / "a.npz")


def _no_label(folder: Path) -> Path:
    return write_csv(folder / "t.csv", ["x"], [[1], [2]])


def _empty(folder: Path) -> Path:
    (folder / "t.csv").write_text("")
    return folder / "t.csv"


@pytest.mark.parametrize(("make", "code"), [(_no_label, "E140"), (_empty, "E142")])
def test_cli_one_line_errors(
    tmp_path: Path, make: Callable[[Path], Path], code: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make(tmp_path)
    status = main(["data", "screen", str(path), "--label", "species"])
    err = capsys.readouterr().err
    assert status == 2
    assert f"error: {code}:" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_an_archive_that_would_decompress_past_the_limit_is_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zip bomb costs memory on access: the declared sizes are checked first."""
    import mlwarden.data._inputs as inputs
    from mlwarden.errors import LimitExceededError

    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, X=np.zeros((200, 64)), y=np.zeros(200, dtype=np.int64))
    assert path.stat().st_size < 2_000  # 104 KB of arrays in a small file
    monkeypatch.setattr(inputs, "MAX_NPZ_BYTES", 50_000)
    with pytest.raises(LimitExceededError, match=r"would take \d+ bytes \(at most 50000\)"):
        load_dataset(path)
    monkeypatch.setattr(inputs, "MAX_NPZ_BYTES", 1 << 31)
    assert load_dataset(path).features.shape == (200, 64)


def test_missing_cells_are_filled_and_counted(tmp_path: Path) -> None:
    """The data screen fills a missing cell with its column's median and says how many."""
    path = write_csv(
        tmp_path / "t.csv", ["a", "b", "label"], [[1, 2, "x"], ["", 4, "y"], [3, "", "x"]]
    )
    dataset = load_dataset(path)
    assert dataset.filled_cells == 2
    assert dataset.features[1, 0] == 2.0  # the median of 1 and 3
