"""Benign pickles made by real frameworks are clean; payloads inside them are not.

The benign files are written by the frameworks at test time (PyTorch, scikit-learn,
joblib, NumPy, SciPy); the malicious ones hide a harmless `true` command.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import pytest
from test_pickle_asm import analyse, rules

from mlwarden.artifacts._context import Limits, ScanContext
from mlwarden.artifacts._formats.pickles import scan, sniff
from mlwarden.report import Finding

np = pytest.importorskip("numpy")


class _System:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("true",))


def _scan_file(data: bytes, location: str = "m.pkl") -> list[Finding]:
    assert sniff(data[:4096], len(data)), "a real pickle must sniff as pickle"
    ctx = ScanContext(limits=Limits(), root=Path("."))
    scan(io.BytesIO(data), location, ctx, 0)
    return ctx.findings


def _sklearn_models() -> list[object]:
    pytest.importorskip("sklearn")
    from sklearn import (
        calibration,
        cluster,
        decomposition,
        ensemble,
        linear_model,
        naive_bayes,
        neighbors,
        neural_network,
        pipeline,
        preprocessing,
        svm,
        tree,
    )
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=80, n_features=6, n_informative=3, random_state=0)
    estimators = [
        linear_model.LogisticRegression(),
        linear_model.SGDClassifier(),
        tree.DecisionTreeClassifier(),
        ensemble.RandomForestClassifier(n_estimators=3),
        ensemble.GradientBoostingClassifier(n_estimators=3),
        ensemble.HistGradientBoostingClassifier(max_iter=3),
        svm.SVC(probability=True),
        neighbors.KNeighborsClassifier(),
        naive_bayes.GaussianNB(),
        neural_network.MLPClassifier(max_iter=5),
        calibration.CalibratedClassifierCV(),
        pipeline.make_pipeline(
            preprocessing.StandardScaler(), decomposition.PCA(3), linear_model.LogisticRegression()
        ),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted: list[object] = [m.fit(x, y) for m in estimators]
        fitted.append(cluster.KMeans(3, n_init=2).fit(x))
        # Keeps its k-means iteration function as an attribute.
        fitted.append(cluster.BisectingKMeans(3).fit(x))
        fitted.append(cluster.BisectingKMeans(3, algorithm="elkan").fit(x))
        fitted.append(preprocessing.OneHotEncoder().fit(x[:, :2].round()))
    return fitted


@pytest.mark.parametrize("protocol", range(6))
def test_sklearn_models_pickled_are_clean(protocol: int) -> None:
    for model in _sklearn_models():
        findings = _scan_file(pickle.dumps(model, protocol=protocol))
        assert findings == [], (type(model).__name__, findings)


@pytest.mark.parametrize("protocol", [None, 2, 3, 4, 5])
def test_sklearn_models_joblib_dumped_are_clean(protocol: int | None, tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    for model in _sklearn_models():
        path = tmp_path / "model.joblib"
        joblib.dump(model, path, protocol=protocol)
        findings = _scan_file(path.read_bytes(), str(path))
        assert findings == [], (type(model).__name__, findings)


def test_joblib_arrays_are_skipped_not_parsed(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    # Array bytes that look like opcodes must not be read as opcodes.
    arrays = {
        "a": np.frombuffer(b"cos\nsystem\n" * 100, dtype=np.uint8),
        "b": np.arange(1000, dtype=np.float64).reshape(10, 100).T,  # Fortran order
        "c": np.zeros((3, 0)),
        "d": np.array(["text", "more"]),
        "e": np.zeros(4, dtype=[("x", "i4"), ("y", "f8")]),
    }
    path = tmp_path / "arrays.joblib"
    joblib.dump(arrays, path)
    assert _scan_file(path.read_bytes()) == []


def test_joblib_object_array_payload_is_found(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    payload = np.empty(2, dtype=object)
    payload[0] = "fine"
    payload[1] = _System()
    path = tmp_path / "model.joblib"
    joblib.dump({"coef": np.ones(3), "classes": payload}, path)
    findings = _scan_file(path.read_bytes())
    assert any(f.rule_id == "PKL001" and "array@" in f.location for f in findings)


def test_joblib_benign_object_array_is_clean(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    path = tmp_path / "labels.joblib"
    joblib.dump({"labels": np.array(["cat", 3, None], dtype=object)}, path)
    assert _scan_file(path.read_bytes()) == []


def test_numpy_and_scipy_objects_are_clean() -> None:
    sparse = pytest.importorskip("scipy.sparse")
    objects = [
        np.arange(10),
        np.float32(1.5),
        np.random.default_rng(0),
        np.random.RandomState(0),
        np.ma.masked_array([1, 2], mask=[0, 1]),
        sparse.csr_matrix(np.eye(3)),
        sparse.coo_array(np.eye(3)),
        collections.OrderedDict(a=np.ones(2)),
    ]
    for protocol in range(6):
        for obj in objects:
            assert _scan_file(pickle.dumps(obj, protocol=protocol)) == [], (obj, protocol)


def _torch_objects() -> list[object]:
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4),
        torch.nn.BatchNorm1d(4),
        torch.nn.LSTM(4, 2),
        torch.nn.Embedding(5, 2),
    )
    optimizer = torch.optim.Adam(model.parameters())
    return [
        model.state_dict(),
        {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3},
        {
            "half": torch.zeros(2, dtype=torch.float16),
            "bf16": torch.zeros(2, dtype=torch.bfloat16),
            "size": torch.Size([2, 3]),
            "device": torch.device("cpu"),
            "dtype": torch.float32,
            "param": torch.nn.Parameter(torch.ones(2)),
            "strided": torch.ones(4, 4).t(),
            "sparse": torch.eye(3).to_sparse(),
        },
    ]


def test_torch_zip_checkpoints_data_pkl_is_clean() -> None:
    torch = pytest.importorskip("torch")
    for obj in _torch_objects():
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        with zipfile.ZipFile(buffer) as archive:
            members = [n for n in archive.namelist() if n.endswith(".pkl")]
            assert members
            for name in members:
                result, findings = analyse(archive.read(name), location=name)
                assert result.complete and findings == [], (name, findings)


def test_torch_legacy_checkpoints_are_clean() -> None:
    torch = pytest.importorskip("torch")
    for obj in _torch_objects():
        buffer = io.BytesIO()
        torch.save(obj, buffer, _use_new_zipfile_serialization=False)
        assert _scan_file(buffer.getvalue(), "legacy.pt") == []


def test_torch_legacy_checkpoint_with_payload() -> None:
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    torch.save(
        {"w": torch.ones(2), "hook": _System()}, buffer, _use_new_zipfile_serialization=False
    )
    assert "PKL001" in rules(_scan_file(buffer.getvalue(), "legacy.pt"))


def test_torch_zip_checkpoint_with_payload() -> None:
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2), "hook": _System()}, buffer)
    with zipfile.ZipFile(buffer) as archive:
        name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        _, findings = analyse(archive.read(name))
    assert "PKL001" in rules(findings)


def test_torch_load_of_an_embedded_checkpoint_is_followed() -> None:
    torch = pytest.importorskip("torch")
    from test_pickle_asm import Asm

    inner = io.BytesIO()
    torch.save({"hook": _System()}, inner)
    data = (
        Asm(4)
        .sglob("torch", "load")
        .raw(b"(")
        .sglob("io", "BytesIO")
        .raw(b"(")
        .b(inner.getvalue())
        .raw(b"tR")
        .raw(b"tR")
        .done()
    )
    _, findings = analyse(data)
    assert "PKL004" in rules(findings)
    assert any(f.rule_id == "PKL001" and "!nested@" in f.location for f in findings)


def test_unaligned_joblib_array_bytes_are_checked_for_imports() -> None:
    # Without joblib's padding byte, a plain pickle.load reads the array bytes as opcodes.
    from test_pickle_asm import Asm

    payload = Asm(2).call("os", "system", "true").done()[2:]
    data = (
        Asm(2)
        .glob("joblib.numpy_pickle", "NumpyArrayWrapper")
        .raw(b")\x81}(")
        .s("shape")
        .raw(b"K" + bytes([len(payload) - 1]) + b"\x85")
        .s("dtype")
        .glob("numpy", "dtype")
        .s("u1")
        .raw(b"\x89\x88\x87R")
        .raw(b"(K\x03\x8c\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
        .s("order")
        .s("C")
        .raw(b"ub")
        .raw(payload[:-1])  # the inline array: opcodes for pickle.load
        .done()
    )
    result, findings = analyse(data)
    assert result.complete
    assert "os.system" in {f.detail.get("callable") for f in findings if f.rule_id == "PKL001"}


def test_whole_torch_module_pickle_is_clean() -> None:
    torch = pytest.importorskip("torch")
    nn = torch.nn
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = nn.Sequential(
            nn.Conv2d(1, 2, 3),
            nn.BatchNorm2d(2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(2, 2),
            nn.TransformerEncoder(nn.TransformerEncoderLayer(d_model=4, nhead=2), num_layers=1),
            nn.GRU(2, 2),
            nn.ModuleDict({"a": nn.Tanh()}),
        )
    buffer = io.BytesIO()
    torch.save(model, buffer)
    with zipfile.ZipFile(buffer) as archive:
        name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        result, findings = analyse(archive.read(name))
    assert result.complete and findings == []


@pytest.mark.parametrize("size", [2, 300_000])
def test_plain_pickle_of_tensors_is_clean(size: int) -> None:
    # pickle.dumps(tensor) stores each storage as torch.storage._load_from_bytes(archive);
    # large storages become a Blob that is scanned in place.
    torch = pytest.importorskip("torch")
    state = {"w": torch.ones(size), "linear": torch.nn.Linear(2, 2).state_dict()}
    for protocol in (2, 4, 5):
        result, findings = analyse(pickle.dumps(state, protocol=protocol))
        assert result.complete and findings == [], findings


def test_load_from_bytes_with_a_payload_archive_is_malicious() -> None:
    torch = pytest.importorskip("torch")
    from test_pickle_asm import Asm

    inner = io.BytesIO()
    torch.save({"hook": _System()}, inner)
    data = Asm(4).sglob("torch.storage", "_load_from_bytes").raw(b"(").b(inner.getvalue())
    _, findings = analyse(data.raw(b"tR").done())
    assert {"PKL004", "PKL001"} <= rules(findings)


def test_load_from_bytes_of_a_computed_value_is_malicious() -> None:
    from test_pickle_asm import Asm

    data = Asm(4).sglob("torch.storage", "_load_from_bytes").raw(b"(").call("a.b", "c")
    _, findings = analyse(data.raw(b"tR").done())
    assert "PKL004" in rules(findings)


def test_load_from_bytes_imported_but_not_called_is_still_a_loader() -> None:
    from test_pickle_asm import Asm

    _, findings = analyse(Asm(4).sglob("torch.storage", "_load_from_bytes").done())
    assert "PKL004" in rules(findings)


def _joblib_with_lying_elsize(tmp_path: Path, elsize: bytes, call: bytes) -> bytes:
    """joblib.dump of float64 zeros whose dtype state claims another element size.

    numpy ignores the state's size for fixed-size kinds, so joblib reads 8 bytes an
    element and then unpickles `call`, which sits where an analyzer that believed the
    state would still be skipping array data (it resumes at STOP).
    """
    joblib = pytest.importorskip("joblib")
    count = 64
    path = tmp_path / "plain.joblib"
    joblib.dump(np.zeros(count), path)
    data = path.read_bytes()
    state = b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"
    at = data.index(state)
    head = data[:at] + b"J" + elsize + data[at + 5 : -(8 * count + 1)]
    after = call + b"0(B"  # call, POP, then MARK and bytes that swallow the rest
    pad = 16 * count - (8 * count + len(after) + 4 + 1)
    body = b"\x00" * (8 * count) + after + pad.to_bytes(4, "little") + b"\x00" * pad + b"1"
    return head + body + b"."


def test_joblib_dtype_state_that_lies_about_the_element_size(tmp_path: Path) -> None:
    call = b"cos\nsystem\n(X\x04\x00\x00\x00truetR"
    findings = _scan_file(_joblib_with_lying_elsize(tmp_path, b"\x10\x00\x00\x00", call))
    assert "PKL001" in {f.rule_id for f in findings}


def test_joblib_reads_what_numpy_says_not_what_the_state_says(tmp_path: Path) -> None:
    # The premise of the test above, shown with a harmless call joblib really makes.
    joblib = pytest.importorskip("joblib")
    call = b"cbuiltins\nsorted\n((K\x02K\x01ltR"
    path = tmp_path / "lying.joblib"
    path.write_bytes(_joblib_with_lying_elsize(tmp_path, b"\x10\x00\x00\x00", call))
    loaded = joblib.load(path)
    assert loaded.shape == (64,)
    assert _scan_file(path.read_bytes()) != []


def test_joblib_object_dtype_without_the_object_flag_is_not_clean(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    path = tmp_path / "labels.joblib"
    joblib.dump({"labels": np.array(["cat", 3, None], dtype=object)}, path)
    data = path.read_bytes()
    flags = b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK?t"  # O8: elsize, alignment, flags 63
    assert flags in data
    findings = _scan_file(data.replace(flags, flags[:-2] + b"\x00t"))
    assert findings
