"""The ceiling for ``benchmarks/serve.py``: a bare FastAPI app with one pydantic endpoint doing dot + sigmoid.

Written the way a FastAPI user naturally writes it: a pydantic request model (``features: list[list[float]]``,
so every float is validated by pydantic), numpy for ``sigmoid(X @ w + b)``, and a plain dict of lists as the
response. Its return annotation makes FastAPI validate and serialize the response with pydantic, the faster
of the two natural ways (an unannotated dict goes through ``jsonable_encoder``: about 30% slower, measured
in-process). No model registry, no error envelope, no size limits, no metrics: the least work an HTTP
scoring endpoint can do, which is what makes it a ceiling for 1-row requests.

The weights are a fixed seeded vector of 30 features, or those in the JSON file named by
``BENCH_BARE_WEIGHTS`` (``{"coef": [...], "intercept": b}``): ``serve.py`` passes the coefficients of the
model it trained on our service, so the two apps must return the same probabilities.

Run it alone with::

    .venv/bin/python -m uvicorn bare_app:app --app-dir benchmarks --port 8001 --workers 1
"""

from __future__ import annotations

import json
import os

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

N_FEATURES = 30


def _weights() -> tuple[np.ndarray, float]:
    path = os.environ.get("BENCH_BARE_WEIGHTS")
    if path:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
        return np.asarray(spec["coef"], dtype=np.float64), float(spec["intercept"])
    return np.random.default_rng(0).normal(scale=0.1, size=N_FEATURES), 0.0


W, B = _weights()


class PredictProbaRequest(BaseModel):
    features: list[list[float]]


app = FastAPI(title="bare logistic regression (benchmark ceiling)")


@app.post("/predict_proba")
async def predict_proba(body: PredictProbaRequest) -> dict[str, list[list[float]]]:
    X = np.asarray(body.features, dtype=np.float64)
    p = 1.0 / (1.0 + np.exp(-(X @ W + B)))
    return {"probabilities": np.column_stack([1.0 - p, p]).tolist()}
