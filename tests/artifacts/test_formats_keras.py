"""Keras configs (.keras config.json, .h5 model_config) and the HDF5 reader."""

from __future__ import annotations

import base64
import io
import json
import marshal
import os
import pickle
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from mlwarden.artifacts._context import Limits, ScanContext  # noqa: E402
from mlwarden.artifacts._dispatch import HEAD_BYTES, run_reader  # noqa: E402
from mlwarden.artifacts._formats import hdf5  # noqa: E402
from mlwarden.artifacts._formats.keras_config import check_keras_config  # noqa: E402
from mlwarden.report import Finding  # noqa: E402

READER = hdf5.READERS[0]


def scan_h5(path: Path) -> list[Finding]:
    ctx = ScanContext(limits=Limits(), root=path.parent)
    with path.open("rb") as stream:
        assert READER.sniff(stream.read(HEAD_BYTES), path.stat().st_size)
        run_reader(READER, stream, str(path), ctx, 0)
    return ctx.findings


def check(config: object) -> list[Finding]:
    ctx = ScanContext(limits=Limits(), root=Path())
    raw = config if isinstance(config, bytes) else json.dumps(config).encode()
    check_keras_config(raw, "model.keras!config.json", ctx)
    return ctx.findings


def rules(findings: list[Finding]) -> set[str]:
    return {f.rule_id for f in findings}


def sequential() -> object:
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(5, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def functional() -> object:
    inputs = keras.Input((6,))
    inner = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)], name="inner")
    x = keras.layers.Dense(6, activation="gelu")(inputs)
    x = keras.layers.LayerNormalization()(x)
    y = inner(x)
    z = keras.layers.Concatenate()([x, y])
    outputs = keras.layers.Dense(1)(z)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.MeanSquaredError())
    return model


def lambda_model() -> object:
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.Lambda(lambda x: x)]
    )


def keras_config_json(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read("config.json")


@pytest.mark.parametrize("build", [sequential, functional])
def test_real_models_are_clean(tmp_path: Path, build: object) -> None:
    model = build()  # type: ignore[operator]
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    assert check(keras_config_json(tmp_path / "m.keras")) == []
    assert scan_h5(tmp_path / "m.h5") == []


def test_weights_only_and_plain_hdf5_are_clean(tmp_path: Path) -> None:
    model = sequential()
    model.save_weights(tmp_path / "m.weights.h5")  # type: ignore[attr-defined]
    assert scan_h5(tmp_path / "m.weights.h5") == []
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f.create_dataset("x", data=np.arange(10))
        f.attrs["note"] = "data"
    assert scan_h5(tmp_path / "plain.h5") == []


def test_lambda_layer_in_keras_file(tmp_path: Path) -> None:
    lambda_model().save(tmp_path / "lam.keras")  # type: ignore[attr-defined]
    findings = check(keras_config_json(tmp_path / "lam.keras"))
    assert rules(findings) == {"KERAS001"}
    assert "Lambda layer" in findings[0].message


def test_lambda_layer_in_h5_file(tmp_path: Path) -> None:
    lambda_model().save(tmp_path / "lam.h5")  # type: ignore[attr-defined]
    findings = scan_h5(tmp_path / "lam.h5")
    assert rules(findings) == {"KERAS001"}
    assert findings[0].location.endswith("lam.h5#model_config")


def _lambda_layer(config: dict[str, object]) -> dict[str, object]:
    return {"class_name": "Lambda", "config": {"name": "evil", **config}}


def _code() -> str:
    return base64.b64encode(marshal.dumps(compile("lambda x: x", "<x>", "eval"))).decode()


def test_keras2_lambda_forms() -> None:
    keras2 = _lambda_layer(
        {"function": [_code(), None, None], "function_type": "lambda", "module": "__main__"}
    )
    assert rules(check({"class_name": "Sequential", "config": {"layers": [keras2]}})) == {
        "KERAS001"
    }
    shape = _lambda_layer({"function": "f", "output_shape": [_code(), None, None]})
    assert "KERAS001" in rules(check({"class_name": "Model", "config": {"layers": [shape]}}))


def test_lambda_in_wrapper_and_nested_model() -> None:
    lam = {"class_name": "__lambda__", "config": {"code": _code()}}
    wrapped = {
        "class_name": "TimeDistributed",
        "config": {"layer": {"class_name": "Lambda", "config": {"function": lam}}},
    }
    nested = {
        "class_name": "Functional",
        "config": {"layers": [{"class_name": "Sequential", "config": {"layers": [wrapped]}}]},
    }
    findings = check(nested)
    assert rules(findings) == {"KERAS001"}
    assert len(findings) == 1
    activation = {"class_name": "Dense", "config": {"name": "d", "activation": lam}}
    assert rules(check({"class_name": "Sequential", "config": {"layers": [activation]}})) == {
        "KERAS001"
    }


def test_named_function_lambda_is_suspicious() -> None:
    named = _lambda_layer(
        {"function": {"module": "mypkg.ops", "class_name": "function", "config": "scale"}}
    )
    assert rules(check({"class_name": "Sequential", "config": {"layers": [named]}})) == {"KERAS002"}
    keras2 = _lambda_layer({"function": "system", "function_type": "function", "module": "os"})
    found = rules(check({"class_name": "Sequential", "config": {"layers": [keras2]}}))
    assert found == {"KERAS001", "KERAS002"}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"module": "os", "class_name": "function", "config": "system"}, "KERAS001"),
        ({"module": "subprocess", "class_name": "Popen", "config": {}}, "KERAS001"),
        ({"module": "builtins", "class_name": "function", "config": "exec"}, "KERAS001"),
        ({"module": "mycompany.layers", "class_name": "MyLayer", "config": {}}, "KERAS002"),
        (
            {"module": None, "class_name": "MyLayer", "registered_name": "Custom>MyLayer"},
            "KERAS002",
        ),
        ({"class_name": "Custom>MyLayer", "config": {}}, "KERAS002"),
        (
            {"module": "keras.config", "class_name": "enable_unsafe_deserialization"},
            "KERAS001",
        ),
        (
            {"module": "keras.utils", "class_name": "get_file", "config": {"origin": "x"}},
            "KERAS001",
        ),
    ],
)
def test_modules_outside_keras(obj: dict[str, object], expected: str) -> None:
    layer = {"name": "x", **obj}
    config = {"module": "keras", "class_name": "Sequential", "config": {"layers": [layer]}}
    assert rules(check(config)) == {expected}


def test_keras_hub_registered_names_are_clean() -> None:
    config = {
        "module": "keras_hub.src.models.gemma.gemma_backbone",
        "class_name": "GemmaBackbone",
        "registered_name": "keras_hub>GemmaBackbone",
        "config": {"name": "gemma"},
    }
    assert check(config) == []


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b"[1, 2]", b"[" * 100_000])
def test_malformed_config(raw: bytes) -> None:
    from mlwarden.errors import MalformedInputError

    with pytest.raises(MalformedInputError):
        check(raw)


def test_malformed_model_config_attribute_is_keras003(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f.attrs["model_config"] = "{broken"
    findings = scan_h5(tmp_path / "bad.h5")
    assert [f.rule_id for f in findings] == ["KERAS003"]


def test_truncated_hdf5_is_keras003(tmp_path: Path) -> None:
    sequential().save(tmp_path / "m.h5")  # type: ignore[attr-defined]
    data = (tmp_path / "m.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[:600])
    assert rules(scan_h5(tmp_path / "cut.h5")) == {"KERAS003"}


def test_external_link_is_flagged(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("w", data=[1])
    with h5py.File(tmp_path / "linked.h5", "w") as f:
        f["layer"] = h5py.ExternalLink("/etc/other.h5", "/w")
        group = f.create_group("g")
        group["self"] = group  # a cycle of hard links must not loop
    findings = scan_h5(tmp_path / "linked.h5")
    assert rules(findings) == {"KERAS002"}
    assert "/etc/other.h5" in findings[0].message


class _Marker:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (open, (self.path, "w"))


def test_user_block_is_scanned(tmp_path: Path) -> None:
    """An HDF5 file whose user block holds a pickle: a polyglot that torch.load would run."""
    pytest.importorskip("mlwarden.artifacts._formats.pickles")
    with h5py.File(tmp_path / "poly.h5", "w", userblock_size=512) as f:
        f.create_dataset("x", data=[1, 2])
    payload = pickle.dumps(_Marker(str(tmp_path / "marker")), protocol=2)
    with (tmp_path / "poly.h5").open("r+b") as stream:
        stream.write(payload)
    assert not (tmp_path / "marker").exists()
    findings = scan_h5(tmp_path / "poly.h5")
    assert "ARCH005" in rules(findings)
    assert any(f.location.endswith("[hdf5 user block]") for f in findings)


def test_keras_file_end_to_end(tmp_path: Path) -> None:
    """Through the public scanner: the zip reader hands config.json to check_keras_config."""
    pytest.importorskip("mlwarden.artifacts._formats.pickles")
    import mlwarden

    lambda_model().save(tmp_path / "lam.keras")  # type: ignore[attr-defined]
    sequential().save(tmp_path / "ok.keras")  # type: ignore[attr-defined]
    sequential().save(tmp_path / "ok.h5")  # type: ignore[attr-defined]
    report = mlwarden.scan(tmp_path)
    by_name = {Path(r.path).name: r for r in report.results}
    assert {f.rule_id for f in by_name["lam.keras"].findings} == {"KERAS001"}
    assert by_name["ok.keras"].findings == ()
    assert by_name["ok.h5"].findings == ()


def test_config_in_memory_stream() -> None:
    """The reader works on nested (in-memory) members too."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.attrs["model_config"] = json.dumps(
            {
                "class_name": "Sequential",
                "config": {"layers": [_lambda_layer({"function": [_code()]})]},
            }
        )
    ctx = ScanContext(limits=Limits(), root=Path())
    buffer.seek(0)
    run_reader(READER, buffer, "outer.zip!m.h5", ctx, 1)
    assert rules(ctx.findings) == {"KERAS001"}


def test_corrupt_global_heap_is_refused_before_libhdf5_reads_it(tmp_path: Path) -> None:
    """libhdf5 loops forever on a heap object of size 0; the reader checks heaps first."""
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {}})
    data = bytearray((tmp_path / "m.h5").read_bytes())
    at = data.index(b"GCOL") + 16  # the first object of the collection
    data[at : at + 2] = b"\0\0"  # index 0: free space ...
    data[at + 8 : at + 16] = b"\0" * 8  # ... of size 0
    (tmp_path / "loop.h5").write_bytes(bytes(data))
    findings = scan_h5(tmp_path / "loop.h5")
    assert [f.rule_id for f in findings] == ["KERAS003"]
    assert "global heap collection" in findings[0].message


def test_metadata_ranges() -> None:
    assert hdf5.metadata_ranges(100, [(10, 20), (15, 30), (90, 120)]) == [(0, 10), (30, 90)]


def test_decoy_signature_does_not_hide_a_pickle(tmp_path: Path) -> None:
    """A pickle carrying the HDF5 signature at offset 512 is still analysed as a pickle."""
    pytest.importorskip("mlwarden.artifacts._formats.pickles")
    filler = b"A" * 512
    payload = pickle.dumps([filler, _Marker(str(tmp_path / "marker"))], protocol=4)
    at = payload.index(filler) + 512 - payload.index(filler) % 512
    data = payload[:at] + hdf5.SIGNATURE + payload[at + len(hdf5.SIGNATURE) :]
    assert data.index(hdf5.SIGNATURE) == 512
    (tmp_path / "decoy.pkl").write_bytes(data)
    findings = scan_h5(tmp_path / "decoy.pkl")
    assert "ARCH005" in rules(findings)
    assert "PKL001" in rules(findings)
    assert not (tmp_path / "marker").exists()


def test_pickle_in_a_byte_attribute_is_scanned(tmp_path: Path) -> None:
    pytest.importorskip("mlwarden.artifacts._formats.pickles")
    payload = pickle.dumps(_Marker(str(tmp_path / "marker")), protocol=4)
    with h5py.File(tmp_path / "attr.h5", "w") as f:
        group = f.create_group("layer")
        group.attrs["state"] = np.void(payload)
        group.attrs["names"] = np.array([b"kernel:0", b"bias:0"])
    findings = scan_h5(tmp_path / "attr.h5")
    assert "PKL001" in rules(findings)
    assert any(f.location.endswith("!/layer/@state") for f in findings)
    assert not (tmp_path / "marker").exists()
