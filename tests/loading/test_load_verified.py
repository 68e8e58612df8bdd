"""mlwarden.load end to end: sign a real model, load it, and every way it refuses."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import joblib
import numpy as np
import onnx
import pytest
import torch
from loading_support import PROBE, B, KeyPair, Signer, W, onnx_linear, policy_file, tiny_net
from safetensors.numpy import save_file as save_numpy_file
from safetensors.torch import save_file as save_torch_file
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mlwarden
from mlwarden import errors
from mlwarden.loading import _read

X, Y = make_classification(n_samples=120, n_features=5, random_state=1)


def sklearn_model() -> object:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(X, Y)


class Payload:
    """Pickles as os.system(touch MARKER)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.marker}",))


# --- every format loads and predicts the same ------------------------------------------


def test_torch_state_dict(tmp_path: Path, sign: Signer, trusted: KeyPair) -> None:
    net = tiny_net()
    path = tmp_path / "model.pt"
    torch.save(net.state_dict(), path)
    sign(path, trusted)
    clone = tiny_net()
    clone.load_state_dict(mlwarden.load(path, public_key=trusted.public))
    assert torch.equal(clone(torch.ones(2, 4)), net(torch.ones(2, 4)))


@pytest.mark.parametrize("framework", ["torch", "numpy"])
def test_safetensors(tmp_path: Path, sign: Signer, trusted: KeyPair, framework: str) -> None:
    path = tmp_path / "model.safetensors"
    if framework == "torch":
        state = {k: v.contiguous() for k, v in tiny_net().state_dict().items()}
        save_torch_file(state, path)
    else:
        arrays = {"w": W, "b": B}
        save_numpy_file(arrays, path)
    sign(path, trusted)
    loaded = mlwarden.load(path, public_key=trusted.public, framework=framework)
    if framework == "torch":
        assert all(torch.equal(loaded[k], v) for k, v in state.items())
    else:
        np.testing.assert_array_equal(loaded["w"], W)


def test_onnx_proto_and_session(tmp_path: Path, sign: Signer, trusted: KeyPair) -> None:
    path = tmp_path / "model.onnx"
    onnx.save_model(onnx_linear(W, B), path)
    sign(path, trusted)
    proto = mlwarden.load(path, public_key=trusted.public)
    assert isinstance(proto, onnx.ModelProto)
    session = mlwarden.load(path, public_key=trusted.public, as_session=True)
    (out,) = session.run(None, {"x": PROBE})
    np.testing.assert_allclose(out, PROBE @ W + B, rtol=1e-6)


def test_sklearn_pickle(tmp_path: Path, sign: Signer, trusted: KeyPair) -> None:
    model = sklearn_model()
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model, protocol=5))
    sign(path, trusted)
    loaded = mlwarden.load(path, public_key=trusted.public)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))  # type: ignore[attr-defined]


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("xz", 3)])
def test_sklearn_joblib(tmp_path: Path, sign: Signer, trusted: KeyPair, compress: object) -> None:
    model = sklearn_model()
    path = tmp_path / "model.joblib"
    joblib.dump(model, path, compress=compress)
    sign(path, trusted)
    loaded = mlwarden.load(path, public_key=trusted.public)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))  # type: ignore[attr-defined]


# --- signed folders ---------------------------------------------------------------------


def model_folder(root: Path) -> Path:
    """A folder with a safetensors file in a subfolder and an ONNX model with external data."""
    folder = root / "churn"
    (folder / "weights").mkdir(parents=True)
    save_numpy_file({"w": W, "b": B}, folder / "weights" / "model.safetensors")
    onnx.save_model(
        onnx_linear(W, B),
        folder / "model.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx.data",
        size_threshold=0,
    )
    (folder / "config.json").write_text('{"labels": 2}')
    return folder


def test_file_in_a_signed_folder_with_a_policy(
    tmp_path: Path, sign: Signer, trusted: KeyPair
) -> None:
    folder = model_folder(tmp_path)
    sign(folder, trusted)  # writes churn.sig beside the folder
    policy = policy_file(tmp_path, trusted)
    loaded = mlwarden.load(
        folder / "weights" / "model.safetensors", trust=policy, framework="numpy"
    )
    np.testing.assert_array_equal(loaded["b"], B)
    session = mlwarden.load(folder / "model.onnx", trust=str(policy), as_session=True)
    (out,) = session.run(None, {"x": PROBE})
    np.testing.assert_allclose(out, PROBE @ W + B, rtol=1e-6)


def test_explicit_signature_and_root(tmp_path: Path, sign: Signer, trusted: KeyPair) -> None:
    folder = model_folder(tmp_path)
    bundle = sign(folder, trusted, tmp_path / "elsewhere.sig")
    target = folder / "weights" / "model.safetensors"
    with pytest.raises(errors.NotVerifiedError):  # no churn.sig: nothing to find
        mlwarden.load(target, public_key=trusted.public)
    loaded = mlwarden.load(
        target, public_key=trusted.public, signature=bundle, root=folder, framework="numpy"
    )
    np.testing.assert_array_equal(loaded["w"], W)


def test_onnx_external_data_swapped_after_signing(
    tmp_path: Path, sign: Signer, trusted: KeyPair
) -> None:
    folder = model_folder(tmp_path)
    sign(folder, trusted)
    data = folder / "model.onnx.data"
    data.write_bytes(bytes(len(data.read_bytes())))
    with pytest.raises(errors.ManifestMismatchError, match=r"model\.onnx\.data"):
        mlwarden.load(folder / "model.onnx", public_key=trusted.public)


def test_file_added_after_signing_is_not_verified(
    tmp_path: Path, sign: Signer, trusted: KeyPair
) -> None:
    folder = model_folder(tmp_path)
    sign(folder, trusted)
    extra = folder / "extra.safetensors"
    save_numpy_file({"w": W}, extra)
    with pytest.raises(errors.NotVerifiedError, match="not in the signed manifest") as info:
        mlwarden.load(extra, public_key=trusted.public)
    assert info.value.code == "E208"


# --- refusals -----------------------------------------------------------------------------


@pytest.fixture
def signed_pickle(tmp_path: Path, sign: Signer, trusted: KeyPair) -> Path:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(sklearn_model()))
    sign(path, trusted)
    return path


def test_unsigned_file_is_refused(tmp_path: Path, trusted: KeyPair) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(errors.NotVerifiedError, match="no signature found") as info:
        mlwarden.load(path, public_key=trusted.public)
    assert info.value.code == "E208"


def test_no_trust_trusts_nothing(signed_pickle: Path, tmp_path: Path) -> None:
    with pytest.raises(errors.UntrustedSignerError, match="trusts nothing") as info:
        mlwarden.load(signed_pickle)
    assert info.value.code == "E203"
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(errors.UntrustedSignerError):
        mlwarden.load(signed_pickle, trust=empty)


def test_wrong_key_is_refused(signed_pickle: Path, stranger: KeyPair, tmp_path: Path) -> None:
    with pytest.raises(errors.IntegrityError) as info:
        mlwarden.load(signed_pickle, public_key=stranger.public)
    assert info.value.code in ("E202", "E203")
    with pytest.raises(errors.UntrustedSignerError):
        mlwarden.load(signed_pickle, trust=policy_file(tmp_path, stranger))


def test_malformed_bundle_is_refused(signed_pickle: Path, trusted: KeyPair) -> None:
    bundle = signed_pickle.with_name(signed_pickle.name + ".sig")
    bundle.write_bytes(bundle.read_bytes()[:40])
    with pytest.raises(errors.BundleMalformedError) as info:
        mlwarden.load(signed_pickle, public_key=trusted.public)
    assert info.value.code == "E201"


def test_file_swapped_after_signing(signed_pickle: Path, trusted: KeyPair) -> None:
    signed_pickle.write_bytes(pickle.dumps(LogisticRegression()))
    with pytest.raises(errors.ManifestMismatchError, match=r"model\.pkl") as info:
        mlwarden.load(signed_pickle, public_key=trusted.public)
    assert info.value.code == "E204"


def test_signature_over_another_model_name(tmp_path: Path, sign: Signer, trusted: KeyPair) -> None:
    folder = model_folder(tmp_path)
    sign(folder, trusted)
    renamed = tmp_path / "other"
    folder.rename(renamed)
    shutil.copy(tmp_path / "churn.sig", tmp_path / "other.sig")
    with pytest.raises(errors.IntegrityError):
        mlwarden.load(renamed / "config.json", public_key=trusted.public)


@pytest.mark.parametrize("container", ["pickle", "joblib"])
def test_malicious_pickle_signed_by_a_trusted_key_is_never_deserialized(
    tmp_path: Path, sign: Signer, trusted: KeyPair, container: str
) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / f"model.{'pkl' if container == 'pickle' else 'joblib'}"
    payload = {"weights": np.ones(3), "x": Payload(marker)}
    if container == "pickle":
        path.write_bytes(pickle.dumps(payload))
    else:
        joblib.dump(payload, path, compress=3)
    sign(path, trusted)
    with pytest.raises(errors.ScanRefusedError, match="PKL001") as info:
        mlwarden.load(path, public_key=trusted.public)
    assert info.value.code == "E205"
    assert not marker.exists()


def test_restricted_unpickler_holds_when_the_scan_misses(
    signed_payload: Path, trusted: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulate a scanner bypass: the scan says clean; the unpickler must still refuse.
    monkeypatch.setattr(_read, "scan_clean", lambda data, location, root: "pickle")
    with pytest.raises(errors.UnsupportedLoadError, match="system") as info:
        mlwarden.load(signed_payload, public_key=trusted.public)
    assert info.value.code == "E113"
    assert not (signed_payload.parent / "pwned").exists()


@pytest.fixture
def signed_payload(tmp_path: Path, sign: Signer, trusted: KeyPair) -> Path:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(Payload(tmp_path / "pwned")))
    sign(path, trusted)
    return path


def test_unknown_global_is_refused(tmp_path: Path, sign: Signer, trusted: KeyPair) -> None:
    from collections import ChainMap

    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(ChainMap({"a": 1})))
    sign(path, trusted)
    with pytest.raises((errors.ScanRefusedError, errors.UnsupportedLoadError)):
        mlwarden.load(path, public_key=trusted.public)


def test_format_load_does_not_deserialize(tmp_path: Path, sign: Signer, trusted: KeyPair) -> None:
    path = tmp_path / "weights.npy"
    np.save(path, W)
    sign(path, trusted)
    with pytest.raises(errors.UnsupportedLoadError, match="does not load npy") as info:
        mlwarden.load(path, public_key=trusted.public)
    assert info.value.code == "E113"


def test_size_limit(signed_pickle: Path, trusted: KeyPair) -> None:
    with pytest.raises(errors.LimitExceededError) as info:
        mlwarden.load(signed_pickle, public_key=trusted.public, max_bytes=100)
    assert info.value.code == "E106"


def test_bad_arguments(signed_pickle: Path, trusted: KeyPair) -> None:
    with pytest.raises(errors.UsageError):
        mlwarden.load(signed_pickle, public_key=trusted.public, format="keras")
    with pytest.raises(errors.UsageError):
        mlwarden.load(signed_pickle.parent, public_key=trusted.public)
    with pytest.raises(errors.PathNotFoundError):
        mlwarden.load(signed_pickle.with_name("missing.pkl"), public_key=trusted.public)
    with pytest.raises(errors.UsageError):
        mlwarden.load(signed_pickle, trust=42)  # type: ignore[arg-type]


# --- no window between check and load --------------------------------------------------


def test_bytes_hashed_are_the_bytes_loaded(
    tmp_path: Path, sign: Signer, trusted: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Swap the file on disk right after load read it: the verified content still loads."""
    model = sklearn_model()
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    sign(path, trusted)
    marker = tmp_path / "pwned"
    evil = pickle.dumps(Payload(marker))
    real_read = _read.read_once
    reads: list[Path] = []

    def read_then_swap(file: Path, max_bytes: int) -> bytes:
        data = real_read(file, max_bytes)
        reads.append(file)
        file.write_bytes(evil)  # the attacker wins the race on disk
        return data

    monkeypatch.setattr(_read, "read_once", read_then_swap)
    loaded = mlwarden.load(path, public_key=trusted.public)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))  # type: ignore[attr-defined]
    assert reads == [path]  # read once, never reopened
    assert path.read_bytes() == evil
    assert not marker.exists()


def test_onnx_external_data_is_read_once_too(
    tmp_path: Path, sign: Signer, trusted: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = model_folder(tmp_path)
    sign(folder, trusted)
    real_read = _read.read_once

    def read_then_swap(file: Path, max_bytes: int) -> bytes:
        data = real_read(file, max_bytes)
        file.write_bytes(bytes(len(data)))
        return data

    monkeypatch.setattr(_read, "read_once", read_then_swap)
    session = mlwarden.load(folder / "model.onnx", public_key=trusted.public, as_session=True)
    (out,) = session.run(None, {"x": PROBE})
    np.testing.assert_allclose(out, PROBE @ W + B, rtol=1e-6)


# --- the folder and the policy ------------------------------------------------------------


def test_verify_folder_checks_the_neighbours(
    tmp_path: Path, sign: Signer, trusted: KeyPair
) -> None:
    folder = model_folder(tmp_path)
    sign(folder, trusted)
    (folder / "config.json").write_text('{"labels": 3}')
    target = folder / "weights" / "model.safetensors"
    # The loaded file itself is intact, so a plain load succeeds ...
    assert "w" in mlwarden.load(target, public_key=trusted.public, framework="numpy")
    # ... and verify_folder=True refuses because a neighbour changed.
    with pytest.raises(errors.ManifestMismatchError, match=r"config\.json") as info:
        mlwarden.load(target, public_key=trusted.public, framework="numpy", verify_folder=True)
    assert info.value.code == "E204"


def test_verify_folder_with_a_cache(tmp_path: Path, sign: Signer, trusted: KeyPair) -> None:
    folder = model_folder(tmp_path)
    sign(folder, trusted)
    cache = tmp_path / "verify.cache"
    for _ in range(2):
        loaded = mlwarden.load(
            folder / "weights" / "model.safetensors",
            public_key=trusted.public,
            framework="numpy",
            verify_folder=True,
            cache=cache,
        )
        np.testing.assert_array_equal(loaded["w"], W)


def test_k_of_n_signers(tmp_path: Path, sign: Signer, trusted: KeyPair, stranger: KeyPair) -> None:
    path = tmp_path / "model.pkl"
    model = sklearn_model()
    path.write_bytes(pickle.dumps(model))
    first = sign(path, trusted, tmp_path / "a.sig")
    second = sign(path, stranger, tmp_path / "b.sig")
    policy = policy_file(tmp_path, trusted, stranger, threshold=2)
    loaded = mlwarden.load(path, trust=policy, signature=[first, second])
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))  # type: ignore[attr-defined]
    with pytest.raises(errors.UntrustedSignerError, match="requires 2"):
        mlwarden.load(path, trust=policy, signature=[first])


def test_refusals_name_the_file(signed_pickle: Path, stranger: KeyPair) -> None:
    with pytest.raises(errors.UntrustedSignerError) as info:
        mlwarden.load(signed_pickle, public_key=stranger.public)
    assert str(signed_pickle) in info.value.one_line()


def test_legacy_torch_file(tmp_path: Path, sign: Signer, trusted: KeyPair) -> None:
    net = tiny_net()
    path = tmp_path / "legacy.pt"
    torch.save(net.state_dict(), path, _use_new_zipfile_serialization=False)
    sign(path, trusted)
    state = mlwarden.load(path, public_key=trusted.public)
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


def test_whole_torch_module_is_never_unpickled(
    tmp_path: Path, sign: Signer, trusted: KeyPair
) -> None:
    path = tmp_path / "module.pt"
    torch.save(tiny_net(), path)  # pickles module classes, not just tensors
    sign(path, trusted)
    # The scan may accept torch.nn classes; weights_only never builds them.
    with pytest.raises((errors.UnsupportedLoadError, errors.ScanRefusedError), match="Sequential"):
        mlwarden.load(path, public_key=trusted.public)


def test_load_is_exported_lazily() -> None:
    import subprocess
    import sys

    code = (
        "import sys, mlwarden; f = mlwarden.load; "
        "print(sorted(m for m in ('torch', 'onnx', 'joblib', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert "load" in mlwarden.__all__


def test_torchscript_is_refused(tmp_path: Path, sign: Signer, trusted: KeyPair) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(tiny_net()), path)
    sign(path, trusted)
    with pytest.raises((errors.UnsupportedLoadError, errors.ScanRefusedError)) as info:
        mlwarden.load(path, public_key=trusted.public)
    assert info.value.code in ("E113", "E205")


def test_allowlisted_by_the_scan_but_refused_by_the_unpickler(
    tmp_path: Path, sign: Signer, trusted: KeyPair
) -> None:
    """joblib's pre-0.10 array wrapper passes the scan, but reads companion files: refused."""
    from joblib.numpy_pickle_compat import NDArrayWrapper

    path = tmp_path / "old.pkl"
    path.write_bytes(pickle.dumps({"coef": NDArrayWrapper("companion.npy", np.ndarray)}))
    sign(path, trusted)
    assert not mlwarden.scan([path]).findings  # the scan has nothing against it
    with pytest.raises(errors.UnsupportedLoadError, match="NDArrayWrapper") as info:
        mlwarden.load(path, public_key=trusted.public)
    assert info.value.code == "E113"
