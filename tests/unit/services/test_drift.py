"""service.services.drift: training statistics, out-of-range counting, PSI and the sliding window (pure numpy)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from service.services import drift
from service.services.drift import Reference, SlidingWindow, VersionDrift


def _reference(X: np.ndarray, names: list[str] | None = None) -> Reference:
    names = names or [f"x{j}" for j in range(X.shape[1])]
    ref = Reference.from_statistics(drift.feature_statistics(X, names), names)
    assert ref is not None
    return ref


# -- training statistics --------------------------------------------------------------------------------
def test_feature_statistics_per_feature_in_column_order():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(5, 2, 1000), rng.uniform(-1, 1, 1000)])
    stats = drift.feature_statistics(X, ["z", "a"])
    assert json.loads(json.dumps(stats, allow_nan=False, sort_keys=True)) == stats  # stored as JSON as is
    assert stats["n_rows"] == 1000
    assert stats["quantile_levels"] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    assert [f["name"] for f in stats["features"]] == ["z", "a"]  # a list: the order survives sorted keys
    for j, f in enumerate(stats["features"]):
        assert set(f) == {"name", "mean", "std", "min", "max", "quantiles", "bin_proportions"}
        assert f["mean"] == pytest.approx(X[:, j].mean())
        assert f["std"] == pytest.approx(X[:, j].std())
        assert (f["min"], f["max"]) == (X[:, j].min(), X[:, j].max())
        assert f["quantiles"] == pytest.approx(np.quantile(X[:, j], drift.QUANTILE_LEVELS).tolist())
        assert f["bin_proportions"] == pytest.approx([0.1] * 10, abs=0.002)  # deciles: a tenth in each bin


def test_tied_deciles_give_the_exact_training_shares():
    x = np.array([0.0] * 70 + [1.0] * 30)  # a binary feature: deciles 0.1..0.6 are 0, 0.8 and 0.9 are 1
    f = drift.feature_statistics(x[:, None], ["flag"])["features"][0]
    assert f["quantiles"] == pytest.approx([0.0] * 6 + [0.3, 1.0, 1.0])  # 0.7 interpolates between 0 and 1
    # a value's bin is the number of edges <= it: 0 -> bin 6, 1 -> bin 9; the bins between tied edges stay empty
    assert f["bin_proportions"] == [0, 0, 0, 0, 0, 0, 0.7, 0, 0, 0.3]
    ref = _reference(x[:, None])
    window = VersionDrift(ref, window_rows=100)
    window.observe(x[:, None])
    assert window.psi() == pytest.approx([0.0], abs=1e-12)  # the training data itself: no drift


def test_feature_statistics_rejects_a_bad_matrix():
    with pytest.raises(ValueError):
        drift.feature_statistics(np.zeros((0, 2)), ["a", "b"])
    with pytest.raises(ValueError):
        drift.feature_statistics(np.zeros((3, 2)), ["a"])


def test_bins_count_the_edges_at_or_below_each_value():
    edges_t = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])  # 3 edges, 2 features
    X = np.array([[0.5, 10.0], [1.0, 25.0], [2.5, 30.0], [3.0, 99.0], [-9.0, 9.99]])
    assert drift.bin_indices(edges_t, X).tolist() == [[0, 1], [1, 2], [2, 3], [3, 3], [0, 0]]


# -- reference from metadata ------------------------------------------------------------------------------
def test_reference_from_statistics():
    X = np.arange(20.0).reshape(10, 2)
    ref = _reference(X, ["a", "b"])
    assert ref.names == ("a", "b")
    assert ref.mins.tolist() == [0.0, 1.0] and ref.maxs.tolist() == [18.0, 19.0]
    assert ref.edges_t.shape == (9, 2)
    assert ref.expected.sum(axis=1) == pytest.approx([1.0, 1.0])


def test_no_reference_without_usable_statistics():
    stats = drift.feature_statistics(np.arange(20.0).reshape(10, 2), ["a", "b"])
    assert Reference.from_statistics(None, ["a", "b"]) is None  # trained before statistics existed
    assert Reference.from_statistics(stats, ["b", "a"]) is None
    assert Reference.from_statistics({"features": "nope"}, None) is None
    assert Reference.from_statistics({"features": [{"name": "a"}]}, None) is None
    for key, bad in (("quantiles", [1.0]), ("min", [0.0, 1.0]), ("bin_proportions", [0.0] * 10),
                     ("bin_proportions", [-1.0] + [0.2] * 9), ("max", None)):
        broken = json.loads(json.dumps(stats))
        broken["features"][1][key] = bad
        assert Reference.from_statistics(broken, None) is None, (key, bad)


def test_missing_bin_shares_default_to_a_tenth_each():
    stats = drift.feature_statistics(np.arange(20.0).reshape(10, 2), ["a", "b"])
    for f in stats["features"]:
        del f["bin_proportions"]
    ref = Reference.from_statistics(stats, None)
    assert ref is not None and ref.expected == pytest.approx(np.full((2, 10), 0.1))


# -- out of range ---------------------------------------------------------------------------------------------
def test_out_of_range_rows_and_values():
    ref = _reference(np.array([[0.0, 10.0], [1.0, 20.0], [2.0, 30.0]]))
    inside = np.array([[0.0, 10.0], [2.0, 30.0], [1.5, 15.0]])  # the bounds themselves are in range
    assert drift.out_of_range(ref, inside) == (0, None)
    X = np.array([[-0.1, 15.0], [3.0, 31.0], [1.0, 20.0], [1.0, 9.0], [2.5, 30.0]])
    rows, per_feature = drift.out_of_range(ref, X)
    assert rows == 4
    assert per_feature is not None and per_feature.tolist() == [3, 2]


# -- PSI ------------------------------------------------------------------------------------------------------
def test_psi_against_a_hand_computation():
    expected = np.array([[0.25, 0.25, 0.25, 0.25]])
    counts = np.array([[10, 20, 30, 40]])  # observed shares 0.1, 0.2, 0.3, 0.4
    hand = (
        (0.1 - 0.25) * math.log(0.1 / 0.25)
        + (0.2 - 0.25) * math.log(0.2 / 0.25)
        + (0.3 - 0.25) * math.log(0.3 / 0.25)
        + (0.4 - 0.25) * math.log(0.4 / 0.25)
    )
    assert hand == pytest.approx(0.228218, abs=1e-6)
    assert drift.psi(expected, counts) == pytest.approx([hand])


def test_psi_floors_empty_bins_at_epsilon():
    got = drift.psi(np.array([[0.5, 0.5]]), np.array([[0, 100]]))
    eps = drift.EPSILON
    assert got == pytest.approx([(eps - 0.5) * math.log(eps / 0.5) + 0.5 * math.log(2)])
    assert np.isfinite(got).all()


def test_psi_is_zero_for_the_same_shares_and_nan_without_rows():
    expected = np.array([[0.1] * 10, [0.5, 0.5] + [0.0] * 8])
    assert drift.psi(expected, np.array([[7] * 10, [3, 3] + [0] * 8])) == pytest.approx([0.0, 0.0])
    assert np.isnan(drift.psi(expected, np.zeros((2, 10), dtype=np.int64))).all()


def test_psi_grows_with_the_shift():
    rng = np.random.default_rng(1)
    ref = _reference(rng.normal(size=(5000, 1)))
    values = []
    for shift in (0.0, 0.25, 1.0, 3.0):
        state = VersionDrift(ref, window_rows=2000)
        state.observe(rng.normal(size=(2000, 1)) + shift)
        values.append(float(state.psi()[0]))
    assert values[0] < 0.02
    assert values == sorted(values)
    assert values[-1] > 2


# -- sliding window -------------------------------------------------------------------------------------------
def test_window_wraps_and_keeps_the_most_recent_rows():
    w = SlidingWindow(5, 1)
    w.add(np.array([[1], [2], [3]], dtype=np.uint8))
    assert w.ordered()[:, 0].tolist() == [1, 2, 3] and w.rows == 3
    w.add(np.array([[4], [5], [6], [7]], dtype=np.uint8))  # wraps around the end
    assert w.ordered()[:, 0].tolist() == [3, 4, 5, 6, 7] and w.rows == 5
    w.add(np.array([[8]], dtype=np.uint8))
    assert w.ordered()[:, 0].tolist() == [4, 5, 6, 7, 8]
    w.add(np.arange(9, 21, dtype=np.uint8)[:, None])  # more than the window at once: its last rows
    assert w.ordered()[:, 0].tolist() == [16, 17, 18, 19, 20]
    assert w.total == 20
    assert w.counts(21)[0].tolist() == [0] * 16 + [1] * 5


def test_window_matches_a_list_of_every_row():
    rng = np.random.default_rng(2)
    w = SlidingWindow(37, 3)
    seen: list[list[int]] = []
    for _ in range(200):
        batch = rng.integers(0, 10, size=(int(rng.integers(1, 60)), 3)).astype(np.uint8)
        w.add(batch)
        seen.extend(batch.tolist())
        assert w.ordered().tolist() == seen[-37:]
    last = np.array(seen[-37:])
    assert w.counts().tolist() == [np.bincount(last[:, j], minlength=10).tolist() for j in range(3)]


def test_window_needs_a_size():
    with pytest.raises(ValueError):
        SlidingWindow(0, 2)


# -- per-version state ------------------------------------------------------------------------------------------
def test_version_drift_queues_rows_and_bins_them_when_read():
    rng = np.random.default_rng(3)
    ref = _reference(rng.normal(size=(1000, 2)))
    state = VersionDrift(ref, window_rows=50, flush_seconds=3600)
    rows = rng.normal(size=(200, 2))
    for i in range(10):
        assert state.observe(rows[i : i + 1])[2] is False  # queued, not binned yet
    assert state.window is not None and state.window.rows == 0
    assert state.window_rows() == 10
    state.observe(rows[10:40])
    state.observe(rows[40:200])  # more than the window at once
    assert state.window.rows == 0 and state.window_rows() == 50 and state.rows_seen == 200
    direct = SlidingWindow(50, 2)
    direct.add(drift.bin_indices(ref.edges_t, rows[-50:]))
    assert state.psi() == pytest.approx(drift.psi(ref.expected, direct.counts()))  # reading bins the queue
    assert state.window.ordered().tolist() == direct.ordered().tolist()


def test_version_drift_window_matches_every_row_whenever_it_is_read():
    rng = np.random.default_rng(4)
    ref = _reference(rng.normal(size=(500, 3)))
    state = VersionDrift(ref, window_rows=64, flush_seconds=3600)
    sent: list[np.ndarray] = []
    for _ in range(300):
        batch = rng.normal(size=(int(rng.integers(1, 90)), 3))
        state.observe(batch)
        sent.append(batch)
        if rng.random() < 0.3:
            state.flush()
            last = np.concatenate(sent)[-64:]
            assert state.window is not None
            assert state.window.ordered().tolist() == drift.bin_indices(ref.edges_t, last).tolist()
    assert state.rows_seen == sum(len(b) for b in sent)


def test_version_drift_bins_at_most_once_per_interval():
    ref = _reference(np.random.default_rng(5).normal(size=(100, 1)))
    every_call = VersionDrift(ref, window_rows=10, flush_seconds=0)
    assert every_call.observe(np.zeros((1, 1)))[2] is True
    assert every_call.window is not None and every_call.window.rows == 1
    hourly = VersionDrift(ref, window_rows=10, flush_seconds=3600)
    assert not any(hourly.observe(np.zeros((1, 1)))[2] for _ in range(100))


def test_version_drift_counts_out_of_range_for_traffic_only():
    ref = _reference(np.array([[0.0, 0.0], [1.0, 1.0]]))
    state = VersionDrift(ref, window_rows=10)
    X = np.array([[2.0, 0.5], [0.5, 0.5], [-1.0, 5.0]])
    rows, per_feature, _ = state.observe(X, track=False)  # evaluation: answered, not counted
    assert rows == 2 and per_feature is not None and per_feature.tolist() == [2, 1]
    assert state.out_of_range_rows == 0 and state.rows_seen == 0 and state.window_rows() == 0
    state.observe(X)
    state.observe(X)
    assert state.out_of_range_rows == 4 and state.out_of_range_values.tolist() == [4, 2]
    assert state.rows_seen == 6


def test_version_drift_without_a_window():
    ref = _reference(np.array([[0.0], [1.0]]))
    state = VersionDrift(ref, window_rows=0)
    assert state.observe(np.array([[3.0]]))[0] == 1
    assert state.window is None and state.window_rows() == 0
    assert np.isnan(state.psi()).all()
    assert drift.finite_or_none(state.psi()) == [None]


@pytest.mark.parametrize("share", [0.0, 0.001, 0.05, 0.6])
def test_out_of_range_agrees_with_a_plain_count(share):
    rng = np.random.default_rng(7)
    ref = _reference(rng.uniform(0, 1, size=(200, 7)))
    for m in (1, 2, 50, 3000):
        X = rng.uniform(0, 1, size=(m, 7))
        far = rng.random((m, 7)) < share
        X[far] += rng.choice([-2.0, 2.0], size=int(far.sum()))
        bad = np.less(X, ref.mins) | np.greater(X, ref.maxs)
        rows, per_feature = drift.out_of_range(ref, X)
        assert rows == int(bad.any(axis=1).sum())
        if rows:
            assert per_feature is not None and per_feature.tolist() == bad.sum(axis=0).tolist()
        else:
            assert per_feature is None
