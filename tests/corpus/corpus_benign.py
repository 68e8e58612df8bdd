"""Benign files made by the real frameworks: every one must scan clean.

Full pickled nn.Module objects of user classes are left out on purpose: their
pickle imports the user's class by reference (`__main__.Net`), which is code no
scanner can know to be safe. Torch modules appear as state dicts, TorchScript,
and ONNX exports instead.
"""

import contextlib
import gzip
import hashlib
import io
import json
import os
import pickle
import sys
import tarfile
import zipfile
from collections.abc import Iterator

from corpus_common import Writer
from corpus_formats import CHATML, gguf_metadata, keras_module
from corpus_wire import gguf_file, saved_model, tf_attr_type, tf_node

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)


QWEN_TOOLS = (
    "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- for tool in tools %}"
    "{{- '\\n' }}{{- tool | tojson }}{%- endfor %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}"
    "{%- for message in messages %}{%- if message.role not in ['system', 'user', "
    "'assistant', 'tool'] %}{{- raise_exception('Unknown role: ' + message.role) }}"
    "{%- endif %}{{- '<|im_start|>' + message.role + '\\n' + message.content + "
    "'<|im_end|>' + '\\n' }}{%- if loop.last %}{%- set ns.multi_step_tool = false %}"
    "{%- endif %}{%- endfor %}{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def build(w: Writer) -> None:
    _python_data(w)
    _sklearn(w)
    _torch(w)
    _numpy(w)
    _safetensors(w)
    _onnx(w)
    _keras(w)
    _gguf(w)
    _savedmodel(w)
    _hf_cache(w)
    _archives(w)


def _python_data(w: Writer) -> None:
    """Plain data and NumPy arrays pickled directly, with code-looking strings as data."""
    import collections
    import datetime

    import numpy as np

    data = {
        "created": datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC),
        "day": datetime.date(2024, 5, 1),
        "vocab": collections.OrderedDict([("<pad>", 0), ("hello", 1)]),
        "counts": collections.Counter("abracadabra"),
        "tags": {"train", "eval"},
        "frozen": frozenset({1, 2}),
        "blob": b"\x00\x01 os.system",
        "buffer": bytearray(b"abc"),
        "complex": 1 + 2j,
        "notes": "docs mention __import__('os').system and eval(...) as text only",
    }
    for proto in (2, 4, 5):
        w.good(
            f"benign/python/data_p{proto}.pkl",
            pickle.dumps(data, protocol=proto),
            technique="python-data",
            fmt="pickle",
            note=f"datetime/OrderedDict/Counter/set/bytes/complex, protocol {proto}",
        )
    arrays = {"x": np.arange(12.0).reshape(3, 4), "ids": np.array([1, 2], dtype=np.int32)}
    w.good(
        "benign/python/numpy_arrays.pkl",
        pickle.dumps(arrays, protocol=4),
        technique="python-data",
        fmt="pickle",
        note="NumPy arrays pickled directly",
    )


def _sklearn_models():  # type: ignore[no-untyped-def]
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        IsolationForest,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    cat = np.column_stack([rng.integers(0, 3, 60), x[:, 0]])
    models = {
        "logistic_regression": LogisticRegression().fit(x, y),
        "random_forest": RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y),
        "gradient_boosting": GradientBoostingClassifier(n_estimators=5).fit(x, y),
        "hist_gradient_boosting": HistGradientBoostingClassifier(max_iter=5).fit(x, y),
        "svc": SVC().fit(x, y),
        "kneighbors": KNeighborsClassifier(n_neighbors=3).fit(x, y),
        "mlp": MLPClassifier(hidden_layer_sizes=(5,), max_iter=50, random_state=0).fit(x, y),
        "decision_tree": DecisionTreeClassifier(max_depth=3).fit(x, y),
        "pipeline_scaler_pca": Pipeline(
            [
                ("scale", StandardScaler()),
                ("pca", PCA(n_components=2)),
                ("clf", LogisticRegression()),
            ]
        ).fit(x, y),
        "gaussian_nb": GaussianNB().fit(x, y),
        "kmeans": KMeans(n_clusters=2, n_init=2, random_state=0).fit(x),
        "ridge": Ridge().fit(x, x[:, 2]),
        "isolation_forest": IsolationForest(n_estimators=5, random_state=0).fit(x),
        "column_transformer": Pipeline(
            [
                (
                    "cols",
                    ColumnTransformer(
                        [("onehot", OneHotEncoder(), [0]), ("num", StandardScaler(), [1])]
                    ),
                ),
                ("clf", LogisticRegression()),
            ]
        ).fit(cat, y),
    }
    return models


@contextlib.contextmanager
def _pristine_pickler() -> Iterator[None]:
    """Dump as joblib does in a process without dill.

    Importing dill adds its reducers to pickle._Pickler.dispatch, and joblib's
    NumpyPickler copies that table when joblib is imported; both are restored to
    the standard reducers while the benign files are written, then put back.
    """
    dill = sys.modules.get("dill")
    if dill is None:
        yield
        return
    import joblib.numpy_pickle

    dill.extend(False)
    table = joblib.numpy_pickle.NumpyPickler.dispatch
    saved = {k: f for k, f in table.items() if getattr(f, "__module__", "").startswith("dill")}
    for key in saved:
        if key in pickle._Pickler.dispatch:
            table[key] = pickle._Pickler.dispatch[key]
        else:
            del table[key]
    try:
        yield
    finally:
        table.update(saved)
        dill.extend(True)


def _sklearn(w: Writer) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = _sklearn_models()
    with _pristine_pickler():
        _sklearn_dumps(w, models)


def _sklearn_dumps(w: Writer, models: dict) -> None:  # type: ignore[type-arg]
    import joblib

    for index, (name, model) in enumerate(models.items()):
        proto = 2 + index % 4
        w.good(
            f"benign/sklearn/{name}_p{proto}.pkl",
            pickle.dumps(model, protocol=proto),
            technique="sklearn-pickle",
            fmt="pickle",
            note=f"scikit-learn {type(model).__name__}, pickle protocol {proto}",
        )
    for name, compress, ext in (
        ("random_forest", 0, "joblib"),
        ("pipeline_scaler_pca", 3, "joblib"),
        ("gradient_boosting", ("gzip", 3), "joblib.gz"),
        ("svc", ("bz2", 3), "joblib.bz2"),
        ("mlp", ("xz", 3), "joblib.xz"),
        ("kmeans", ("lzma", 3), "joblib.lzma"),
        ("column_transformer", ("zlib", 3), "joblib"),
    ):
        label = compress[0] if isinstance(compress, tuple) else f"c{compress}"
        target = w.path(f"benign/sklearn/{name}_{label}.{ext}")
        joblib.dump(models[name], target, compress=compress)
        w.good(
            str(target.relative_to(w.root)),
            None,
            technique="sklearn-joblib",
            fmt=f"joblib-{label}",
            note=f"joblib.dump compress={compress!r}",
        )


def _torch(w: Writer) -> None:
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2)
    )
    state = net.state_dict()
    torch.save(state, w.path("benign/torch/state_dict.pt"))
    w.good(
        "benign/torch/state_dict.pt",
        None,
        technique="torch-state-dict",
        fmt="pytorch-zip",
        note="torch.save of a Sequential state_dict",
    )
    torch.save(state, w.path("benign/torch/pytorch_model.bin"))
    w.good(
        "benign/torch/pytorch_model.bin",
        None,
        technique="torch-state-dict",
        fmt="pytorch-zip",
        note="Hugging Face style pytorch_model.bin",
    )
    for opt_name, opt_cls in (("adam", torch.optim.Adam), ("sgd", torch.optim.SGD)):
        opt = opt_cls(net.parameters(), lr=0.01)
        net(torch.randn(5, 4)).sum().backward()
        opt.step()
        ckpt = {
            "model": state,
            "optimizer": opt.state_dict(),
            "epoch": 3,
            "loss": 0.25,
            "config": {"lr": 0.01, "layers": [4, 8, 2]},
        }
        torch.save(ckpt, w.path(f"benign/torch/checkpoint_{opt_name}.ckpt"))
        w.good(
            f"benign/torch/checkpoint_{opt_name}.ckpt",
            None,
            technique="torch-checkpoint",
            fmt="pytorch-zip",
            note=f"training checkpoint with {opt_name} optimizer state",
        )
    torch.save(
        state, w.path("benign/torch/state_dict_legacy.pt"), _use_new_zipfile_serialization=False
    )
    w.good(
        "benign/torch/state_dict_legacy.pt",
        None,
        technique="torch-legacy",
        fmt="pytorch-legacy",
        note="_use_new_zipfile_serialization=False state_dict",
    )
    torch.save(
        {"weights": torch.arange(10.0), "names": ["a", "b"]},
        w.path("benign/torch/tensors_legacy_p4.pth"),
        _use_new_zipfile_serialization=False,
        pickle_protocol=4,
    )
    w.good(
        "benign/torch/tensors_legacy_p4.pth",
        None,
        technique="torch-legacy",
        fmt="pytorch-legacy",
        note="legacy format, pickle protocol 4",
    )
    _torch_rich(w)
    net.eval()
    torch.jit.save(torch.jit.script(net), w.path("benign/torch/scripted.pt"))
    w.good(
        "benign/torch/scripted.pt",
        None,
        technique="torchscript",
        fmt="torchscript",
        note="torch.jit.script of a Sequential",
    )
    traced = torch.jit.trace(net, torch.randn(3, 4))
    torch.jit.save(traced, w.path("benign/torch/traced.pt"))
    w.good(
        "benign/torch/traced.pt",
        None,
        technique="torchscript",
        fmt="torchscript",
        note="torch.jit.trace of a Sequential",
    )


def _torch_rich(w: Writer) -> None:
    """What real checkpoints hold besides float tensors: every dtype, views, sparse
    layouts, parameters, dtype/device/Size objects and NumPy scalars."""
    import warnings

    import numpy as np
    import torch

    torch.manual_seed(4)
    base = torch.randn(4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sparse CSR is a beta feature
        rich = {
            "bf16": torch.randn(3).to(torch.bfloat16),
            "fp16": torch.randn(3).half(),
            "int8": torch.arange(4, dtype=torch.int8),
            "bool": torch.tensor([True, False]),
            "complex": torch.randn(2, dtype=torch.complex64),
            "base": base,
            "view": base[1:3],
            "sparse_coo": torch.eye(3).to_sparse(),
            "sparse_csr": torch.eye(3).to_sparse_csr(),
            "param": torch.nn.Parameter(torch.ones(2)),
            "dtype": torch.float16,
            "device": torch.device("cpu"),
            "size": torch.Size([2, 3]),
            "best_acc": np.float64(0.93),
            "step": np.int64(700),
            "history": np.arange(3.0),
        }
    for stem, legacy in (("rich_checkpoint", False), ("rich_checkpoint_legacy", True)):
        torch.save(
            rich, w.path(f"benign/torch/{stem}.pt"), _use_new_zipfile_serialization=not legacy
        )
        w.good(
            f"benign/torch/{stem}.pt",
            None,
            technique="torch-checkpoint",
            fmt="pytorch-legacy" if legacy else "pytorch-zip",
            note="dtypes, views, sparse, Parameter, dtype/device/Size, NumPy scalars",
        )


def _numpy(w: Writer) -> None:
    import numpy as np

    rng = np.random.default_rng(1)
    arr = rng.normal(size=(16, 8)).astype(np.float32)
    np.save(w.path("benign/numpy/float32.npy"), arr)
    np.save(w.path("benign/numpy/int64.npy"), np.arange(100, dtype=np.int64))
    rec = np.zeros(4, dtype=[("id", "<i4"), ("score", "<f8"), ("tag", "S8")])
    np.save(w.path("benign/numpy/structured.npy"), rec)
    np.savez(w.path("benign/numpy/arrays.npz"), a=arr, b=np.arange(5))
    np.savez_compressed(
        w.path("benign/numpy/arrays_compressed.npz"), a=arr, labels=np.array(["x", "y"])
    )
    for name in (
        "float32.npy",
        "int64.npy",
        "structured.npy",
        "arrays.npz",
        "arrays_compressed.npz",
    ):
        w.good(
            f"benign/numpy/{name}",
            None,
            technique="numpy",
            fmt="npz" if name.endswith("npz") else "npy",
            note=f"numpy {name}",
        )


def _safetensors(w: Writer) -> None:
    import numpy as np
    import safetensors.numpy
    import safetensors.torch
    import torch

    torch.manual_seed(2)
    tensors = dict(torch.nn.Linear(6, 3).state_dict())
    safetensors.torch.save_file(tensors, w.path("benign/safetensors/torch.safetensors"))
    safetensors.torch.save_file(
        tensors,
        w.path("benign/safetensors/meta.safetensors"),
        metadata={"format": "pt", "source": "corpus"},
    )
    safetensors.numpy.save_file(
        {"emb": np.ones((4, 4), dtype=np.float16), "ids": np.arange(3, dtype=np.int32)},
        w.path("benign/safetensors/numpy.safetensors"),
    )
    for name in ("torch", "meta", "numpy"):
        w.good(
            f"benign/safetensors/{name}.safetensors",
            None,
            technique="safetensors",
            fmt="safetensors",
            note=f"safetensors.{name} save_file",
        )


def _onnx(w: Writer) -> None:
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper

    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh())
    target = w.path("benign/onnx/torch_export.onnx")
    try:
        torch.onnx.export(net, (torch.randn(1, 4),), str(target), dynamo=False)
        w.good(
            "benign/onnx/torch_export.onnx",
            None,
            technique="onnx",
            fmt="onnx",
            note="torch.onnx.export (TorchScript exporter)",
        )
    except Exception:
        target.unlink(missing_ok=True)
    import numpy as np

    weight = numpy_helper.from_array(np.ones((4, 3), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "helper",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    w.good(
        "benign/onnx/helper.onnx",
        model.SerializeToString(),
        technique="onnx",
        fmt="onnx",
        note="onnx.helper-built MatMul+Relu",
    )
    scaler = helper.make_graph(
        [
            helper.make_node(
                "Scaler", ["x"], ["y"], domain="ai.onnx.ml", offset=[0.5] * 4, scale=[2.0] * 4
            )
        ],
        "ml",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    ml_model = helper.make_model(
        scaler, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    onnx.checker.check_model(ml_model)
    w.good(
        "benign/onnx/onnx_ml_scaler.onnx",
        ml_model.SerializeToString(),
        technique="onnx",
        fmt="onnx",
        note="standard ai.onnx.ml domain operator (as sklearn-onnx emits)",
    )
    folder = w.path("benign/onnx/external/model.onnx").parent
    onnx.save_model(
        model,
        str(folder / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx.data",
        size_threshold=0,
    )
    w.good(
        "benign/onnx/external",
        None,
        technique="onnx-external-data",
        fmt="onnx",
        note="onnx.save_model with external data in model.onnx.data",
    )


def _keras(w: Writer) -> None:
    keras = keras_module()
    seq = keras.Sequential(
        [
            keras.Input(shape=(4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(2),
        ]
    )
    inputs = keras.Input(shape=(6,))
    hidden = keras.layers.Dense(4, activation="tanh")(inputs)
    merged = keras.layers.Concatenate()([hidden, keras.layers.Dense(4)(inputs)])
    functional = keras.Model(inputs, keras.layers.Dense(1)(merged))
    for stem, model in (("sequential", seq), ("functional", functional)):
        for ext in ("keras", "h5"):
            model.save(w.path(f"benign/keras/{stem}.{ext}"))
            w.good(
                f"benign/keras/{stem}.{ext}",
                None,
                technique="keras",
                fmt="keras" if ext == "keras" else "h5",
                note=f"Keras 3 {stem} model .{ext}",
            )


def _gguf(w: Writer) -> None:
    for stem, template in (("chatml", CHATML), ("llama3", LLAMA3), ("qwen_tools", QWEN_TOOLS)):
        w.good(
            f"benign/gguf/{stem}.gguf",
            gguf_file(gguf_metadata(template, stem), tensors=2),
            technique="gguf",
            fmt="gguf",
            note=f"GGUF v3 with a real {stem} chat template",
        )


def _savedmodel(w: Writer) -> None:
    nodes = [
        tf_node("x", "Placeholder", attrs=tf_attr_type("dtype", 1)),
        tf_node("w", "Const", attrs=tf_attr_type("dtype", 1)),
        tf_node("mm", "MatMul", ("x", "w")),
        tf_node("y", "Identity", ("mm",)),
    ]
    w.write(
        "benign/savedmodel/saved_model.pb",
        saved_model(nodes, [("__inference_serve_3", [tf_node("r", "Relu", ("x",))])]),
    )
    w.path("benign/savedmodel/variables/.keep").write_bytes(b"")
    w.good(
        "benign/savedmodel",
        None,
        technique="savedmodel",
        fmt="savedmodel",
        note="hand-encoded SavedModel with MatMul/Identity/Relu only",
    )


def _hf_cache(w: Writer) -> None:
    import numpy as np
    import safetensors.numpy

    repo = w.path("benign/hf_cache/models--corpus--tiny/blobs/x").parent.parent
    blobs = repo / "blobs"
    (blobs / "x").unlink(missing_ok=True)
    buf_path = blobs / "tmp.safetensors"
    safetensors.numpy.save_file({"w": np.ones(4, dtype=np.float32)}, buf_path)
    files = {
        "model.safetensors": buf_path.read_bytes(),
        "config.json": json.dumps({"model_type": "tiny", "hidden_size": 4}).encode(),
    }
    buf_path.unlink()
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        link = snapshot / name
        if not link.is_symlink():
            os.symlink(f"../../blobs/{digest}", link)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    w.good(
        str(snapshot.relative_to(w.root)),
        None,
        technique="hf-cache",
        fmt="safetensors",
        note="Hugging Face cache snapshot: symlinks into ../../blobs",
    )


def _archives(w: Writer) -> None:
    import py7zr

    root = w.root / "benign"
    state = (root / "torch/state_dict.pt").read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (
            ("model/state_dict.pt", state),
            ("model/config.json", b'{"layers": [4, 8, 2]}'),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    w.good(
        "benign/archives/model.tar.gz",
        gzip.compress(buf.getvalue(), mtime=0),
        technique="archive",
        fmt="tar.gz>pytorch-zip",
        note="tar.gz of a torch state dict",
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model/model.safetensors", (root / "safetensors/meta.safetensors").read_bytes())
        zf.writestr("model/config.json", b'{"model_type": "linear"}')
    w.good(
        "benign/archives/model.zip",
        buf.getvalue(),
        technique="archive",
        fmt="zip>safetensors",
        note="zip of safetensors + config",
    )
    target = w.path("benign/archives/model.7z")
    with py7zr.SevenZipFile(target, "w") as archive:
        archive.writestr((root / "onnx/helper.onnx").read_bytes(), "model.onnx")
        archive.writestr((root / "sklearn/random_forest_c0.joblib").read_bytes(), "model.joblib")
    w.good(
        "benign/archives/model.7z",
        None,
        technique="archive",
        fmt="7z",
        note="7z of an ONNX model and a joblib file",
    )
