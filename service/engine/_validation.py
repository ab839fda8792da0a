"""Input checks whose messages name the problem and the offending values."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from .exceptions import data_conversion_warning


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


def check_X(X: Any, *, name: str = "X") -> Any:
    """A finite, non-empty 2-D float64 array (no copy when ``X`` already is one); a scipy.sparse matrix or array
    of any format becomes CSR float64 in canonical form (no copy when it already is one).

    Values that are not numbers are a ``ValueError`` when numpy cannot parse them (text such as ``"seven"``) and a
    ``TypeError`` when they are not numbers nor text at all (``None``, a dict), as in scikit-learn."""
    if sp.issparse(X):
        return _check_sparse(X, name)
    if getattr(X, "dtype", None) is not None and np.dtype(X.dtype).kind == "c":
        raise _complex(name, X.dtype)
    if hasattr(X, "to_numpy"):
        X = X.to_numpy()
    try:
        arr = np.asarray(X, dtype=np.float64)
    except TypeError as exc:
        raise TypeError(f"{name} must contain only numbers (ints, floats or bools): {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{name} must contain only numbers (ints, floats or bools): {exc}") from None
    _check_shape(arr.shape, name)
    finite = np.isfinite(arr)
    if not finite.all():
        raise _not_finite(arr, ~finite.all(axis=1), name)
    if not arr.flags.c_contiguous and not arr.flags.f_contiguous:
        arr = np.ascontiguousarray(arr)
    return arr


def _complex(name: str, dtype: Any) -> ValueError:
    return ValueError(f"Complex data not supported: {name} has dtype {dtype}; pass its real part or magnitude")


def _check_shape(shape: tuple[int, ...], name: str) -> None:
    if len(shape) != 2:
        hint = (" Reshape your data: X.reshape(-1, 1) if it holds a single feature, X.reshape(1, -1) if it is a "
                "single sample.")
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), got a {len(shape)}-D array of "
            f"shape {shape}.{hint if len(shape) == 1 else ''}"
        )
    if shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples (shape {shape}); at least 1 is required")
    if shape[1] == 0:
        raise ValueError(f"{name} has 0 feature(s) (shape={shape}) while a minimum of 1 is required.")


def _not_finite(values: NDArray[np.float64], bad_rows: NDArray[np.bool_], name: str) -> ValueError:
    """The error for non-finite ``values`` (the dense array, or the stored entries of a sparse one)."""
    nan, inf = bool(np.isnan(values).any()), bool(np.isinf(values).any())
    kinds = "NaN and infinity" if nan and inf else "NaN" if nan else "infinity"
    return ValueError(f"{name} contains {kinds} in rows {_rows(bad_rows)}; remove or impute them first")


def _check_sparse(X: Any, name: str) -> Any:
    """CSR float64 with sorted indices and no duplicate entries, checked as :func:`check_X` checks dense data:
    only the stored entries can be non-finite."""
    if X.dtype.kind == "c":
        raise _complex(name, X.dtype)
    _check_shape(tuple(X.shape), name)
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{name} must contain only numbers (ints, floats or bools), got dtype {X.dtype}")
    X = X.tocsr()
    X = X.astype(np.float64, copy=False)
    if not X.has_canonical_format:  # duplicates summed and indices sorted, on a copy: the caller's X stays
        X = X.copy()
        X.sum_duplicates()
    finite = np.isfinite(X.data)
    if not finite.all():
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))[~finite]
        bad = np.zeros(X.shape[0], dtype=bool)
        bad[rows] = True
        raise _not_finite(X.data, bad, name)
    return X


def check_y(
    y: Any, n_samples: int, *, estimator: str = "this estimator", conversions: list[str] | None = None
) -> NDArray[Any]:
    """A 1-D label array of length ``n_samples`` with no missing values. A column vector ``(n_samples, 1)`` is
    taken as its column; with ``conversions`` (a fit's list of warning messages) that is a
    :class:`~.exceptions.DataConversionWarning`, also appended there."""
    if y is None:
        raise ValueError(
            f"{estimator} requires y to be passed, but the target y is None: give one class label per row of X"
        )
    arr = np.asarray(y)
    if arr.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: y has dtype {arr.dtype}; labels are ints, bools or strings")
    if arr.ndim == 2 and arr.shape[1] == 1:
        if conversions is not None:
            message = (
                f"A column-vector y was passed when a 1d array was expected: y of shape {arr.shape} is used as "
                f"its {arr.shape[0]} labels; pass y.ravel() (shape (n_samples,)) to avoid this warning"
            )
            conversions.append(message)
            warnings.warn(data_conversion_warning(message), stacklevel=3)
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


def check_class_labels(y: NDArray[Any]) -> None:
    """Refuse a continuous target, as scikit-learn's classifiers do: floats that are not all integral (``0.0``
    and ``1.0`` are labels; ``0.37`` is a measurement, not a class)."""
    if y.dtype.kind != "f":
        return
    fractional = y != np.floor(y)
    if fractional.any():
        raise ValueError(
            f"Unknown label type: continuous. y holds non-integral floats such as {preview(y[fractional], 5)}; "
            "a classifier needs discrete class labels (ints, bools, strings, or integral floats such as 0.0 "
            "and 1.0): bin or round a continuous target first"
        )


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
        raise ValueError("sample_weight sums to 0 (every weight is zero): at least one sample must carry weight")
    return sw
