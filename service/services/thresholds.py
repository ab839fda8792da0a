"""Tune a binary version's decision threshold for an objective, and report how calibrated it is.

Pure numpy over labels and positive-class probabilities; nothing here knows about HTTP. The optimization is
exact: every distinct probability is a candidate threshold (positive when ``P >= threshold``; no other
cut-off predicts differently), plus 1.0, which predicts nothing positive, when every probability is below it.
Among equally good thresholds the largest wins (as the best-F1 threshold of ``engine.evaluation``), after the tie-breaks
named per objective below.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..domain import VersionMetadata
from ..engine import evaluation
from ..engine.evaluation import curve_counts
from ..errors import InvalidInputError
from .scoring import check_labels

OBJECTIVES = ("f1", "youden", "cost", "min_recall", "min_precision")
#: Points of the returned curve at most (the chosen threshold is always one of them).
MAX_CURVE_POINTS = 201

def positive_mask(labels: Any, classes: list[Any]) -> NDArray[np.bool_]:
    """``labels == classes[1]`` after checking the labels are the model's (one type, known values)."""
    y = np.asarray(labels)
    check_labels(y, classes)
    return y == np.asarray(classes)[1]


def optimize_threshold(
    y_pos: NDArray[np.bool_],
    scores: NDArray[np.float64],
    objective: str,
    *,
    cost_fp: float = 1.0,
    cost_fn: float = 1.0,
    target: float | None = None,
    max_points: int = MAX_CURVE_POINTS,
) -> dict[str, Any]:
    """The threshold on ``scores`` (positive-class probabilities) best for ``objective``, the value it
    reaches, the counts and rates there, and the curve (at most ``max_points`` points, thresholds rising)."""
    if objective not in OBJECTIVES:
        raise InvalidInputError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}")
    n_pos = int(np.count_nonzero(y_pos))
    n_neg = int(y_pos.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        raise InvalidInputError(
            f"the labelled rows hold {n_pos} positive and {n_neg} negative rows; a threshold needs both classes"
        )
    fps, tps, thr = curve_counts(y_pos, scores, None)  # thresholds decreasing, counts at score >= threshold
    if thr[0] < 1.0:  # a candidate that predicts nothing positive
        thr, tps, fps = np.r_[1.0, thr], np.r_[0, tps], np.r_[0, fps]
    tp, fp = tps.astype(np.float64), fps.astype(np.float64)
    fn, tn = n_pos - tp, n_neg - fp
    n = float(y_pos.size)
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    recall = tp / n_pos
    fpr = fp / n_neg
    f1 = 2 * tp / (n_pos + tp + fp)
    youden = recall - fpr
    cost = (cost_fp * fp + cost_fn * fn) / n
    order = np.arange(thr.size)  # 0 = largest threshold: the final tie-break
    if objective == "f1":
        best, value = _pick(f1, -order), f1
    elif objective == "youden":
        best, value = _pick(youden, -order), youden
    elif objective == "cost":
        best, value = _pick(-cost, -order), cost
    elif objective == "min_recall":
        assert target is not None
        feasible = recall >= target - 1e-12
        best, value = _pick(np.where(feasible, precision, -np.inf), recall, -order), precision
    else:
        assert target is not None
        feasible = (precision >= target - 1e-12) & (tp > 0)
        if not feasible.any():
            top = int(np.argmax(precision))
            raise InvalidInputError(
                f"no threshold reaches precision >= {target}: the highest is {precision[top]:.6g} at threshold "
                f"{thr[top]:.6g}",
                {"target": target, "max_precision": float(precision[top]), "threshold": float(thr[top])},
            )
        best, value = _pick(np.where(feasible, recall, -np.inf), precision, -order), recall
    keep = _curve_points(thr.size, best, max_points)[::-1]  # thresholds rising
    curve = [
        {"threshold": float(thr[i]), "precision": float(precision[i]), "recall": float(recall[i]),
         "f1": float(f1[i]), "tpr": float(recall[i]), "fpr": float(fpr[i]),
         **({"cost": float(cost[i])} if objective == "cost" else {})}
        for i in keep
    ]
    return {
        "objective": objective,
        "threshold": float(thr[best]),
        "value": float(value[best]),
        "metrics": {
            "precision": float(precision[best]),
            "recall": float(recall[best]),
            "f1": float(f1[best]),
            "tpr": float(recall[best]),
            "fpr": float(fpr[best]),
            "youden_j": float(youden[best]),
            "accuracy": float((tp[best] + tn[best]) / n),
            "expected_cost": float(cost[best]) if objective == "cost" else None,
            "tp": int(tp[best]), "fp": int(fp[best]), "fn": int(fn[best]), "tn": int(tn[best]),
        },
        "n_samples": int(y_pos.size),
        "n_positive": n_pos,
        "n_candidates": int(thr.size),
        "curve": curve,
    }


def _pick(*keys: NDArray[np.float64] | NDArray[np.intp]) -> int:
    """Index of the lexicographically largest (keys[0], keys[1], ...)."""
    return int(np.lexsort(tuple(reversed(keys)))[-1])


def _curve_points(m: int, best: int, max_points: int) -> NDArray[np.intp]:
    """At most ``max_points`` evenly spaced indices of ``range(m)``, ends and ``best`` included, increasing."""
    if m <= max_points:
        return np.arange(m)
    idx = np.unique(np.linspace(0, m - 1, max_points - 1).round().astype(np.intp))
    return np.unique(np.r_[idx, best])


def stored_calibration(meta: VersionMetadata) -> dict[str, Any] | None:
    """The calibration report of a version's stored validation sample (its served probabilities), or None
    when it was trained without a validation split."""
    sample = meta.validation_sample
    if sample is None or not sample.labels:
        return None
    report = evaluation.calibration_report(
        np.asarray(sample.labels), np.asarray(sample.probabilities, dtype=np.float64), np.asarray(meta.classes)
    )
    return {"source": "validation_sample", **report}
