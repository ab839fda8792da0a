"""Scoring routes: probabilities, labels at a threshold, and evaluation metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from .. import operations
from ..registry import LoadedModel
from ..schemas import MetricsRequest, PredictProbaResponse, PredictRequest, PredictResponse, VersionRef
from .bodies import json_response, openapi_body, read_json_object, validate_envelope
from .deps import RegistryDep
from .errors import ERROR_RESPONSES
from .security import ReadAccess

router = APIRouter(tags=["prediction"], dependencies=ReadAccess)

ThresholdQuery = Annotated[
    float | None,
    Query(ge=0, le=1, description="Binary models: positive when P(positive) >= threshold. Default: the "
          "version's stored threshold (0.5 unless set). Not allowed for multiclass models."),
]


async def _scoring_input(
    request: Request, model: type[PredictRequest]
) -> tuple[LoadedModel, Any, dict[str, Any], PredictRequest]:
    """Parse and check a scoring body and load its version: the shared first half of the scoring routes.

    It reads the registry and settings from ``app.state`` rather than through dependencies: this is the
    hot path, and every dependency costs FastAPI a resolution per request.
    """
    state = request.app.state
    obj = await read_json_object(request)
    envelope, bulk = validate_envelope(model, obj)
    log_fields = request.scope.setdefault("state", {})
    log_fields["model"] = envelope.model
    loaded = state.registry.load(envelope.model, envelope.version)
    log_fields["version"] = loaded.version
    X = operations.input_matrix(
        bulk.get("features"), bulk.get("records"), loaded.metadata.get("feature_names"),
        state.settings.max_predict_rows,
    )
    log_fields["rows"] = int(X.shape[0])
    state.monitoring.rows_observed(request.scope["path"], X.shape[0])
    return loaded, X, bulk, envelope


@router.post(
    "/predict_proba",
    summary="Class probabilities",
    description="Probabilities per class (columns in the order of `classes`; rows sum to 1) for each row.",
    response_model=PredictProbaResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=openapi_body(PredictRequest),
)
async def predict_proba(request: Request) -> Response:
    loaded, X, _, _ = await _scoring_input(request, PredictRequest)
    proba = operations.predict_proba(loaded, X)
    monitoring = request.app.state.monitoring
    monitoring.observe_predictions(loaded.name, loaded.version, loaded.model.classes_, proba.argmax(axis=1))
    return json_response(
        {"model": loaded.name, "version": loaded.version, "classes": loaded.model.classes_.tolist(),
         "probabilities": proba}
    )


@router.post(
    "/predict",
    summary="Class labels",
    description="Predicted labels, as trained. Binary models use `threshold` (query), else the version's "
    "stored threshold, else 0.5; multiclass models predict the most probable class.",
    response_model=PredictResponse,
    responses=ERROR_RESPONSES,
    openapi_extra=openapi_body(PredictRequest),
)
async def predict(request: Request, threshold: ThresholdQuery = None) -> Response:
    loaded, X, _, _ = await _scoring_input(request, PredictRequest)
    labels, used, index = operations.predict(loaded, X, threshold)
    request.app.state.monitoring.observe_predictions(loaded.name, loaded.version, loaded.model.classes_, index)
    return json_response({"model": loaded.name, "version": loaded.version, "predictions": labels, "threshold": used})


@router.post(
    "/metrics",
    summary="Evaluate a version on labelled rows",
    description="Accuracy, precision, recall, F1, confusion matrix (with its label order), log-loss, Brier, "
    "ROC AUC and support; per-class and macro/weighted averages; for binary models also the threshold "
    "sweep and the F1-optimal threshold.",
    responses=ERROR_RESPONSES,
    openapi_extra=openapi_body(MetricsRequest),
)
async def evaluate(request: Request) -> Response:
    loaded, X, bulk, envelope = await _scoring_input(request, MetricsRequest)
    assert isinstance(envelope, MetricsRequest)
    return json_response(operations.evaluate(loaded, X, bulk.get("labels"), envelope.threshold))


@router.get(
    "/metrics",
    summary="Metrics stored at training time",
    description="The validation-split metrics (and training metrics) recorded when the version was trained.",
    responses=ERROR_RESPONSES,
)
async def stored_metrics(
    registry: RegistryDep,
    model: Annotated[str, Query(description="Model name.", examples=["breast-cancer"])],
    version: Annotated[str | None, Query(description="Version number or alias.")] = None,
) -> Response:
    ref: VersionRef = version
    meta = registry.metadata(model, ref)
    return json_response(
        {
            "model": model,
            "version": meta["version"],
            "validation_metrics": meta.get("validation_metrics"),
            "train_metrics": meta.get("train_metrics"),
            "n_validation": meta.get("n_validation"),
        }
    )
