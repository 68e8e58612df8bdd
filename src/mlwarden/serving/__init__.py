"""The `gateway:` section of mlwarden.yaml: which models the gateway serves, and how.

It lives outside `mlwarden.gateway` because the policy loader (core) validates it, and
the core never imports the gateway.
"""

from mlwarden.serving._config import (
    AttributesConfig,
    Datatype,
    GatewayConfig,
    ModelConfig,
    OutputMode,
    OutputPolicyConfig,
    TensorSpec,
    TlsConfig,
    TorchConfig,
    UpstreamConfig,
)

__all__ = [
    "AttributesConfig",
    "Datatype",
    "GatewayConfig",
    "ModelConfig",
    "OutputMode",
    "OutputPolicyConfig",
    "TensorSpec",
    "TlsConfig",
    "TorchConfig",
    "UpstreamConfig",
]
