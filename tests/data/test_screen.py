"""The screen's public face on real files: known answers for PII, duplicates and leakage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.data.conftest import ROW_LOCAL, write_csv

from mlwarden.data import load_dataset, screen, screen_rows

EXPECTED_PII = {5: "PII001", 7: "PII003", 9: "PII005", 11: "PII004", 13: "PII006", 15: "PII002"}


def _rows(finding_detail: dict[str, str]) -> list[int]:
    return [int(r) for r in finding_detail["rows"].split(",")]


def test_pii_and_duplicates_in_a_csv_have_their_rows(people_csv: Path) -> None:
    result = screen_rows(people_csv, checks=ROW_LOCAL)
    by_rule = {f.rule_id: f for f in result.report.findings if f.rule_id.startswith("PII")}
    assert set(by_rule) == set(EXPECTED_PII.values())
    for row, rule in EXPECTED_PII.items():
        assert _rows(dict(by_rule[rule].detail)) == [row]
        assert by_rule[rule].location == f"{people_csv}!notes"
    # The typo'd card (row 17) and the order number (row 19) are not personal data.
    assert 17 not in result.suspects
    assert 19 not in result.suspects
    duplicates = [f for f in result.report.findings if f.rule_id == "DATA004"]
    assert sorted(f.detail["duplicate_of"] for f in duplicates) == ["2", "3"]
    assert {30, 31} <= set(result.suspects)
    assert result.report.results[0].size == 40


def test_the_example_in_a_finding_is_masked(people_csv: Path) -> None:
    report = screen(people_csv, checks=ROW_LOCAL)
    card = next(f for f in report.findings if f.rule_id == "PII003")
    assert "4111 1111 1111 1111" not in card.message
    assert "1111 1111" not in json.dumps(card.to_dict())


def test_no_pii_flag_skips_the_pii_screen(people_csv: Path) -> None:
    report = screen(people_csv, pii=False, checks=ROW_LOCAL)
    assert not [f for f in report.findings if f.rule_id.startswith("PII")]
    assert [f for f in report.findings if f.rule_id == "DATA004"]


def test_exact_leakage_between_train_and_test(tmp_path: Path, people_csv: Path) -> None:
    lines = people_csv.read_text().splitlines()
    test = tmp_path / "test.csv"
    # Rows 20 and 21 of the training data, with other labels: leakage ignores the label.
    header, row20, row21 = lines[0], lines[21], lines[22]
    flipped = [",".join([*r.split(",")[:-1], "9"]) for r in (row20, row21)]
    test.write_text("\n".join([header, *flipped, "99,1,1.0,other,0"]) + "\n")
    result = screen_rows(people_csv, test=test, pii=False, checks=ROW_LOCAL)
    leak = next(f for f in result.report.findings if f.rule_id == "DATA006")
    assert _rows(dict(leak.detail)) == [20, 21]
    assert result.suspects[20] == ("DATA006",)


def test_leakage_refuses_a_test_split_of_another_table(tmp_path: Path, people_csv: Path) -> None:
    from mlwarden.errors import DatasetShapeError

    other = write_csv(tmp_path / "other.csv", ["x", "label"], [[1, 0], [2, 1]])
    with pytest.raises(DatasetShapeError):
        screen(people_csv, test=other)


def test_parquet_reads_the_same_as_csv(tmp_path: Path, people_csv: Path) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    parquet = tmp_path / "people.parquet"
    pq.write_table(pacsv.read_csv(people_csv), parquet)
    from_csv = screen_rows(people_csv, checks=ROW_LOCAL).suspects
    from_parquet = screen_rows(parquet, checks=ROW_LOCAL).suspects
    assert from_csv == from_parquet


def test_npz_arrays_with_labels(tmp_path: Path) -> None:
    x = np.arange(60, dtype=np.float64).reshape(20, 3)
    x[15] = x[4]
    path = tmp_path / "data.npz"
    np.savez(path, X=x, y=np.arange(20) % 3)
    dataset = load_dataset(path)
    assert dataset.rows == 20
    assert dataset.classes == ("0", "1", "2")
    result = screen_rows(path, checks=ROW_LOCAL)
    assert result.suspects == {15: ("DATA004",)}


def test_image_folder_of_npy_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (tmp_path / "img" / name).mkdir(parents=True)
        for i in range(4):
            np.save(tmp_path / "img" / name / f"{i}.npy", rng.random((8, 8)))
    copy = tmp_path / "img" / "dog" / "9.npy"
    copy.write_bytes((tmp_path / "img" / "cat" / "1.npy").read_bytes())
    dataset = load_dataset(tmp_path / "img")
    assert dataset.classes == ("cat", "dog")
    assert dataset.features.shape == (9, 64)
    report = screen(tmp_path / "img", checks=ROW_LOCAL)
    (dup,) = [f for f in report.findings if f.rule_id == "DATA004"]
    assert dup.detail["duplicate_of"] == "1"
    assert dup.detail["rows"] == "8"


def test_png_images_are_read_with_pillow(tmp_path: Path) -> None:
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(2):
            pixels = np.full((4, 4), 60 * i + (100 if name == "b" else 0), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{i}.png")
    dataset = load_dataset(tmp_path)
    assert dataset.rows == 4
    assert float(dataset.features.max()) <= 1.0
    assert dataset.labels is not None
    assert dataset.labels.tolist() == [0, 0, 1, 1]


def test_the_label_column_is_not_part_of_the_features(people_csv: Path) -> None:
    dataset = load_dataset(people_csv, label="label")
    assert dataset.label_name == "label"
    assert dataset.feature_names == ("id", "a", "b")
    assert list(dataset.text) == ["notes"]
    assert dataset.labels is not None
    assert dataset.labels[:4].tolist() == [0, 1, 0, 1]
