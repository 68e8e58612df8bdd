"""PyTorch, safetensors and ONNX loaders on in-memory bytes: same outputs as the originals."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from loading_support import PROBE, B, W, onnx_linear, tiny_net
from onnx import numpy_helper
from safetensors.numpy import save as save_numpy
from safetensors.torch import save as save_torch

from mlwarden.errors import (
    MalformedInputError,
    NotVerifiedError,
    UnsafeResourceNameError,
    UnsupportedLoadError,
)
from mlwarden.loading._onnx import load_onnx
from mlwarden.loading._safetensors import load_safetensors
from mlwarden.loading._torch import LEGACY_MAGIC, is_torch_zip, load_torch


def torch_bytes(obj: object, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, **kwargs)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_torch_state_dict_loads_and_predicts_the_same() -> None:
    net = tiny_net()
    data = torch_bytes(net.state_dict())
    assert is_torch_zip(data)
    state = load_torch(data, "model.pt", "cpu")
    clone = tiny_net()
    torch.nn.init.zeros_(clone[0].weight)
    clone.load_state_dict(state)
    probe = torch.randn(5, 4)
    assert torch.equal(clone(probe), net(probe))


def test_legacy_torch_format_loads() -> None:
    net = tiny_net()
    data = torch_bytes(net.state_dict(), _use_new_zipfile_serialization=False)
    assert data.startswith(LEGACY_MAGIC)
    state = load_torch(data, "model.pt", "cpu")
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


def test_torch_whole_module_pickle_is_refused_by_weights_only() -> None:
    data = torch_bytes(tiny_net())  # a full module: classes beyond tensors
    with pytest.raises(UnsupportedLoadError) as info:
        load_torch(data, "module.pt", "cpu")
    assert info.value.code == "E113"


def test_truncated_torch_file_is_malformed() -> None:
    data = torch_bytes(tiny_net().state_dict())
    with pytest.raises(MalformedInputError):
        load_torch(data[:-200], "model.pt", "cpu")


def test_safetensors_from_torch_and_numpy() -> None:
    net = tiny_net()
    data = save_torch(net.state_dict())
    as_torch = load_safetensors(data, "model.safetensors", "torch")
    assert all(torch.equal(as_torch[k], v) for k, v in net.state_dict().items())

    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3, dtype=np.int64)}
    as_numpy = load_safetensors(save_numpy(arrays), "arrays.safetensors", "numpy")
    for key, value in arrays.items():
        np.testing.assert_array_equal(as_numpy[key], value)
    assert isinstance(load_safetensors(save_numpy(arrays), "a", None)["w"], torch.Tensor)


def test_truncated_safetensors_is_malformed() -> None:
    data = save_numpy({"w": np.ones((4, 4), dtype=np.float32)})
    with pytest.raises(MalformedInputError, match=r"model\.safetensors"):
        load_safetensors(data[:-8], "model.safetensors", "numpy")


def test_onnx_model_proto_and_session() -> None:
    data = onnx_linear(W, B).SerializeToString()
    proto = load_onnx(data, "m.onnx", name="m.onnx", read_resource=None, as_session=False)
    assert isinstance(proto, onnx.ModelProto)
    np.testing.assert_array_equal(numpy_helper.to_array(proto.graph.initializer[0]), W)
    session = load_onnx(data, "m.onnx", name="m.onnx", read_resource=None, as_session=True)
    (out,) = session.run(None, {"x": PROBE})
    np.testing.assert_allclose(out, PROBE @ W + B, rtol=1e-6)


def _with_external_data(tmp_path: Path, location: str = "weights.bin") -> tuple[bytes, Path]:
    model = onnx_linear(W, B)
    onnx.save_model(
        model,
        tmp_path / "m.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=location,
        size_threshold=0,
    )
    return (tmp_path / "m.onnx").read_bytes(), tmp_path / location


def test_onnx_external_data_comes_only_from_the_verified_reader(tmp_path: Path) -> None:
    data, weights = _with_external_data(tmp_path)
    blob = weights.read_bytes()
    weights.write_bytes(b"\0" * len(blob))  # what is on disk must not matter
    asked: list[str] = []

    def read(name: str) -> bytes:
        asked.append(name)
        return blob

    session = load_onnx(data, "dir/m.onnx", name="m.onnx", read_resource=read, as_session=True)
    (out,) = session.run(None, {"x": PROBE})
    np.testing.assert_allclose(out, PROBE @ W + B, rtol=1e-6)
    assert asked == ["weights.bin"]  # read once, however many tensors share it


def test_onnx_external_data_needs_a_signed_folder(tmp_path: Path) -> None:
    data, _ = _with_external_data(tmp_path)
    with pytest.raises(NotVerifiedError, match="external files"):
        load_onnx(data, "m.onnx", name="m.onnx", read_resource=None, as_session=False)


def test_onnx_external_data_outside_the_folder_is_refused(tmp_path: Path) -> None:
    data, _ = _with_external_data(tmp_path)
    proto = onnx.load_from_string(data)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../../etc/passwd"
    with pytest.raises(UnsafeResourceNameError, match=r"climbs out"):
        load_onnx(
            proto.SerializeToString(),
            "m.onnx",
            name="m.onnx",
            read_resource=lambda n: b"",
            as_session=False,
        )


def test_onnx_external_data_past_the_end_is_malformed(tmp_path: Path) -> None:
    data, weights = _with_external_data(tmp_path)
    short = weights.read_bytes()[:4]
    with pytest.raises(MalformedInputError, match="which holds 4"):
        load_onnx(data, "m.onnx", name="m.onnx", read_resource=lambda n: short, as_session=False)


def test_garbage_onnx_is_malformed() -> None:
    with pytest.raises(MalformedInputError):
        load_onnx(b"\xff" * 64, "m.onnx", name="m.onnx", read_resource=None, as_session=True)
