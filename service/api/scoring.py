"""What every scoring route does around the model, in one place: load the version, score, and record it.

Used by ``/predict_proba``, ``/predict`` and ``/metrics``, by the V2 and MLflow dialects and by the
scoring fast path (:mod:`service.api.fastpath`), so they all load, answer and count alike. Functions
take the app's ``state`` and the ASGI ``scope`` rather than a ``Request``: the fast path has no
``Request``, and building one per call would cost it time for nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from starlette.datastructures import State
from starlette.types import Scope

from .. import operations
from ..registry import LoadedModel


def log_fields(scope: Scope) -> dict[str, Any]:
    """The request's fields for the access log (``scope["state"]``, read by ``RequestObserver``)."""
    return scope.setdefault("state", {})  # type: ignore[no-any-return]


def load_version(state: State, scope: Scope, name: str, version: int | str | None) -> LoadedModel:
    """The version to score with (cached by the registry), named in the access log."""
    fields = log_fields(scope)
    fields["model"] = name
    loaded = state.registry.load(name, version)
    fields["version"] = loaded.version
    return loaded


def json_rows(state: State, loaded: LoadedModel, bulk: dict[str, Any]) -> NDArray[np.float64]:
    """The rows of a JSON scoring body (``features`` or ``records``), within the configured row limit."""
    return operations.input_matrix(
        bulk.get("features"), bulk.get("records"), loaded.metadata.get("feature_names"),
        state.settings.max_predict_rows,
    )


def observe(
    state: State, scope: Scope, loaded: LoadedModel, X: NDArray[Any], predicted: NDArray[np.intp] | None
) -> None:
    """Record a scored request once its answer is computed: rows, drift, predicted classes.

    ``predicted`` holds class indices for prediction traffic; None for evaluation, which is not traffic
    (its out-of-range rows are still answered, but it feeds neither the drift window nor the counters).
    """
    fields = log_fields(scope)
    fields["rows"] = int(X.shape[0])
    route = scope.get("route")
    state.monitoring.rows_observed(getattr(route, "path", scope["path"]), X.shape[0])
    out_of_range = state.drift.observe(loaded, X, serving=predicted is not None)
    if out_of_range is not None:
        fields["out_of_range_rows"] = out_of_range  # the X-Out-Of-Range-Rows header
    if predicted is not None:
        state.monitoring.observe_predictions(loaded.name, loaded.version, loaded.model.classes_, predicted)


def proba_answer(state: State, scope: Scope, loaded: LoadedModel, X: NDArray[np.float64]) -> dict[str, Any]:
    """The answer of ``/predict_proba``, recorded."""
    proba = operations.predict_proba(loaded, X)
    observe(state, scope, loaded, X, proba.argmax(axis=1))
    return {"model": loaded.name, "version": loaded.version, "classes": loaded.model.classes_.tolist(),
            "probabilities": proba}


def labels_answer(
    state: State, scope: Scope, loaded: LoadedModel, X: NDArray[np.float64], threshold: float | None
) -> tuple[dict[str, Any], NDArray[np.intp]]:
    """The answer of ``/predict`` at ``threshold`` (None: the version's stored one), recorded; and the
    predicted class indices."""
    labels, used, index = operations.predict(loaded, X, threshold)
    observe(state, scope, loaded, X, index)
    return {"model": loaded.name, "version": loaded.version, "predictions": labels, "threshold": used}, index
