"""Real pieces for the gateway tests: keys, signed models trained here, tokens, a Cedar
policy, an mlwarden.yaml, and helpers to call the app in-process or over a real server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import jwt
import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from mlwarden.gateway import Gateway, make_server
from mlwarden.identity import hash_api_key
from mlwarden.policy import load_policy

ISSUER = "https://idp.test"
AUDIENCE = "mlwarden-gateway"
T = TypeVar("T")

POLICY = """
@id("analysts-infer")
permit (principal, action == Mlwarden::Action::"infer", resource)
when { principal.roles.contains("analyst") && principal.tenant == resource.tenant };

@id("analysts-read")
permit (principal, action == Mlwarden::Action::"read_metadata", resource)
when { principal.roles.contains("analyst") && principal.tenant == resource.tenant };

@id("admins")
permit (principal, action == Mlwarden::Action::"admin", resource)
when { principal.roles.contains("admin") };

@id("secret-needs-clearance")
forbid (principal, action, resource)
when { resource.sensitivity == "secret" && principal.clearance < 3 };
"""

API_KEYS = {
    # name: (roles, tenant)
    "batch": (["analyst"], "acme"),
    "outsider": (["analyst"], "globex"),
    "ops": (["admin"], "acme"),
    "scientist": (["analyst", "data-scientist"], "acme"),
}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_ec_key(folder: Path, name: str) -> tuple[Path, Path, str]:
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
    return private, public, hashlib.sha256(der).hexdigest()


@dataclass
class Models:
    """Digits models trained once per session, in three formats, signed by `signer`."""

    folder: Path
    signer_private: Path
    signer_public: Path
    fingerprint: str
    x_test: np.ndarray
    expected: np.ndarray  # the scikit-learn model's predictions on x_test
    coef: np.ndarray
    intercept: np.ndarray


def build_models(folder: Path) -> Models:
    import joblib
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from mlwarden.signing import sign

    private, public, fingerprint = write_ec_key(folder, "release")
    x, y = load_digits(return_X_y=True)
    clf = LogisticRegression(max_iter=300).fit(x[:1500], y[:1500])
    joblib.dump(clf, folder / "digits.joblib")
    coef = clf.coef_.astype(np.float32)
    intercept = clf.intercept_.astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["logits"]),
        ],
        "digits",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 10])],
        [numpy_helper.from_array(coef.T.copy(), "w"), numpy_helper.from_array(intercept, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, folder / "digits.onnx")
    torch.save(
        {"0.weight": torch.from_numpy(coef.copy()), "0.bias": torch.from_numpy(intercept.copy())},
        folder / "digits.pt",
    )
    for name in ("digits.joblib", "digits.onnx", "digits.pt"):
        sign(folder / name, key=private, signature=folder / f"{name}.sig")
    x_test = x[1500:1540]
    return Models(
        folder=folder,
        signer_private=private,
        signer_public=public,
        fingerprint=fingerprint,
        x_test=x_test,
        expected=clf.predict(x_test),
        coef=coef,
        intercept=intercept,
    )


@dataclass
class Env:
    """One gateway's files: mlwarden.yaml, the Cedar policy, keys and tokens."""

    folder: Path
    config: Path
    policy: Path
    models: Models
    jwt_key: Any
    api_keys: dict[str, str] = field(default_factory=dict)

    def token(self, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "alice",
            "exp": now + 600,
            "iat": now,
            "roles": ["analyst"],
            "tenant": "acme",
            "clearance": 1,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, self.jwt_key, algorithm="ES256", headers={"kid": "es-1"})

    def bearer(self, **overrides: Any) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token(**overrides)}"}

    def key(self, name: str) -> dict[str, str]:
        return {"x-api-key": self.api_keys[name]}

    def gateway(self) -> Gateway:
        return Gateway.from_policy(load_policy(self.config))

    def body(self, rows: int = 1, start: int = 0, datatype: str = "FP64") -> dict[str, Any]:
        x = self.models.x_test[start : start + rows]
        tensor = {
            "name": "pixels",
            "shape": [rows, 64],
            "datatype": datatype,
            "data": x.ravel().tolist(),
        }
        return {"inputs": [tensor]}


def model_entry(name: str, fmt: str, path: str | None, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "format": fmt,
        "inputs": [
            {
                "name": "pixels",
                "datatype": "FP32" if fmt in ("onnx", "torch") else "FP64",
                "shape": [-1, 64],
                "min": 0,
                "max": 16,
            }
        ],
        "max_batch": 32,
        "attributes": {"tenant": "acme", "owner": "vision"},
    }
    if path is not None:
        entry["path"] = str(path)
    entry.update(extra)
    return entry


def default_models(models: Models) -> list[dict[str, Any]]:
    folder = models.folder
    return [
        model_entry(
            "digits",
            "sklearn",
            folder / "digits.joblib",
            output={
                "mode": "top_k",
                "top_k": 3,
                "decimals": 2,
                "grants": {"data-scientist": "raw"},
            },
        ),
        model_entry(
            "digits-onnx",
            "onnx",
            folder / "digits.onnx",
            output={"mode": "probabilities", "decimals": 3},
        ),
        model_entry("digits-torch", "torch", folder / "digits.pt", torch={"layers": ["linear"]}),
        model_entry("digits-label", "sklearn", folder / "digits.joblib"),
        model_entry(
            "digits-secret",
            "sklearn",
            folder / "digits.joblib",
            attributes={"tenant": "acme", "sensitivity": "secret"},
        ),
        model_entry("tight", "sklearn", folder / "digits.joblib"),
        model_entry("quota", "sklearn", folder / "digits.joblib"),
    ]


def make_env(
    folder: Path,
    models: Models,
    *,
    model_entries: list[dict[str, Any]] | None = None,
    budgets: dict[str, Any] | None = None,
    gateway_extra: dict[str, Any] | None = None,
    identity_extra: dict[str, Any] | None = None,
    audit_url: str | None = None,
    audit_table: str = "audit_log",
) -> Env:
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid="es-1", use="sig", alg="ES256")
    (folder / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    policy = folder / "models.cedar"
    policy.write_text(POLICY)
    api_keys: dict[str, str] = {}
    key_entries = []
    for name, (roles, tenant) in API_KEYS.items():
        secret = (
            f"mlw_test_{name}_" + hashlib.sha256(name.encode() + str(folder).encode()).hexdigest()
        )
        api_keys[name] = secret
        key_entries.append(
            {"principal": name, "sha256": hash_api_key(secret), "roles": roles, "tenant": tenant}
        )
    identity: dict[str, Any] = {
        "jwt": {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "algorithms": ["ES256"],
            "jwks_file": "jwks.json",
        },
        "api_keys": {"header": "x-api-key", "keys": key_entries},
    }
    identity.update(identity_extra or {})
    gateway: dict[str, Any] = {"models": model_entries or default_models(models)}
    gateway.update(gateway_extra or {})
    document = {
        "version": 1,
        "trust": {
            "signers": [
                {
                    "name": "release",
                    "fingerprint": models.fingerprint,
                    "public_key": str(models.signer_public),
                }
            ]
        },
        "identity": identity,
        "gateway": gateway,
        "authorization": {"policy_files": ["models.cedar"], "reload_check_seconds": 0},
        "budgets": budgets
        or {
            "store": {"kind": "sqlite", "path": "budgets.sqlite3"},
            "defaults": {"rate": 10000, "burst": 10000, "quota": 1000000},
            "models": {"tight": {"rate": 0.01, "burst": 2}, "quota": {"quota": 3, "period": "day"}},
        },
        "audit": {"url": audit_url or "sqlite:///audit.db", "table": audit_table, "max_batch": 256},
    }
    config = folder / "mlwarden.yaml"
    config.write_text(json.dumps(document, indent=1))  # JSON is YAML
    return Env(
        folder=folder, config=config, policy=policy, models=models, jwt_key=key, api_keys=api_keys
    )


async def call(
    app: Gateway,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
    content: bytes | None = None,
    client: tuple[str, int] = ("127.0.0.1", 50000),
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        return await http.request(method, path, headers=headers, json=json_body, content=content)


@contextmanager
def running(app: Gateway, *, tls: Any = None, base_dir: Path | None = None) -> Iterator[str]:
    """Serve `app` on a real uvicorn on 127.0.0.1 in a thread; yield its base URL."""
    port = free_port()
    server = make_server(app, host="127.0.0.1", port=port, tls=tls, base_dir=base_dir)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"{'https' if tls is not None else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
