"""Chunked, parallel and Dask runs find exactly what the single in-memory run finds."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from tests.data.conftest import ROW_LOCAL, write_csv

from mlwarden.data import screen_rows
from mlwarden.errors import UsageError


@pytest.fixture
def big_csv(tmp_path: Path) -> Path:
    rng = random.Random(3)
    rows: list[list[object]] = []
    for i in range(3000):
        note = "plain"
        if i % 97 == 0:
            note = f"mail u{i}@example.org"
        rows.append([rng.randint(0, 20), rng.randint(0, 3), note, i % 2])
    return write_csv(tmp_path / "big.csv", ["a", "b", "notes", "label"], rows)


def test_chunks_workers_and_streaming_agree(big_csv: Path) -> None:
    whole = screen_rows(big_csv, checks=ROW_LOCAL)
    assert 97 in whole.suspects
    assert any(r == ("DATA004",) for r in whole.suspects.values())
    for options in (
        {"chunk_rows": 128},
        {"chunk_rows": 500, "workers": 2},
        {"stream": True, "chunk_rows": 333},
        {"stream": True, "chunk_rows": 1000, "workers": 2},
    ):
        assert screen_rows(big_csv, checks=ROW_LOCAL, **options).suspects == whole.suspects, options


def test_a_local_dask_cluster_agrees(big_csv: Path) -> None:
    distributed = pytest.importorskip("distributed")
    whole = screen_rows(big_csv, checks=ROW_LOCAL)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        on_dask = screen_rows(big_csv, checks=ROW_LOCAL, stream=True, chunk_rows=400, dask=client)
        by_address = screen_rows(
            big_csv, checks=ROW_LOCAL, chunk_rows=700, dask=cluster.scheduler_address
        )
    assert on_dask.suspects == whole.suspects
    assert by_address.suspects == whole.suspects


def test_bad_scale_options(big_csv: Path) -> None:
    with pytest.raises(UsageError):
        screen_rows(big_csv, checks=ROW_LOCAL, workers=0)
    with pytest.raises(UsageError):
        screen_rows(big_csv, checks=ROW_LOCAL, chunk_rows=0)
