"""A version's artefact: written with joblib as before, read back through an unpickler that builds nothing but
the few classes a model is made of, so a swapped file cannot run code.

pickle (and so joblib) calls whatever callable a file names; :class:`RestrictedUnpickler` resolves only the
globals of :data:`ALLOWED_GLOBALS` (measured on artefacts of every kind of model the service stores: plain,
calibrated with Platt or isotonic, a mixed-type table's :class:`~service.data.encoding.EncodedModel`) and
refuses every other one, so ``os.system``, ``builtins.eval`` or ``subprocess.Popen`` in a file are an
:class:`ArtefactError` before anything is called. Beyond the globals, what numpy could be talked into:

* An array with Python objects in it is refused (joblib reads those with a nested, plain pickle, and numpy
  would read raw bytes as object pointers), as is any dtype that could hold objects: every dtype and every
  array is checked as it is built (booleans, integers, floats and fixed-width text only).
* ``numpy.ndarray`` resolves to a placeholder that joblib's array wrapper needs only as a name, so a file
  cannot call the array constructor on a buffer of its own.
* An array's declared size is checked against the bytes the file holds before memory is allocated for it.

:func:`check_model` then says whether what was read is a model that fits its record (its type, feature
count, classes, and one prediction), so a well-formed file of the wrong shape is refused when it is loaded
rather than failing a request later. No file is read here: the registry verifies and reads the bytes.
"""

from __future__ import annotations

import io
import math
import pickle
from collections.abc import Sequence
from typing import Any, BinaryIO

import joblib
import numpy as np
from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

from ..data.encoding import CategoricalColumn, EncodedModel, NumericColumn, TableEncoder
from ..engine.calibration import CalibratedModel, IsotonicCalibrator, PlattCalibrator
from ..engine.logistic import LogisticRegression

try:  # numpy >= 2
    from numpy._core.multiarray import scalar as _numpy_scalar
except ImportError:  # pragma: no cover - numpy 1
    from numpy.core.multiarray import scalar as _numpy_scalar  # type: ignore[no-redef]

__all__ = ["ALLOWED_GLOBALS", "MODEL_TYPES", "ArtefactError", "check_model", "dump", "load"]

#: What a stored artefact may be: the engine's model, a calibrated one, or a mixed-type table's model.
MODEL_TYPES: tuple[type, ...] = (LogisticRegression, CalibratedModel, EncodedModel)
#: dtype kinds an array in an artefact may have: booleans, integers, floats, fixed-width text.
ARRAY_KINDS = "biufU"


class ArtefactError(ValueError):
    """An artefact that cannot be read safely, or is not a model that fits its record."""


class _NDArrayName:
    """What ``numpy.ndarray`` resolves to: joblib's array wrapper records the array class by name, and the
    real class, once resolved, could be called on a buffer the file chose."""


def _dtype(*args: Any) -> np.dtype[Any]:
    """``numpy.dtype`` as a file may call it: only the kinds of :data:`ARRAY_KINDS`."""
    return _checked_dtype(np.dtype(*args))


def _checked_dtype(dtype: Any) -> np.dtype[Any]:
    if not isinstance(dtype, np.dtype):
        raise ArtefactError(f"an array's dtype is a {type(dtype).__name__}, not a numpy dtype")
    if dtype.hasobject:
        raise ArtefactError("it holds an array of Python objects, which a model artefact never holds")
    if dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in ARRAY_KINDS:
        raise ArtefactError(f"it holds an array of dtype {dtype.str!r}; a model's arrays hold numbers or text")
    return dtype


#: Every global an artefact may name, and what it resolves to. Anything else is refused.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("joblib.numpy_pickle", "NumpyArrayWrapper"): NumpyArrayWrapper,
    ("numpy", "ndarray"): _NDArrayName,
    ("numpy", "dtype"): _dtype,
    # numpy scalars (np.float64(0.5) as an attribute), pickled under numpy 2's and numpy 1's module names
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("service.engine.logistic", "LogisticRegression"): LogisticRegression,
    ("service.engine.calibration", "CalibratedModel"): CalibratedModel,
    ("service.engine.calibration", "PlattCalibrator"): PlattCalibrator,
    ("service.engine.calibration", "IsotonicCalibrator"): IsotonicCalibrator,
    ("service.data.encoding", "EncodedModel"): EncodedModel,
    ("service.data.encoding", "TableEncoder"): TableEncoder,
    ("service.data.encoding", "NumericColumn"): NumericColumn,
    ("service.data.encoding", "CategoricalColumn"): CategoricalColumn,
}


class RestrictedUnpickler(NumpyUnpickler):
    """joblib's unpickler with :data:`ALLOWED_GLOBALS` as the only globals and every array checked."""

    dispatch = NumpyUnpickler.dispatch.copy()

    def __init__(self, data: bytes) -> None:
        super().__init__("", io.BytesIO(data), ensure_native_byte_order=True, mmap_mode=None)
        self._size = len(data)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise ArtefactError(f"it names {module}.{name}, which a model artefact never holds") from None

    def persistent_load(self, pid: Any) -> Any:
        raise ArtefactError("it refers to a persistent object, which a model artefact never holds")

    def load_build(self) -> None:
        """BUILD sets an object's state: check what numpy built, and read a wrapped array only once its dtype,
        shape and size are checked (joblib reads an object array with a plain, unrestricted pickle)."""
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]
        top = self.stack[-1]
        if isinstance(top, np.dtype):
            _checked_dtype(top)
        elif isinstance(top, np.ndarray):
            _checked_dtype(top.dtype)
        elif isinstance(top, NumpyArrayWrapper):
            self._check_wrapper(top)
            self.stack[-1] = top.read(self, self.ensure_native_byte_order)

    dispatch[pickle.BUILD[0]] = load_build

    def _check_wrapper(self, wrapper: NumpyArrayWrapper) -> None:
        dtype = _checked_dtype(getattr(wrapper, "dtype", None))
        if getattr(wrapper, "subclass", None) is not _NDArrayName:
            raise ArtefactError("an array is not a plain numpy array")
        wrapper.subclass = np.ndarray
        shape = getattr(wrapper, "shape", None)
        if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
            raise ArtefactError(f"an array's shape {shape!r} is not a tuple of sizes")
        if getattr(wrapper, "order", None) not in ("C", "F"):
            raise ArtefactError("an array's order is neither C nor F")
        if math.prod(shape) * dtype.itemsize > self._size:
            raise ArtefactError(f"an array of shape {shape} is larger than the file")


def dump(model: Any, fh: BinaryIO) -> None:
    """Write ``model`` in joblib's format (uncompressed, as every stored version is)."""
    joblib.dump(model, fh)


def load(data: bytes) -> Any:
    """The object in an artefact's bytes, built by :class:`RestrictedUnpickler`; an :class:`ArtefactError`
    says why a file that is not a plain model artefact is refused."""
    try:
        return RestrictedUnpickler(data).load()
    except ArtefactError:
        raise
    except Exception as exc:  # anything else a malformed file makes pickle, joblib or numpy raise
        raise ArtefactError(f"it cannot be read as a model ({type(exc).__name__}: {exc})") from None


def check_model(model: Any, classes: Sequence[Any], feature_names: Sequence[str]) -> None:
    """Whether ``model`` is a model this service stores, fits the record's ``classes`` and ``feature_names``,
    and gives finite probabilities for one row of zeros; an :class:`ArtefactError` says what does not fit."""
    if not isinstance(model, MODEL_TYPES):
        raise ArtefactError(f"it holds a {type(model).__name__}, not a model")
    try:
        n_features = model.n_features_in_
        found = model.classes_
        proba = model.predict_proba(np.zeros((1, n_features)))
    except Exception as exc:  # a model whose attributes were edited: whatever it raises
        raise ArtefactError(f"the model it holds cannot predict ({type(exc).__name__}: {exc})") from None
    if type(n_features) is not int or n_features != len(feature_names):
        raise ArtefactError(f"the model takes {n_features!r} features but the record names {len(feature_names)}")
    if not isinstance(found, np.ndarray) or found.tolist() != list(classes):
        raise ArtefactError(f"the model's classes {found!r} are not the record's {list(classes)!r}")
    if not (isinstance(proba, np.ndarray) and proba.shape == (1, len(classes)) and np.isfinite(proba).all()):
        raise ArtefactError("the model it holds does not give one probability per class")
