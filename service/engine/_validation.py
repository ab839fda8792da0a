"""Input checks whose messages name the problem and the offending values."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray


def preview(values: Any, limit: int = 10) -> str:
    """At most ``limit`` values for an error message, then how many more, so huge inputs do not flood it."""
    items = np.asarray(values).ravel().tolist()
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return f"[{', '.join(repr(i) for i in items[:limit])}]{more}"


def _rows(mask: NDArray[np.bool_]) -> str:
    return preview(np.flatnonzero(mask))


def feature_names_of(X: Any) -> NDArray[np.object_] | None:
    """Column names of a data frame whose columns are all strings, else None (as scikit-learn does)."""
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = [str(c) for c in columns] if all(isinstance(c, str) for c in columns) else None
    return None if names is None else np.asarray(names, dtype=object)


def check_X(X: Any, *, name: str = "X") -> NDArray[np.float64]:
    """A finite, non-empty 2-D float64 array (no copy when ``X`` already is one)."""
    if hasattr(X, "to_numpy"):
        X = X.to_numpy()
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must contain only numbers (ints, floats or bools): {exc}") from None
    if arr.ndim != 2:
        hint = " Reshape a single feature with X.reshape(-1, 1) or a single sample with X.reshape(1, -1)."
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), got a {arr.ndim}-D array of "
            f"shape {arr.shape}.{hint if arr.ndim == 1 else ''}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples (shape {arr.shape}); at least 1 is required")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has 0 features (shape {arr.shape}); at least 1 is required")
    finite = np.isfinite(arr)
    if not finite.all():
        bad = ~finite.all(axis=1)
        kinds = "NaN" if np.isnan(arr).any() else "infinity"
        if np.isnan(arr).any() and np.isinf(arr).any():
            kinds = "NaN and infinity"
        raise ValueError(f"{name} contains {kinds} in rows {_rows(bad)}; remove or impute them first")
    if not arr.flags.c_contiguous and not arr.flags.f_contiguous:
        arr = np.ascontiguousarray(arr)
    return arr


def check_y(y: Any, n_samples: int) -> NDArray[Any]:
    """A 1-D label array of length ``n_samples`` with no missing values."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr.ravel()
    if arr.ndim != 1:
        raise ValueError(f"y must be a 1-D array of labels, got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} samples but y has {arr.shape[0]} labels; they must match")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"y contains NaN or infinity at rows {_rows(~np.isfinite(arr))}")
    if arr.dtype.kind == "O":
        missing = np.array([v is None or (isinstance(v, float) and not np.isfinite(v)) for v in arr])
        if missing.any():
            raise ValueError(f"y contains missing labels (None/NaN) at rows {_rows(missing)}")
    return arr


def check_sample_weight(sample_weight: Any, n_samples: int) -> NDArray[np.float64]:
    """Non-negative, finite per-sample weights with a positive sum; ones when None."""
    if sample_weight is None:
        return np.ones(n_samples)
    sw = np.asarray(sample_weight, dtype=np.float64)
    if sw.ndim == 0:
        sw = np.full(n_samples, float(sw))
    if sw.shape != (n_samples,):
        raise ValueError(f"sample_weight must have shape ({n_samples},), got {sw.shape}")
    if not np.isfinite(sw).all():
        raise ValueError(f"sample_weight contains NaN or infinity at rows {_rows(~np.isfinite(sw))}")
    if (sw < 0).any():
        raise ValueError(f"sample_weight must be non-negative; negative at rows {_rows(sw < 0)}")
    if sw.sum() <= 0:
        raise ValueError("sample_weight sums to 0: at least one sample must carry weight")
    return sw
