"""Mutated inputs: every reader ends in findings, never in an unexpected exception.

An unexpected exception is turned into a malformed finding by the dispatcher
with the text "reader could not parse the content"; for these readers that
text means a bug (a crash path that hostile bytes can reach).
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import h5py
import numpy as np
import pytest
from safetensors.numpy import save
from test_formats_gguf import COUNTERS, typical
from test_formats_protobuf import BENIGN_FUNCTIONS, BENIGN_NODES, helper_model, saved_model

from mlwarden.artifacts._context import Limits, ScanContext
from mlwarden.artifacts._dispatch import HEAD_BYTES, Reader, run_reader
from mlwarden.artifacts._formats import gguf, hdf5, protobuf, safetensors


def _h5_sample() -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.attrs["model_config"] = json.dumps(
            {"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense"}]}}
        )
        f.create_dataset("w", data=np.arange(16, dtype=np.float32))
    return buffer.getvalue()


SAMPLES: dict[str, tuple[Reader, object]] = {
    "safetensors": (
        safetensors.READERS[0],
        lambda: save({"a": np.ones((3, 4), np.float32), "b": np.zeros(5, np.int64)}),
    ),
    "gguf": (gguf.READERS[0], lambda: typical(COUNTERS).build()),
    "onnx": (protobuf.READERS[0], lambda: helper_model().SerializeToString()),
    "savedmodel": (protobuf.READERS[1], lambda: saved_model(BENIGN_NODES, BENIGN_FUNCTIONS)),
    "hdf5": (hdf5.READERS[0], _h5_sample),
}


def _mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        pos = rng.randrange(len(out))
        roll = rng.random()
        if roll < 0.6:
            out[pos] = rng.randrange(256)
        elif roll < 0.8:
            del out[pos : pos + rng.randint(1, 40)]
        else:
            out[pos:pos] = rng.randbytes(rng.randint(1, 16))
    if rng.random() < 0.2:
        out = out[: rng.randrange(1, len(out))]
    return bytes(out)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_mutations_never_crash_a_reader(name: str) -> None:
    reader, make = SAMPLES[name]
    sample = make()  # type: ignore[operator]
    assert isinstance(sample, bytes)
    rng = random.Random(f"mlwarden-{name}")
    checked = 0
    for _ in range(60 if name == "hdf5" else 250):
        data = _mutate(sample, rng)
        if not reader.sniff(data[:HEAD_BYTES], len(data)):
            continue
        checked += 1
        ctx = ScanContext(limits=Limits(max_seconds_per_file=5), root=Path())
        run_reader(reader, io.BytesIO(data), f"fuzz.{name}", ctx, 0)
        crashes = [f for f in ctx.findings if "reader could not parse the content" in f.message]
        assert not crashes, (crashes, data)
    assert checked > 10  # the mutations must still reach the parser


def test_onnx_sniff_refuses_garbage_after_a_valid_start() -> None:
    good = helper_model().SerializeToString()
    assert protobuf.READERS[0].sniff(good, len(good))
    garbage = good[:2] + b"\xff" * 40 + bytes(range(256)) * 20
    assert not protobuf.READERS[0].sniff(garbage[:HEAD_BYTES], len(garbage))
