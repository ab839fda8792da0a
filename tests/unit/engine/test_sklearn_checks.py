"""scikit-learn's estimator checks, the whole suite ``check_estimator`` runs, on the engine's estimator.

scikit-learn is a test-only dependency: the engine never imports it (only ``__sklearn_tags__`` does, and only
scikit-learn calls that). The default estimator is checked, and one per other solver family, since validation,
weights and standardization are shared but the solvers are not.

Nothing is skipped or expected to fail. The one check that needs more than the estimator, the array API check
``check_array_api_input`` (here with numpy arrays only, as the estimator does not declare array API support),
needs ``SCIPY_ARRAY_API=1``, which scipy reads once at import: without it in this process the check runs in a
fresh interpreter that sets it, instead of being skipped.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from service.engine import LogisticRegression

#: The mini-batch solvers' default budget (200 epochs) does not always meet their tol on the checks' small data
#: sets; the checks test the estimator's contract, which a ConvergenceWarning does not break.
pytestmark = pytest.mark.filterwarnings("ignore::service.engine.ConvergenceWarning")

ESTIMATORS = [
    LogisticRegression(),
    LogisticRegression(solver="newton"),
    LogisticRegression(solver="proximal", penalty="elasticnet"),
    LogisticRegression(solver="sgd"),
    LogisticRegression(solver="adam"),
]

with warnings.catch_warnings():
    # The engine's estimator cannot inherit from sklearn.base.BaseEstimator (the engine does not depend on
    # scikit-learn); it implements the protocol itself (get_params/set_params, __sklearn_tags__), which is what
    # the checks exercise.
    warnings.filterwarnings("ignore", message=r".*does not inherit from `sklearn\.base\.BaseEstimator`")
    checks = parametrize_with_checks(ESTIMATORS)


def check_name(check: Callable[..., Any]) -> str:
    return getattr(check, "func", check).__name__


@functools.cache
def scipy_array_api_run(name: str, args: str, keywords: str) -> dict[str, str]:
    """The check ``name`` (called with ``args``, each estimator, ``keywords``: reprs) on every estimator of
    :data:`ESTIMATORS` in one fresh interpreter with ``SCIPY_ARRAY_API=1``: each estimator's traceback, empty
    when its check passed."""
    code = textwrap.dedent(f"""
        import json, traceback
        from sklearn.utils import estimator_checks
        from service.engine import LogisticRegression
        results = {{}}
        for params in {[e.get_params() for e in ESTIMATORS]!r}:
            estimator = LogisticRegression(**params)
            try:
                estimator_checks.{name}(*{args}, estimator, **{keywords})
                results[repr(estimator)] = ""
            except Exception:
                results[repr(estimator)] = traceback.format_exc()
        print(json.dumps(results))
    """)
    env = {**os.environ, "SCIPY_ARRAY_API": "1", "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@checks
def test_sklearn_estimator_checks(estimator: LogisticRegression, check: Callable[..., Any]) -> None:
    if check_name(check) == "check_array_api_input" and os.environ.get("SCIPY_ARRAY_API") != "1":
        assert isinstance(check, functools.partial)
        failure = scipy_array_api_run(check.func.__name__, repr(check.args), repr(check.keywords))[repr(estimator)]
        assert not failure, failure
        return
    check(estimator)


def test_the_engine_never_imports_scikit_learn() -> None:
    """Fitting, predicting, the not-fitted error and the column-vector warning, in an interpreter without
    scikit-learn loaded: none of them loads it (the engine's classes are then its own)."""
    code = textwrap.dedent("""
        import sys, warnings
        import numpy as np
        from service.engine import DataConversionWarning, LogisticRegression, NotFittedError
        X = np.random.default_rng(0).normal(size=(30, 3))
        y = (X[:, 0] > 0).astype(int)
        try:
            LogisticRegression().predict(X)
        except NotFittedError as exc:
            assert type(exc) is NotFittedError
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            LogisticRegression().fit(X, y[:, None]).predict_proba(X)
        assert [type(w.message) for w in caught] == [DataConversionWarning]
        loaded = sorted(m for m in sys.modules if m == "sklearn" or m.startswith("sklearn."))
        assert not loaded, loaded
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
