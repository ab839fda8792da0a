"""Errors and warnings the engine raises, kept free of any web or disk notion."""

from __future__ import annotations


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used for prediction before ``fit``; subclasses both, as scikit-learn does."""


class ConvergenceWarning(UserWarning):
    """The solver used its whole iteration budget before meeting ``tol``; the model may be sub-optimal."""
