"""service.services.training: the split that trains without a copy of the matrix, and the training progress."""

from __future__ import annotations

import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine import stratified_split
from service.services.training import JobControl, TrainingProgress, split_rows_in_place, train_and_store
from service.store.registry import ModelRegistry


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 400), fraction=st.floats(0.0, 0.9), block=st.integers(1, 50), seed=st.integers(0, 99))
def test_split_in_place_equals_fancy_indexing(n: int, fraction: float, block: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = rng.integers(0, 2, n)
    train_idx, val_idx = stratified_split(y, fraction, np.random.default_rng(seed))
    expected_train, expected_val = X[train_idx], X[val_idx]
    train, val = split_rows_in_place(X, train_idx, val_idx, block=block)
    assert np.array_equal(train, expected_train) and np.array_equal(val, expected_val)
    assert (np.shares_memory(train, X) and np.shares_memory(val, X)) or val.size == 0


class Recorder(TrainingProgress):
    def __init__(self) -> None:
        self.phases: list[tuple[str, dict[str, object]]] = []
        self.iterations: list[int] = []

    def phase(self, name: str, **info: object) -> None:
        self.phases.append((name, info))

    def __call__(self, iteration: int, loss: float) -> None:
        self.iterations.append(iteration)


def test_training_tells_its_phases_in_order(tmp_path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] > 0).astype(int)
    progress = Recorder()
    train_and_store(ModelRegistry(tmp_path), "m", X, y, params={"solver": "lbfgs", "max_iter": 50},
                    progress=progress)
    assert [p for p, _ in progress.phases] == ["fitting", "evaluating", "storing"]
    assert progress.phases[0][1] == {"max_iter": 50}
    assert progress.iterations and progress.iterations == sorted(progress.iterations)


def test_a_job_control_estimates_the_time_left() -> None:
    control = JobControl(None, None, deadline=float("inf"))
    control.phase("reading", bytes_total=1000)
    time.sleep(0.2)
    control.read(10, 250)  # a quarter in 0.2 s: about 0.6 s left at that rate
    assert control._progress["rows_read"] == 10 and control._progress["bytes_read"] == 250
    assert 0.3 <= control._progress["eta_seconds"] <= 5
