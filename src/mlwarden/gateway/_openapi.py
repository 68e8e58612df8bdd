"""The gateway's OpenAPI 3.1 document, published at `/openapi.json`.

Written out rather than generated: the hot path is pure ASGI, and the document states the
contract tests (schemathesis) hold the gateway to, including every error status.
"""

from __future__ import annotations

from typing import Any

from mlwarden import __version__
from mlwarden.serving import GatewayConfig

_DATATYPES = [
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(description: str, ref: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


_DENIALS = {
    "401": _error("No or bad credential (E301-E307)"),
    "403": _error("Denied by the authorization policy (E310)"),
    "404": _error("Unknown model (E136)"),
    "500": _error("Internal error (E901, E504)"),
    "503": _error("A control's store is down: the request is refused (E308, E351, E403)"),
}


def build_openapi(config: GatewayConfig, *, api_key_header: str | None) -> dict[str, Any]:
    """The document for this configuration (the model names are listed as an enum)."""
    names = [model.name for model in config.models]
    name_param = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": names},
    }
    version_param = {
        "name": "version",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    security: list[dict[str, list[str]]] = [{"bearer": []}]
    schemes: dict[str, Any] = {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }
    if api_key_header is not None:
        security.append({"apiKey": []})
        schemes["apiKey"] = {"type": "apiKey", "in": "header", "name": api_key_header}
    infer = {
        "summary": "Run inference (Open Inference Protocol v2)",
        "operationId": "infer",
        "security": security,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}
            },
        },
        "responses": {
            "200": _json("The minimized answer", "InferenceResponse"),
            "400": _error("Bad input (E130-E134, E404)"),
            "413": _error("Body too large (E135)"),
            "429": _error("Rate limit or query budget (E401, E402); see Retry-After"),
            "502": _error("Bad upstream response (E503)"),
            "504": _error("Upstream timeout (E502)"),
            **_DENIALS,
        },
    }
    metadata = {
        "summary": "Model metadata",
        "operationId": "model_metadata",
        "security": security,
        "responses": {"200": _json("Model metadata", "ModelMetadata"), **_DENIALS},
    }
    ready = {
        "summary": "Model readiness",
        "operationId": "model_ready",
        "security": security,
        "responses": {"200": _json("Readiness", "Ready"), **_DENIALS},
    }
    paths: dict[str, Any] = {
        "/v2/health/live": {
            "get": {
                "summary": "Liveness (no credential needed)",
                "operationId": "live",
                "responses": {"200": _json("Live", "Live")},
            }
        },
        "/v2/health/ready": {
            "get": {
                "summary": "Readiness (no credential needed)",
                "operationId": "ready",
                "responses": {"200": _json("Ready", "Ready"), "503": _json("Not ready", "Ready")},
            }
        },
        "/v2/models/{name}": {"get": {**metadata, "parameters": [name_param]}},
        "/v2/models/{name}/ready": {"get": {**ready, "parameters": [name_param]}},
        "/v2/models/{name}/infer": {"post": {**infer, "parameters": [name_param]}},
        "/v2/models/{name}/versions/{version}/infer": {
            "post": {
                **infer,
                "operationId": "infer_version",
                "parameters": [name_param, version_param],
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (the admin action)",
                "operationId": "metrics",
                "security": security,
                "responses": {
                    "200": {"description": "Metrics", "content": {"text/plain": {}}},
                    **_DENIALS,
                },
            }
        },
    }
    tensor = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 1}},
            "datatype": {"type": "string", "enum": _DATATYPES},
            "data": {"type": "array"},
            "parameters": {"type": "object"},
        },
        "additionalProperties": False,
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "mlwarden gateway", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": schemes,
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["code", "message", "request_id"],
                    "properties": {
                        "code": {"type": "string", "pattern": "^E[0-9]{3}$"},
                        "message": {"type": "string"},
                        "request_id": {"type": "string"},
                    },
                },
                "Tensor": tensor,
                "InferenceRequest": {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "id": {"type": "string"},
                        "parameters": {"type": "object"},
                        "inputs": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Tensor"},
                        },
                        "outputs": {"type": "array"},
                    },
                    "additionalProperties": False,
                },
                "InferenceResponse": {
                    "type": "object",
                    "required": ["model_name", "outputs"],
                    "properties": {
                        "model_name": {"type": "string"},
                        "model_version": {"type": "string"},
                        "id": {"type": "string"},
                        "outputs": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Tensor"},
                        },
                    },
                },
                "ModelMetadata": {
                    "type": "object",
                    "required": ["name", "platform", "inputs", "outputs"],
                    "properties": {
                        "name": {"type": "string"},
                        "versions": {"type": "array", "items": {"type": "string"}},
                        "platform": {"type": "string"},
                        "inputs": {"type": "array"},
                        "outputs": {"type": "array"},
                    },
                },
                "Live": {"type": "object", "properties": {"live": {"type": "boolean"}}},
                "Ready": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
            },
        },
    }
