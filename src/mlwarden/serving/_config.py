"""The `gateway:` section of mlwarden.yaml (pydantic boundary models, extra=forbid).

```yaml
gateway:
  host: 127.0.0.1
  port: 8080
  max_body_bytes: 1048576
  tls: {cert_file: pki/server.pem, key_file: pki/server.key, client_ca_file: pki/clients-ca.pem}
  models:
    - name: digits
      path: models/digits.joblib          # loaded only through mlwarden.load
      format: sklearn                     # sklearn | onnx | torch | upstream
      inputs: [{name: pixels, datatype: FP64, shape: [-1, 64], min: 0, max: 16}]
      max_batch: 64
      output: {mode: top_k, top_k: 3, decimals: 3, grants: {data-scientist: raw}}
      attributes: {sensitivity: internal, owner: vision-team, tenant: acme}
```

Relative paths start at the folder of mlwarden.yaml.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip
OutputMode = Literal["label", "top_k", "probabilities", "raw"]
# Model names become URL path segments, metric labels and Cedar entity ids: keep them plain.
_ModelName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
_Dim = Annotated[int, Field(ge=-1, le=1_000_000_000, strict=True)]
_Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    """One declared input: its name, datatype, shape (-1: any size) and value range."""

    name: str = Field(min_length=1, max_length=128)
    datatype: Datatype
    shape: list[_Dim] = Field(min_length=1, max_length=8)
    min: _Finite | None = None
    max: _Finite | None = None

    @model_validator(mode="after")
    def _coherent(self) -> TensorSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("'min' is greater than 'max'")
        if any(d == 0 for d in self.shape):
            raise ValueError("a dimension of 0 accepts no input")
        return self


class OutputPolicyConfig(_Strict):
    """What a caller sees of the model's answer: the least that serves them.

    `mode`: `label` (the predicted class only, the default), `top_k` (the k best classes
    with probabilities rounded to `decimals`), `probabilities` (every class, rounded) or
    `raw` (the model's own outputs, e.g. logits). `grants` lets callers holding a role see
    more (`{data-scientist: raw}`); the most revealing mode among the caller's roles wins.
    Raw outputs are never returned unless `mode` or a grant says `raw`.
    """

    mode: OutputMode = "label"
    top_k: int = Field(default=3, ge=1, le=1000)
    decimals: int = Field(default=3, ge=0, le=8)
    grants: dict[str, OutputMode] = Field(default_factory=dict)


class AttributesConfig(_Strict):
    """The model's Cedar resource attributes."""

    sensitivity: str = ""
    owner: str = ""
    tenant: str = ""


class UpstreamConfig(_Strict):
    """An upstream Open Inference Protocol v2 server that does the inference.

    `model`: its name there (default: the gateway's name). `scores_output`: the output
    holding class scores, which the gateway minimizes (`scores: logits` applies softmax).
    """

    url: str = Field(pattern=r"^https?://[^/?#]+")
    model: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    scores_output: str | None = None
    scores: Literal["probabilities", "logits"] = "probabilities"
    max_connections: int = Field(default=64, ge=1, le=10_000)


class TorchConfig(_Strict):
    """The architecture a PyTorch state dict fills: an `nn.Sequential` of these layers.

    Each `linear` takes its sizes from the state dict (`<index>.weight`); the others have
    no weights. mlwarden.load never unpickles a whole module, so the architecture is
    declared here rather than read from the file.
    """

    layers: list[Literal["linear", "relu", "tanh", "sigmoid"]] = Field(min_length=1)


class ModelConfig(_Strict):
    """One served model."""

    name: _ModelName
    version: str = Field(default="1", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    format: Literal["sklearn", "onnx", "torch", "upstream"]
    path: str | None = Field(default=None, min_length=1)
    signature: list[str] = Field(default_factory=list)
    inputs: list[TensorSpec] = Field(min_length=1, max_length=64)
    max_batch: int = Field(default=64, ge=1, le=1_000_000)
    classes: list[str | int] | None = None
    scores: Literal["probabilities", "logits"] = "logits"
    output: OutputPolicyConfig = Field(default_factory=OutputPolicyConfig)
    attributes: AttributesConfig = Field(default_factory=AttributesConfig)
    upstream: UpstreamConfig | None = None
    torch: TorchConfig | None = None
    offload: bool = False

    @model_validator(mode="after")
    def _coherent(self) -> ModelConfig:
        if self.format == "upstream":
            if self.upstream is None or self.path is not None:
                raise ValueError("format 'upstream' needs 'upstream' and no 'path'")
        elif self.path is None or self.upstream is not None:
            raise ValueError(f"format {self.format!r} needs 'path' and no 'upstream'")
        if (self.format == "torch") != (self.torch is not None):
            raise ValueError("'torch' (the architecture) goes with format 'torch', and only it")
        names = [spec.name for spec in self.inputs]
        if len(set(names)) != len(names):
            raise ValueError("input names must be unique")
        if self.format != "upstream" and len(self.inputs) != 1:
            raise ValueError("a local model takes exactly one input tensor")
        return self


class TlsConfig(_Strict):
    """TLS for the gateway's own listener; `client_ca_file` turns on mutual TLS.

    `require_client_cert: false` asks for a client certificate but lets callers without
    one present a token or API key instead.
    """

    cert_file: str = Field(min_length=1)
    key_file: str = Field(min_length=1)
    client_ca_file: str | None = Field(default=None, min_length=1)
    require_client_cert: bool = True


class GatewayConfig(_Strict):
    """The whole `gateway:` section."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1 << 20, ge=1024, le=1 << 30)
    tls: TlsConfig | None = None
    models: list[ModelConfig] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _unique(self) -> GatewayConfig:
        names = [model.name for model in self.models]
        if len(set(names)) != len(names):
            raise ValueError("model names must be unique")
        return self
