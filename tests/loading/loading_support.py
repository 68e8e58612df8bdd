"""Shared pieces of the load tests: real EC keys, policies, small real models."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from onnx import TensorProto, helper, numpy_helper


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyPair:
    private: Path
    public: Path
    fingerprint: str


def make_key(folder: Path, name: str) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    private = folder / f"{name}.pem"
    public = folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyPair(private=private, public=public, fingerprint=hashlib.sha256(der).hexdigest())


Signer = Callable[..., Path]


def policy_file(folder: Path, *signers: KeyPair, threshold: int = 1) -> Path:
    lines = ["version: 1", "trust:", f"  threshold: {threshold}", "  signers:"]
    for index, signer in enumerate(signers):
        lines += [
            f"    - name: signer{index}",
            f"      fingerprint: {signer.fingerprint}",
            f"      public_key: {signer.public}",
        ]
    path = folder / "mlwarden.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def tiny_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def onnx_linear(w: np.ndarray, b: np.ndarray) -> onnx.ModelProto:
    """y = x @ w + b, built with onnx.helper."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, w.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, w.shape[1]])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


W = np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32)
B = np.array([0.5, -0.5], dtype=np.float32)
PROBE = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
