"""Errors and warnings the engine raises, kept free of any web or disk notion."""

from __future__ import annotations

import functools
import sys
from typing import Any, TypeVar

_E = TypeVar("_E", bound=Exception)


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used for prediction before ``fit``; subclasses both, as scikit-learn's does.

    Raise it through :func:`not_fitted_error`, which also makes it an instance of scikit-learn's
    ``NotFittedError`` when scikit-learn is loaded."""


class ConvergenceWarning(UserWarning):
    """The solver used its whole iteration budget before meeting ``tol``; the model may be sub-optimal."""


class DataConversionWarning(UserWarning):
    """The input was used in another shape than given (a column-vector ``y`` taken as a 1-D array of labels);
    scikit-learn's warning of the same name and meaning. Emit it through :func:`data_conversion_warning`."""


def not_fitted_error(message: str) -> NotFittedError:
    """A :class:`NotFittedError`; when scikit-learn is already imported in this process, one that is also an
    instance of ``sklearn.exceptions.NotFittedError``, so scikit-learn's tools (and ``except`` clauses written
    for scikit-learn models) recognize it."""
    return _also_sklearns(NotFittedError)(message)


def data_conversion_warning(message: str) -> DataConversionWarning:
    """A :class:`DataConversionWarning`; when scikit-learn is already imported, one that is also scikit-learn's
    ``DataConversionWarning``, so warning filters on scikit-learn's class apply to it."""
    return _also_sklearns(DataConversionWarning)(message)


def _also_sklearns(ours: type[_E]) -> type[_E]:
    """``ours``, or when ``sklearn.exceptions`` is among the loaded modules and has a class of the same name,
    ``ours`` with that class as a second base. The engine never imports scikit-learn for this: without it
    loaded, the engine's own class is used."""
    theirs = getattr(sys.modules.get("sklearn.exceptions"), ours.__name__, None)
    if not isinstance(theirs, type) or not issubclass(theirs, Exception) or issubclass(ours, theirs):
        return ours
    return _derived(ours, theirs)


@functools.cache
def _derived(ours: type[_E], theirs: type[Exception]) -> type[_E]:
    """``ours`` with scikit-learn's class as a second base, under the same name; it pickles as ``ours``, so
    unpickling needs no scikit-learn."""

    def reduce(self: Exception) -> tuple[Any, ...]:
        return ours, self.args, self.__dict__ or None

    namespace = {"__module__": __name__, "__qualname__": ours.__qualname__, "__doc__": ours.__doc__,
                 "__reduce__": reduce}
    return type(ours.__name__, (ours, theirs), namespace)
