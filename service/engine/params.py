"""The hyperparameters' rules, written once: the estimator checks them at ``fit``, and the service's
request schemas declare the same names, choices and ranges (``service.domain.TrainParams``)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from ._minibatch import MINIBATCH_SOLVERS, SCHEDULES

PENALTIES = ("l2", "l1", "elasticnet", "none")
FULL_BATCH_SOLVERS = ("lbfgs", "newton", "proximal")
SOLVERS = FULL_BATCH_SOLVERS + MINIBATCH_SOLVERS
#: Solvers that need a smooth penalty (no L1 part).
SMOOTH_ONLY_SOLVERS = ("lbfgs", "newton")
#: The choices of each categorical hyperparameter.
CHOICES: dict[str, tuple[str, ...]] = {"penalty": PENALTIES, "solver": SOLVERS, "lr_schedule": SCHEDULES}

#: Bounds of each numeric hyperparameter, in pydantic's spelling (ge, gt, le, lt); every value must also be finite.
RANGES: dict[str, dict[str, float]] = {
    "alpha": {"ge": 0},
    "C": {"gt": 0},
    "l1_ratio": {"ge": 0, "le": 1},
    "tol": {"ge": 0},
    "learning_rate": {"gt": 0},
    "lr_gamma": {"gt": 0, "le": 1},
    "lr_decay": {"ge": 0},
    "lr_min": {"ge": 0},
    "momentum": {"ge": 0, "lt": 1},
    "beta1": {"ge": 0, "lt": 1},
    "beta2": {"ge": 0, "lt": 1},
    "validation_fraction": {"gt": 0, "lt": 1},
}
#: Integer hyperparameters and their least value.
INT_MINIMA: dict[str, int] = {"max_iter": 1, "batch_size": 1, "lr_step_size": 1, "n_iter_no_change": 1}
#: The schedule's two rates, reported together.
_CHECKED_TOGETHER = ("lr_decay", "lr_min")
#: Hyperparameters that may be None (the engine then picks a default per solver).
OPTIONAL = frozenset({"alpha", "C", "tol", "learning_rate", "max_iter"})


def describe(bounds: Mapping[str, float]) -> str:
    """A range as people read it: ``in [0, 1)``, ``> 0``, ``>= 0``."""
    low = ("[", bounds["ge"]) if "ge" in bounds else ("(", bounds["gt"]) if "gt" in bounds else None
    high = ("]", bounds["le"]) if "le" in bounds else (")", bounds["lt"]) if "lt" in bounds else None
    if low is not None and high is not None:
        return f"in {low[0]}{low[1]:g}, {high[1]:g}{high[0]}"
    if low is not None:
        return f"a finite number {'>=' if low[0] == '[' else '>'} {low[1]:g}"
    assert high is not None
    return f"a finite number {'<=' if high[0] == ']' else '<'} {high[1]:g}"


def _within(value: float, bounds: Mapping[str, float]) -> bool:
    return (
        math.isfinite(value)
        and value >= bounds.get("ge", -math.inf)
        and value > bounds.get("gt", -math.inf)
        and value <= bounds.get("le", math.inf)
        and value < bounds.get("lt", math.inf)
    )


def check_combination(penalty: str, solver: str, alpha: float | None, C: float | None) -> None:
    """The rules that tie hyperparameters together; ValueError naming the values when one is broken."""
    if penalty in ("l1", "elasticnet") and solver in SMOOTH_ONLY_SOLVERS:
        raise ValueError(
            f"solver {solver!r} supports only penalty 'l2' or 'none' (smooth penalties), got {penalty!r}; use "
            f"'proximal' or a mini-batch solver for {penalty!r}"
        )
    if alpha is not None and C is not None:
        raise ValueError(f"give alpha or C, not both (got alpha={alpha!r}, C={C!r}): C or alpha alone sets the "
                         "strength")


def check_params(params: Mapping[str, Any]) -> None:
    """Every rule above, on the estimator's hyperparameters; ValueError naming the first one broken."""

    def bad(name: str, rule: str) -> ValueError:
        return ValueError(f"{name} must be {rule}, got {params[name]!r}")

    for name, choices in CHOICES.items():
        if params[name] not in choices:
            raise bad(name, f"one of {choices}")
    check_combination(params["penalty"], params["solver"], params["alpha"], params["C"])
    for name, bounds in RANGES.items():
        if name in _CHECKED_TOGETHER:
            continue
        value = params[name]
        if value is None and name in OPTIONAL:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not _within(float(value), bounds):
            raise bad(name, describe(bounds) + (" or None" if name in OPTIONAL else ""))
    if not all(isinstance(params[n], numbers.Real) and _within(params[n], RANGES[n]) for n in _CHECKED_TOGETHER):
        raise ValueError(f"lr_decay and lr_min must be >= 0, got {params['lr_decay']!r}, {params['lr_min']!r}")
    for name, least in INT_MINIMA.items():
        value = params[name]
        if value is None and name in OPTIONAL:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
            raise bad(name, "a positive integer" + (" or None" if name in OPTIONAL else ""))
