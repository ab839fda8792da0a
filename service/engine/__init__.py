"""Pure-numpy logistic-regression engine: no web, disk or pickling concerns live here."""

from . import evaluation
from .exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError
from .logistic import LogisticRegression, stratified_split

__all__ = [
    "ConvergenceWarning",
    "DataConversionWarning",
    "LogisticRegression",
    "NotFittedError",
    "evaluation",
    "stratified_split",
]
