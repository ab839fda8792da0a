"""Errors and warnings the engine raises, kept free of any web or disk notion."""

from __future__ import annotations

import functools
import sys
from typing import Any


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used for prediction before ``fit``; subclasses both, as scikit-learn's does.

    Raise it through :func:`not_fitted_error`, which also makes it an instance of scikit-learn's
    ``NotFittedError`` when scikit-learn is loaded."""


class ConvergenceWarning(UserWarning):
    """The solver used its whole iteration budget before meeting ``tol``; the model may be sub-optimal."""


class DataConversionWarning(UserWarning):
    """The input was used in another shape than given (a column-vector ``y`` taken as a 1-D array of labels);
    scikit-learn's warning of the same name and meaning."""


def not_fitted_error(message: str) -> NotFittedError:
    """A :class:`NotFittedError`; when scikit-learn is already imported in this process, one that is also an
    instance of ``sklearn.exceptions.NotFittedError``, so scikit-learn's tools (and ``except`` clauses written
    for scikit-learn models) recognize it. The engine never imports scikit-learn for this: it only looks among
    the modules already loaded, so without scikit-learn this is the plain :class:`NotFittedError`."""
    theirs = getattr(sys.modules.get("sklearn.exceptions"), "NotFittedError", None)
    if isinstance(theirs, type) and issubclass(theirs, Exception) and not issubclass(NotFittedError, theirs):
        return _with_sklearn_base(theirs)(message)
    return NotFittedError(message)


@functools.cache
def _with_sklearn_base(theirs: type[Exception]) -> type[NotFittedError]:
    """:class:`NotFittedError` with scikit-learn's class as a second base, under the same name; it pickles as
    the plain :class:`NotFittedError`, so unpickling needs no scikit-learn."""

    def reduce(self: NotFittedError) -> tuple[Any, ...]:
        return NotFittedError, self.args, self.__dict__ or None

    return type(
        "NotFittedError",
        (NotFittedError, theirs),
        {"__module__": __name__, "__qualname__": "NotFittedError", "__doc__": NotFittedError.__doc__,
         "__reduce__": reduce},
    )
