"""A version's bulky records in a binary side file, ``details.npz``, so ``metadata.json`` stays small.

The per-feature training statistics (drift's reference) and the stored validation sample grow with the
features and the classes: kept in ``metadata.json`` as JSON they made a 100 000-feature version's record tens of
megabytes, parsed whenever the version was read. Here they are numpy arrays (read back with
``allow_pickle=False``: no code can hide in them), loaded only by what needs them (the card, drift, the
threshold tools), and ``metadata.json`` keeps a summary that says they are in the side file.

The side file is not covered by the version's checksum or signature: nothing in it decides a prediction.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

DETAILS_FILE = "details.npz"
#: The key of the summary ``feature_statistics`` keeps in metadata.json when its features are in the side file.
IN_SIDE_FILE = "features_in"


def split(metadata: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    """``metadata`` without its bulky parts, and those parts as arrays (empty when it has none)."""
    small = dict(metadata)
    arrays: dict[str, NDArray[Any]] = {}
    stats = small.get("feature_statistics")
    if isinstance(stats, Mapping) and isinstance(stats.get("features"), list) and stats["features"]:
        features = stats["features"]
        arrays["stats_mean"] = np.array([f["mean"] for f in features], dtype=np.float64)
        arrays["stats_std"] = np.array([f["std"] for f in features], dtype=np.float64)
        arrays["stats_min"] = np.array([f["min"] for f in features], dtype=np.float64)
        arrays["stats_max"] = np.array([f["max"] for f in features], dtype=np.float64)
        arrays["stats_quantiles"] = np.array([f["quantiles"] for f in features], dtype=np.float64)
        arrays["stats_bins"] = np.array([f["bin_proportions"] for f in features], dtype=np.float64)
        small["feature_statistics"] = {**{k: v for k, v in stats.items() if k != "features"},
                                       IN_SIDE_FILE: DETAILS_FILE}
    elif isinstance(stats, Mapping) and IN_SIDE_FILE in stats:  # a summary without its features: it says so
        small["feature_statistics"] = {k: v for k, v in stats.items() if k != IN_SIDE_FILE}
    sample = small.get("validation_sample")
    if not isinstance(sample, Mapping):
        small.pop("validation_sample_rows", None)  # no sample given: none is stored
    if isinstance(sample, Mapping):
        arrays["validation_rows"] = np.asarray(sample["rows"], dtype=np.int64)
        arrays["validation_labels"] = np.asarray(sample["labels"])
        arrays["validation_probabilities"] = np.asarray(sample["probabilities"], dtype=np.float64)
        small["validation_sample"] = None
        small["validation_sample_rows"] = len(sample["rows"])
    return small, arrays


def has_details(record: Mapping[str, Any]) -> bool:
    """Whether a version's record keeps parts in the side file."""
    stats = record.get("feature_statistics")
    return (isinstance(stats, Mapping) and IN_SIDE_FILE in stats) or bool(record.get("validation_sample_rows"))


def to_bytes(arrays: Mapping[str, NDArray[Any]]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def from_bytes(data: bytes) -> dict[str, NDArray[Any]]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def joined(record: Mapping[str, Any], feature_names: list[str], arrays: Mapping[str, NDArray[Any]]) -> dict[str, Any]:
    """The record with its side-file parts back in their JSON form (what older versions keep inline)."""
    full = dict(record)
    stats = full.get("feature_statistics")
    if isinstance(stats, Mapping) and IN_SIDE_FILE in stats and "stats_mean" in arrays:
        columns = [arrays[k].tolist() for k in ("stats_mean", "stats_std", "stats_min", "stats_max",
                                                 "stats_quantiles", "stats_bins")]
        full["feature_statistics"] = {
            **{k: v for k, v in stats.items() if k != IN_SIDE_FILE},
            "features": [{"name": name, "mean": mean, "std": std, "min": lo, "max": hi, "quantiles": q,
                          "bin_proportions": b}
                         for name, mean, std, lo, hi, q, b in zip(feature_names, *columns, strict=True)],
        }
    if full.get("validation_sample_rows") and "validation_rows" in arrays:
        full["validation_sample"] = {"rows": arrays["validation_rows"].tolist(),
                                     "labels": arrays["validation_labels"].tolist(),
                                     "probabilities": arrays["validation_probabilities"].tolist()}
    return full
