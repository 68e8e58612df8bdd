"""The format readers through the public scanner: registry order, sniffing, verdicts."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import h5py
import numpy as np
import onnx
import torch
from safetensors.torch import save_file
from test_formats_gguf import MALICIOUS, STRING, typical
from test_formats_protobuf import (
    BENIGN_FUNCTIONS,
    BENIGN_NODES,
    _with_location,
    helper_model,
    node_def,
    saved_model,
)

import mlwarden
from mlwarden.report import Verdict


def _results(folder: Path) -> dict[str, tuple[str | None, Verdict, set[str]]]:
    report = mlwarden.scan(folder)
    return {
        Path(r.path).name: (r.format, r.verdict, {f.rule_id for f in r.findings})
        for r in report.results
    }


def test_every_format_is_recognised_and_judged(tmp_path: Path) -> None:
    save_file({"w": torch.ones(2, 2)}, str(tmp_path / "ok.safetensors"))
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    (tmp_path / "bad.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    (tmp_path / "ok.gguf").write_bytes(typical().build())
    (tmp_path / "evil.gguf").write_bytes(typical(MALICIOUS[0]).build())
    onnx.save_model(helper_model(), tmp_path / "ok.onnx")
    onnx.save_model(_with_location(helper_model(), "/etc/passwd"), tmp_path / "evil.onnx")
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(saved_model(BENIGN_NODES, BENIGN_FUNCTIONS))
    (tmp_path / "evil_sm").mkdir()
    evil_nodes = [*BENIGN_NODES, node_def("py", "EagerPyFunc", ("x",))]
    (tmp_path / "evil_sm" / "saved_model.pb").write_bytes(saved_model(evil_nodes))
    with h5py.File(tmp_path / "data.h5", "w") as f:
        f.create_dataset("x", data=np.arange(4))
    results = _results(tmp_path)
    expected = {
        "ok.safetensors": ("safetensors", Verdict.CLEAN, set()),
        "bad.safetensors": ("safetensors", Verdict.SUSPICIOUS, {"SAFET001"}),
        "ok.gguf": ("gguf", Verdict.CLEAN, set()),
        "evil.gguf": ("gguf", Verdict.MALICIOUS, {"GGUF001"}),
        "ok.onnx": ("onnx", Verdict.CLEAN, set()),
        "evil.onnx": ("onnx", Verdict.MALICIOUS, {"ONNX001"}),
        "data.h5": ("hdf5", Verdict.CLEAN, set()),
    }
    for name, want in expected.items():
        assert results[name] == want, name
    report = mlwarden.scan([tmp_path / "sm", tmp_path / "evil_sm"])
    verdicts = [(r.format, r.verdict) for r in report.results]
    assert verdicts == [("savedmodel", Verdict.CLEAN), ("savedmodel", Verdict.MALICIOUS)]


def test_keras_h5_in_a_large_user_block_is_found(tmp_path: Path) -> None:
    """The superblock may sit at 512 * 2**k; the reader finds it past the head too."""
    config = {"class_name": "Sequential", "config": {"layers": [{"class_name": "Custom>L"}]}}
    with h5py.File(tmp_path / "ub.h5", "w", userblock_size=1024) as f:
        f.attrs["model_config"] = json.dumps(config)
    results = _results(tmp_path)
    assert results["ub.h5"] == ("hdf5", Verdict.SUSPICIOUS, {"KERAS002"})


def test_gguf_named_chat_template(tmp_path: Path) -> None:
    writer = typical().kv("tokenizer.chat_template.rag", STRING, MALICIOUS[1])
    (tmp_path / "m.gguf").write_bytes(writer.build())
    assert _results(tmp_path)["m.gguf"][2] == {"GGUF001"}
