"""Scoring a version: probabilities, labels at a threshold, evaluation, and what every scoring request records.

:class:`Scorer` is what the scoring routes, the V2 and MLflow dialects and the scoring fast path share:
load the version, turn the body into rows, score, and record the request (rows, drift, predicted
classes). Each call takes the request's log ``fields`` (a dict the access log reads) and its ``route``
template, so no HTTP object is needed here.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..data.columns import Columns
from ..data.encoding import EncodedModel
from ..data.matrix import input_matrix, labels_array
from ..domain import VersionMetadata, preview
from ..engine import evaluation
from ..errors import InvalidInputError, NotFoundError
from ..observability.prometheus import Monitoring
from ..store.registry import LoadedModel, ModelRegistry
from .drift_tracker import DriftTracker


def model_columns(loaded: LoadedModel) -> Columns | None:
    """How a request's cells become values for a mixed-type version (its kinds and categories); None for a
    version trained on plain numbers, whose requests are numbers only."""
    model = loaded.model
    return model.columns() if isinstance(model, EncodedModel) else None


def predict_proba(loaded: LoadedModel, X: NDArray[np.float64]) -> NDArray[np.float64]:
    """Class probabilities from a loaded version, after checking the feature count."""
    d = loaded.model.n_features_in_
    if X.shape[1] != d:
        raise InvalidInputError(
            f"rows have {X.shape[1]} values but model {loaded.name!r} version {loaded.version} expects {d} "
            f"features ({preview(loaded.metadata.feature_names)})",
            {"expected": d, "got": X.shape[1]},
        )
    with np.errstate(over="ignore", invalid="ignore"):
        proba = loaded.model.predict_proba(X)
    if not np.isfinite(proba).all():
        rows = np.flatnonzero(~np.isfinite(proba).all(axis=1)).tolist()
        raise InvalidInputError(
            f"rows {preview(rows)} hold values too large for this model (the scores overflow)", {"rows": rows[:100]}
        )
    return proba


def decision_threshold(loaded: LoadedModel, threshold: float | None) -> float | None:
    """The threshold to apply: the given one, else the version's stored one, else 0.5; None for multiclass."""
    n_classes = len(loaded.model.classes_)
    if n_classes > 2:
        if threshold is not None:
            raise InvalidInputError(
                f"threshold applies to binary models only; model {loaded.name!r} has {n_classes} classes "
                "and predicts the most probable one",
                {"field": "threshold"},
            )
        return None
    if threshold is None:
        threshold = loaded.threshold if loaded.threshold is not None else 0.5
    return float(threshold)


def predicted_index(proba: NDArray[np.float64], threshold: float | None) -> NDArray[np.intp]:
    """Class index of each row as ``/predict`` decides: ``P(positive) >= threshold`` (binary), else argmax."""
    if proba.shape[1] == 2 and threshold is not None:
        return (proba[:, 1] >= threshold).astype(np.intp)
    return np.argmax(proba, axis=1)


def predict(
    loaded: LoadedModel, X: NDArray[np.float64], threshold: float | None
) -> tuple[list[Any], float | None, NDArray[np.intp]]:
    """Class labels at the decision threshold in use, that threshold, and the labels' class indices."""
    t = decision_threshold(loaded, threshold)
    idx = predicted_index(predict_proba(loaded, X), t)
    return loaded.model.classes_[idx].tolist(), t, idx


def evaluate(loaded: LoadedModel, X: NDArray[np.float64], labels: Any, threshold: float | None) -> dict[str, Any]:
    """Metrics of a version on labelled rows; labels must be among the version's classes."""
    y = labels_array(labels, X.shape[0])
    classes = loaded.model.classes_
    check_labels(y, classes.tolist())
    t = decision_threshold(loaded, threshold)
    proba = predict_proba(loaded, X)
    summary = evaluation.classification_summary(y, proba, classes, threshold=0.5 if t is None else t)
    calibration = evaluation.calibration_report(y, proba, classes)
    return {"model": loaded.name, "version": loaded.version, **summary, "calibration": calibration}


def check_labels(y: NDArray[Any], classes: list[Any]) -> None:
    """Labels must be of the classes' type and among them (a 422 naming the strangers)."""
    cls = np.asarray(classes)
    if y.dtype.kind != cls.dtype.kind and not (y.dtype.kind in "iub" and cls.dtype.kind in "iub"):
        raise InvalidInputError(f"labels are {y.dtype.kind!r}-typed but the model's classes are {classes}",
                                {"classes": classes})
    unknown = sorted(set(y.tolist()) - set(classes), key=str)
    if unknown:
        raise InvalidInputError(
            f"label(s) {preview(unknown)} are not among the model's classes {preview(classes)}",
            {"unknown": unknown[:100], "classes": classes},
        )


def validation_sample(meta: VersionMetadata) -> dict[str, Any]:
    """The validation labels and probabilities stored with a version, for threshold exploration."""
    sample = meta.validation_sample
    if sample is None:
        raise NotFoundError(
            f"model {meta.name!r} version {meta.version} has no validation split "
            "(trained with validation_fraction=0)",
            {"name": meta.name, "version": meta.version},
        )
    classes = meta.classes
    return {
        "model": meta.name,
        "version": meta.version,
        "classes": classes,
        "positive_class": classes[1] if len(classes) == 2 else None,
        "threshold": meta.threshold,
        "n_validation": meta.n_validation,
        "sampled": len(sample.labels) < (meta.n_validation or 0),
        **sample.model_dump(),
    }


class Scorer:
    """Load, score and record: the scoring use case every scoring entry point shares."""

    def __init__(self, registry: ModelRegistry, monitoring: Monitoring, drift: DriftTracker,
                 max_predict_rows: int) -> None:
        self.registry = registry
        self.monitoring = monitoring
        self.drift = drift
        self.max_predict_rows = max_predict_rows

    async def load(self, fields: dict[str, Any], name: str, version: int | str | None) -> LoadedModel:
        """The version to score with, named in the request's log fields: from memory when it is there (its
        resolution checked with a few stat calls at most), else read and verified in a worker thread, so
        reading an artefact never blocks the event loop."""
        fields["model"] = name
        loaded = self.registry.loaded_in_memory(name, version)
        if loaded is None:
            loaded = await asyncio.to_thread(self.registry.load, name, version)
        if not self.drift.is_tracked(loaded.name, loaded.version):  # its statistics may need a file read
            await asyncio.to_thread(self.drift.tracked, loaded.name, loaded.version, loaded.metadata)
        fields["version"] = loaded.version
        return loaded

    def json_rows(self, loaded: LoadedModel, bulk: dict[str, Any]) -> NDArray[np.float64]:
        """The rows of a JSON scoring body (``features`` or ``records``), within the configured row limit."""
        return input_matrix(bulk.get("features"), bulk.get("records"), loaded.metadata.feature_names,
                            self.max_predict_rows, columns=model_columns(loaded))

    def observe(self, fields: dict[str, Any], route: str, loaded: LoadedModel, X: NDArray[Any],
                predicted: NDArray[np.intp] | None) -> None:
        """Record a scored request once its answer is computed: rows, drift, predicted classes.

        ``predicted`` holds class indices for prediction traffic; None for evaluation, which is not traffic
        (its out-of-range rows are still answered, but it feeds neither the drift window nor the counters).
        """
        fields["rows"] = int(X.shape[0])
        self.monitoring.rows_observed(route, X.shape[0])
        model = loaded.model
        unknown = None
        if isinstance(model, EncodedModel):
            unknown = model.encoder.unknown_counts(X)
            fields["unknown_categories"] = unknown
            X = model.encoder.drift_view(X)
        out_of_range = self.drift.observe(loaded, X, serving=predicted is not None, unknown=unknown)
        if out_of_range is not None:
            fields["out_of_range_rows"] = out_of_range
        if predicted is not None:
            self.monitoring.observe_predictions(loaded.name, loaded.version, loaded.model.classes_, predicted)

    def proba_answer(self, fields: dict[str, Any], route: str, loaded: LoadedModel,
                     X: NDArray[np.float64]) -> dict[str, Any]:
        """The answer of ``/predict_proba``, recorded."""
        proba = predict_proba(loaded, X)
        self.observe(fields, route, loaded, X, proba.argmax(axis=1))
        return {"model": loaded.name, "version": loaded.version, "classes": loaded.model.classes_.tolist(),
                "probabilities": proba}

    def labels_answer(self, fields: dict[str, Any], route: str, loaded: LoadedModel, X: NDArray[np.float64],
                      threshold: float | None) -> tuple[dict[str, Any], NDArray[np.intp]]:
        """The answer of ``/predict`` at ``threshold`` (None: the version's stored one), recorded; and the
        predicted class indices."""
        labels, used, index = predict(loaded, X, threshold)
        self.observe(fields, route, loaded, X, index)
        return {"model": loaded.name, "version": loaded.version, "predictions": labels, "threshold": used}, index
