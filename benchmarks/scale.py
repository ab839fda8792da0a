"""Benchmark: training beyond one machine, side by side on generated data (issue 14).

Two parts, chosen with ``--part dask|ooc|all`` (default ``all``); each prints its own table:

- ``ooc``, out of core on one machine: a table several times the memory budget, streamed from a scratch file
  (fit time, peak anonymous memory against the budget, objective gap to the in-memory fit of a slice, time per
  pass vs the time to read the file once): ``--ooc-rows`` x 50 (20 000 000: 8 GB of float64, as Parquet in
  ``--ooc-dir``) with a ``--ooc-budget`` of 1 GiB; see :mod:`_out_of_core`.
- ``dask``, on a Dask cluster: ``--rows`` x ``--features`` (400 000 x 50) binary, written as ``--partitions``
  Parquet files, read once by a ``distributed.LocalCluster`` of ``--workers`` worker processes x 1 thread on
  loopback and persisted there. On that same persisted frame:

  * ours on Dask: the table turned into the engine's blocks on the workers (``prepare``: labels coded, rows
    split) and the fit (``fit``: :func:`service.services.distributed.fit_on_cluster`: class counts and
    standardization on the cluster, then L-BFGS, each evaluation one map over the partitions and one sum);
  * ``dask_ml.linear_model.LogisticRegression(solver="lbfgs")`` on dask arrays of the same persisted frame
    (persisted too, before its clock starts);
  * the ratio ours (prepare + fit) / dask-ml's fit: target <= 0.25;
  * ours in memory (the engine's ``fit`` on the same rows in this process) and scikit-learn's lbfgs in memory,
    for scale; the objective gap between ours on Dask and ours in memory: target <= 1e-6;
  * the cost of one evaluation of the objective and gradient at the same point, on Dask (one map and one sum)
    and in memory, and their difference: the overhead per evaluation.

  Times are the median of ``--repeats`` runs (each library in turn).

Run it from the repository root with::

    .venv/bin/python benchmarks/scale.py --part dask
    .venv/bin/python benchmarks/scale.py --part ooc --ooc-rows 2000000 --ooc-slice 500000 --ooc-budget 67108864
    .venv/bin/python benchmarks/scale.py --part dask --rows 100000 --repeats 1   # quicker

Needs the ``dask`` extra and ``dask-ml`` (``pip install -e '.[dev]' dask-ml``). Targets print as PASS/MISS;
the exit code is 0 either way: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: make ``service`` importable
    sys.path.insert(0, str(ROOT))

from benchmarks._common import cpu_model, service_revision  # noqa: E402

#: Targets of issue 14.
DASK_RATIO_TARGET = 0.25
OBJECTIVE_GAP_TARGET = 1e-6


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall time of ``repeats`` calls of ``fn``, and the last call's result."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


# ==============================================================================================================
# Out of core (issue 14, part 1)
# ==============================================================================================================
def run_ooc(args: argparse.Namespace) -> dict[str, Any] | None:
    """The out-of-core part (:mod:`_out_of_core`): the whole table trained from disk within the budget, a slice
    out of core against in memory."""
    import _out_of_core

    print("\n== out of core ==")
    result = _out_of_core.run(args.ooc_rows, args.ooc_slice, args.ooc_budget, args.ooc_dir)
    print("\n".join(_out_of_core.report(result)))
    return result


# ==============================================================================================================
# Dask (issue 14, part 2)
# ==============================================================================================================
def dask_data(rows: int, features: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Binary data of unit-scale, mildly correlated features (as scikit-learn's ``make_classification`` makes
    them, so dask-ml, which does not standardize, is not slowed by the scaling); labels from a logistic model
    with noise (not separable)."""
    rng = np.random.default_rng(seed)
    mix = np.eye(features) + 0.3 * rng.normal(size=(features, features)) / np.sqrt(features)
    X = rng.normal(size=(rows, features)) @ mix
    w = 2.0 * rng.normal(size=features) / np.sqrt(features)
    y = (X @ w + 0.5 + rng.logistic(size=rows) > 0).astype(np.int64)
    return X, y


def write_parts(X: np.ndarray, y: np.ndarray, directory: Path, parts: int) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [f"f{j}" for j in range(X.shape[1])]
    cuts = np.linspace(0, X.shape[0], parts + 1).round().astype(int)
    for i in range(parts):
        a, b = cuts[i], cuts[i + 1]
        table = pa.table({**{n: X[a:b, j] for j, n in enumerate(names)}, "y": y[a:b]})
        pq.write_table(table, directory / f"part-{i:03d}.parquet")
    return names


def run_dask(args: argparse.Namespace) -> dict[str, Any]:
    import dask.dataframe as dd
    from dask_ml.linear_model import LogisticRegression as DaskMLLogisticRegression
    from distributed import Client, LocalCluster, wait
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    from service.engine import LogisticRegression
    from service.engine._loss import LinearLoss
    from service.engine._partitioned import SummedLoss, part_of
    from service.services.distributed import Runner, fit_on_cluster, load_table

    print(f"\n== Dask: {args.rows} x {args.features} binary, {args.partitions} Parquet parts, LocalCluster of "
          f"{args.workers} workers x 1 thread ==")
    X, y = dask_data(args.rows, args.features)
    results: dict[str, Any] = {"rows": args.rows, "features": args.features, "partitions": args.partitions,
                               "workers": args.workers}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="scale-dask-")))
        names = write_parts(X, y, tmp, args.partitions)
        cluster = stack.enter_context(LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, worker_dashboard_address=None))
        client = stack.enter_context(Client(cluster.scheduler_address))  # the default client: dask-ml uses it
        frame = dd.read_parquet(str(tmp), columns=[*names, "y"]).persist()
        wait(frame)
        runner = Runner(client)
        params = {"random_state": 0}

        def ours() -> tuple[float, float, Any]:
            start = time.perf_counter()
            table = load_table(runner, frame, names, "y", validation_fraction=0.0, seed=0, uri="bench")
            prepared = time.perf_counter()
            model = fit_on_cluster(table, params)
            return prepared - start, time.perf_counter() - prepared, (model, table)

        X_da = frame[names].to_dask_array(lengths=True).persist()
        y_da = frame["y"].to_dask_array(lengths=True).persist()
        wait([X_da, y_da])

        def dask_ml() -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return DaskMLLogisticRegression(solver="lbfgs").fit(X_da, y_da)

        ours_runs, ml_runs = [], []
        ml_model = model = table = None
        for _ in range(args.repeats):
            prep, fit, (model, table) = ours()
            ours_runs.append((prep, fit))
            start = time.perf_counter()
            ml_model = dask_ml()
            ml_runs.append(time.perf_counter() - start)
        assert model is not None and table is not None and ml_model is not None
        prep = statistics.median(r[0] for r in ours_runs)
        fit = statistics.median(r[1] for r in ours_runs)
        ours_total = statistics.median(r[0] + r[1] for r in ours_runs)
        ml_time = statistics.median(ml_runs)

        mem_time, mem_model = median_time(lambda: LogisticRegression(**params).fit(X, y), args.repeats)
        sk_time, _ = median_time(lambda: SkLogisticRegression(max_iter=1000).fit(X, y), args.repeats)
        f_dask, f_mem = model.loss_history_[-1], mem_model.loss_history_[-1]
        gap = abs(f_dask - f_mem)
        proba_gap = float(np.abs(model.predict_proba(X) - mem_model.predict_proba(X)).max())

        # one evaluation of objective and gradient at the fitted point, on Dask and here
        n, d = X.shape
        mean, scale = mem_model.mean_, mem_model.scale_
        weights = np.full(2, 1.0 / n)
        parts = table.train.map_keep(part_of, weights, mean, scale, 2, True)
        summed = SummedLoss(parts, n, d, 2, mem_model.alpha_, True, mean, scale)
        local = LinearLoss(X, y, np.full(n, 1.0 / n), mean, scale, 2, mem_model.alpha_)
        w = np.concatenate([mem_model.standardized_coef_[0], mem_model.standardized_intercept_])
        reps = max(5, 4 * args.repeats)
        eval_dask, _ = median_time(lambda: summed.loss_grad(w), reps)
        eval_mem, _ = median_time(lambda: local.loss_grad(w), reps)

    ratio = ours_total / ml_time
    results.update({
        "ours_dask_prepare_s": prep, "ours_dask_fit_s": fit, "ours_dask_total_s": ours_total,
        "ours_dask_iterations": model.n_iter_, "dask_ml_fit_s": ml_time, "ratio": ratio,
        "ours_memory_fit_s": mem_time, "ours_memory_iterations": mem_model.n_iter_, "sklearn_memory_fit_s": sk_time,
        "objective_dask": f_dask, "objective_memory": f_mem, "objective_gap": gap, "probability_gap": proba_gap,
        "evaluation_dask_ms": eval_dask * 1e3, "evaluation_memory_ms": eval_mem * 1e3,
        "evaluation_overhead_ms": (eval_dask - eval_mem) * 1e3,
    })
    rows = [
        ("ours on Dask: prepare (labels coded, blocks, split)", f"{prep:.3f} s", ""),
        ("ours on Dask: fit (L-BFGS)", f"{fit:.3f} s", f"{model.n_iter_} iterations"),
        ("ours on Dask: total", f"{ours_total:.3f} s", ""),
        ('dask-ml LogisticRegression(solver="lbfgs")', f"{ml_time:.3f} s", ""),
        ("ratio ours / dask-ml", f"{ratio:.3f}", f"target <= {DASK_RATIO_TARGET}: "
         f"{'PASS' if ratio <= DASK_RATIO_TARGET else 'MISS'}"),
        ("ours in memory (engine fit)", f"{mem_time:.3f} s", f"{mem_model.n_iter_} iterations"),
        ("scikit-learn lbfgs in memory", f"{sk_time:.3f} s", ""),
        ("objective: Dask vs in memory", f"{gap:.2e}", f"target <= {OBJECTIVE_GAP_TARGET:g}: "
         f"{'PASS' if gap <= OBJECTIVE_GAP_TARGET else 'MISS'} (max probability gap {proba_gap:.1e})"),
        ("one loss+gradient evaluation on Dask", f"{eval_dask * 1e3:.1f} ms", "one map + one sum"),
        ("one loss+gradient evaluation in memory", f"{eval_mem * 1e3:.1f} ms", ""),
        ("overhead per evaluation", f"{(eval_dask - eval_mem) * 1e3:.1f} ms", ""),
    ]
    width = max(len(r[0]) for r in rows)
    for label, value, note in rows:
        print(f"  {label:<{width}}  {value:>10}  {note}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["dask", "ooc", "all"], default="all")
    parser.add_argument("--rows", type=int, default=400_000, help="Dask part: rows")
    parser.add_argument("--features", type=int, default=50, help="Dask part: features")
    parser.add_argument("--partitions", type=int, default=8, help="Dask part: Parquet files (partitions)")
    parser.add_argument("--workers", type=int, default=2, help="Dask part: worker processes (1 thread each)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ooc-rows", type=int, default=20_000_000, help="out-of-core part: rows (x 50)")
    parser.add_argument("--ooc-slice", type=int, default=2_000_000, help="out-of-core part: rows of the slice "
                        "trained both in memory and out of core")
    parser.add_argument("--ooc-budget", type=int, default=2**30, help="out-of-core part: LOGREG_TRAIN_MEMORY_BYTES")
    parser.add_argument("--ooc-dir", type=Path, help="out-of-core part: where the table is written (and reused)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    print(f"machine: {cpu_model()}, {platform.python_version()}; {service_revision()}")
    out: dict[str, Any] = {}
    if args.part in ("ooc", "all"):
        out["ooc"] = run_ooc(args)
    if args.part in ("dask", "all"):
        out["dask"] = run_dask(args)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
