"""The baseline of bench/gateway_load.py: a bare FastAPI app serving the same model, no control.

    MLWARDEN_BENCH_MODEL=model.joblib .venv/bin/uvicorn bench._bare_app:app --no-access-log

What a team writes when it puts a scikit-learn model behind HTTP without thinking about
trust: the same Open Inference Protocol v2 route as the gateway, pydantic request models
(FastAPI's usual way), `joblib.load` with no signature check, no identity, no policy, no
budget, no audit, no input limits, and the predicted label as the answer (the same top-1
label the benchmarked gateway returns). It is the yardstick, not something to deploy.
"""

from __future__ import annotations

import os
from typing import Any

import joblib
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

# A bench script, not library code: the model path comes from the environment that
# gateway_load.py sets when it starts this app under uvicorn.
_MODEL = joblib.load(os.environ["MLWARDEN_BENCH_MODEL"])
_NAME = os.environ.get("MLWARDEN_BENCH_MODEL_NAME", "digits")


class RequestInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class InferenceRequest(BaseModel):
    id: str | None = None
    inputs: list[RequestInput]


app = FastAPI(title="bare baseline")


@app.get("/v2/health/ready")
async def ready() -> dict[str, bool]:
    return {"ready": True}


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: InferenceRequest) -> dict[str, Any]:
    tensor = request.inputs[0]
    features = np.asarray(tensor.data, dtype=np.float64).reshape(tensor.shape)
    labels = _MODEL.predict(features)
    return {
        "model_name": _NAME,
        "id": request.id,
        "outputs": [
            {"name": "label", "shape": [len(labels)], "datatype": "INT64", "data": labels.tolist()}
        ],
    }
