"""Benchmark: mixed-type tables (numbers with missing cells, text categories), training end to end against
scikit-learn's equivalent pipeline, and serving raw records against plain numeric rows.

What it does, in one go:

1. **Training, file to model.** Generates (seeded) a table of ``--rows`` rows (500 000): 10 numeric columns,
   each with 5% missing cells, 5 text categorical columns of 10, 50, 300, 1 000 and 5 000 levels with
   Zipf-like frequencies (the k-th level has weight ``1/k^1.1``), and a binary label drawn from a known logit
   (a weight per number, an effect per level); writes it once as a CSV (and a 20 000-row held-out CSV of the
   same kind) in a temporary folder. Then, interleaved over ``--repeats`` rounds (3; which side goes first
   alternates), each run in a fresh Python process so its peak memory is its own, after its imports and an
   untimed warm-up run of the same work on the held-out file (lazy imports, first calls):

   - ours: ``open_files`` + ``read_training_table`` + ``train_and_store`` into a new registry with
     ``validation_fraction=0``, the API's default params (lbfgs, C=1) and default encoding (median
     imputation, standardized numbers, one-hot categories): timed from the file to the stored version;
   - scikit-learn: ``pandas.read_csv(engine="pyarrow")`` then ``make_pipeline(ColumnTransformer([numbers:
     SimpleImputer(median) + StandardScaler, categories: OneHotEncoder(handle_unknown="ignore")]),
     LogisticRegression(lbfgs, C=1, max_iter=10 000))``, its two steps fitted in turn as ``Pipeline.fit`` does
     (so the table can show them apart): timed from the file to the fitted pipeline.

   Both run with BLAS and OpenMP pinned to one thread (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
   ``MKL_NUM_THREADS`` set to 1 before any import, and ``threadpoolctl.threadpool_limits(1)``). Reading a
   CSV is Arrow's work on both sides: ours streams it in batches on one thread (the service's reader),
   pandas' pyarrow engine uses Arrow's own thread pool (not limited here: it is the library's default).

   Reported: the median time of each, and per phase; the ratio ours/scikit-learn (target <= 0.7); the peak
   resident memory of each run beyond what its process held after the imports (``ru_maxrss`` minus
   ``VmRSS``); the iterations; and how close both fits are: ONE objective (mean log-loss + ``||coef||^2 /
   (2 C n)``, scikit-learn's objective divided by ``C n``) computed for both models on scikit-learn's encoded
   training matrix (our coefficients mapped to its columns by name: the encodings have the same columns,
   which is checked, as is the largest difference between our encoded matrix and scikit-learn's), and the
   largest difference of P(y=1) on the held-out rows, with each model's held-out log-loss.

2. **Serving raw records.** Starts our service (``python -m uvicorn service.app:create_app_from_env --factory
   --workers 1`` on a free loopback port, a temporary ``LOGREG_MODEL_STORE``, ``LOGREG_LOG_LEVEL=warning``),
   trains over HTTP (multipart CSV uploads, ``POST /train``) a mixed model on ``--serve-rows`` rows (20 000)
   of the same kind of table and a plain numeric model on as many rows of 15 complete numeric columns,
   checks that the mixed model's answer to raw records equals the stored model's own computation, then loads
   ``POST /predict_proba`` with ``--batch-rows``-row bodies (1 000): raw records (``{"model", "records"}``:
   text categories, nulls) to the mixed model and rows of numbers (``{"model", "features"}``) to the numeric
   one. The load generator is serve.py's (``wrk`` when on PATH, else its asyncio socket loop), same for
   both; each run is a warm-up (discarded) then a timed run of ``--duration`` seconds; the two models
   alternate, and which goes first alternates per round. Reported: rows/s, p50/p99 latency and the server's
   CPU per model (medians over ``--rounds``), and the ratio mixed/numeric (median of the per-round ratios;
   target >= 0.5). The server inherits the one-thread BLAS setting.

It prints the machine, the commit and the date, both tables side by side, PASS/MISS against the targets and
(``--markdown``) README-ready markdown tables. The load generator and the training processes share the
machine's cores with whatever else runs there: the 1-minute load average at start and end is printed.

Run it from the repository root with::

    .venv/bin/python benchmarks/mixed.py                   # both parts: 500 000 rows, 3 repeats, 3 rounds
    .venv/bin/python benchmarks/mixed.py --markdown --json out.json
    .venv/bin/python benchmarks/mixed.py --only train --rows 100000 --repeats 1 --keep /tmp/mixed

The exit code is 0 whether the targets pass or not (this is a benchmark, not a test); it is 1 when a
measured run, a server or the correctness check fails.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy/scipy load BLAS
    os.environ[_var] = "1"

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import datetime as dt  # noqa: E402
import gc  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: make ``service`` importable
    sys.path.insert(0, str(ROOT))

from _common import cpu_model, service_revision  # noqa: E402  (benchmarks/ is the script's own folder)

NUMERIC = [f"num{j}" for j in range(10)]
LEVELS = (10, 50, 300, 1000, 5000)
CATEGORICAL = [f"cat{j}" for j in range(len(LEVELS))]
FEATURES = NUMERIC + CATEGORICAL
SERVE_NUMERIC = [f"num{j}" for j in range(15)]
TARGET = "y"
MISSING = 0.05
ZIPF = 1.1
HOLDOUT_ROWS = 20_000
C = 1.0
SK_MAX_ITER = 10_000
TRAIN_TARGET = 0.7  # ours / scikit-learn, file to model
SERVE_TARGET = 0.5  # mixed records / numeric rows, rows per second
MIB = 2.0**20


class BenchError(RuntimeError):
    """A failure that makes the numbers meaningless."""


def log(msg: str) -> None:
    print(f"[mixed-bench] {msg}", file=sys.stderr, flush=True)


# -- the generator ----------------------------------------------------------------------------------------
def make_table(n: int, seed: int, numeric: list[str], levels: tuple[int, ...], missing: float) -> Any:
    """A seeded Arrow table: ``numeric`` columns (column j: normal, scale j + 1, offset j, rounded to 4
    decimals, a ``missing`` share of empty cells), a text column ``cat{j}`` per entry of ``levels`` (values
    ``c{j}_{k}``, the k-th drawn with weight ``1/(k+1)^ZIPF``) and the label ``y``, drawn from a known logit:
    the truth (a weight per number, an effect per level) depends on the column only, not on ``seed``."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    logit = np.full(n, -0.3)
    columns: dict[str, Any] = {}
    for j, name in enumerate(numeric):
        weight = np.random.default_rng(1_000 + j).normal() * 0.5
        z = rng.normal(size=n)
        logit += weight * z
        values = np.round(z * (j + 1) + j, 4)
        columns[name] = pa.array(values, mask=rng.random(n) < missing if missing else None)
    for j, k in enumerate(levels):
        effects = np.random.default_rng(2_000 + j).normal(size=k) * 0.7
        p = 1.0 / np.arange(1, k + 1) ** ZIPF
        codes = rng.choice(k, size=n, p=p / p.sum())
        logit += effects[codes]
        names = np.array([f"c{j}_{i}" for i in range(k)], dtype=object)
        columns[f"cat{j}"] = pa.array(names[codes], pa.string())
    columns[TARGET] = pa.array((rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64))
    return pa.table(columns)


def write_csv(table: Any, path: Path) -> Path:
    import pyarrow.csv as pcsv

    pcsv.write_csv(table, path, pcsv.WriteOptions(quoting_style="none"))  # empty cells where missing
    return path


def generate(folder: Path, rows: int) -> tuple[Path, Path]:
    """The training CSV and the held-out CSV (made once; kept when ``folder`` is given again)."""
    train, holdout = folder / f"mixed-{rows}.csv", folder / f"mixed-holdout-{HOLDOUT_ROWS}.csv"
    if not train.exists():
        write_csv(make_table(rows, 0, NUMERIC, LEVELS, MISSING), train)
    if not holdout.exists():
        write_csv(make_table(HOLDOUT_ROWS, 1, NUMERIC, LEVELS, MISSING), holdout)
    return train, holdout


# -- part 1: one measured run, in a fresh process ---------------------------------------------------------
def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _ours(csv_path: Path, out: Path) -> dict[str, Any]:
    """Ours, file to stored version (into a registry at ``out``), timed per phase."""
    import resource

    from service.data.sources import open_files
    from service.domain import TrainParams
    from service.services.training import TrainingProgress, read_training_table, train_and_store
    from service.store.registry import ModelRegistry

    class PhaseClock(TrainingProgress):
        def __init__(self) -> None:
            self.marks: dict[str, float] = {}

        def phase(self, name: str, **info: Any) -> None:
            self.marks[name] = time.perf_counter()

    registry = ModelRegistry(out)
    clock = PhaseClock()
    params = TrainParams().model_dump()  # what POST /train passes when no params are given
    t0, cpu0 = time.perf_counter(), time.process_time()
    data = read_training_table(open_files(str(csv_path), roots=None), TARGET, None, None, clock)
    t1 = time.perf_counter()
    report = train_and_store(registry, "mixed", data.X, data.y, feature_names=data.names, columns=data.columns,
                             params=params, validation_fraction=0, progress=clock)
    t2, cpu = time.perf_counter(), time.process_time() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    m = clock.marks
    return {"seconds": t2 - t0, "cpu": cpu, "read": t1 - t0, "encode": m["fitting"] - t1,
            "fit": m["evaluating"] - m["fitting"], "finish": t2 - m["evaluating"], "peak": peak,
            "n_iter": report["n_iter"], "converged": report["converged"], "loss_history": report["loss_history"]}


def _sklearn(csv_path: Path, out: Path | None) -> dict[str, Any]:
    """scikit-learn, file to fitted pipeline (pickled to ``out`` afterwards, untimed), timed per step."""
    import pickle
    import resource

    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    encode = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
        ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
    ])
    model = LogisticRegression(C=C, max_iter=SK_MAX_ITER)
    t0, cpu0 = time.perf_counter(), time.process_time()
    frame = pd.read_csv(csv_path, engine="pyarrow")
    t1 = time.perf_counter()
    Xt = encode.fit_transform(frame[FEATURES], frame[TARGET])  # what Pipeline.fit does, step by step
    t2 = time.perf_counter()
    model.fit(Xt, frame[TARGET])
    t3, cpu = time.perf_counter(), time.process_time() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if out is not None:
        with out.open("wb") as f:
            pickle.dump(make_pipeline(encode, model), f)
    n_iter = int(np.max(model.n_iter_))
    return {"seconds": t3 - t0, "cpu": cpu, "read": t1 - t0, "encode": t2 - t1, "fit": t3 - t2, "finish": 0.0,
            "peak": peak, "n_iter": n_iter, "converged": n_iter < SK_MAX_ITER}


def worker(side: str, csv_path: Path, warmup_path: Path, out: Path) -> dict[str, Any]:
    """One timed run of ``side`` in this fresh process, after its imports and an untimed warm-up run on the
    small ``warmup_path`` (lazy imports, first calls: what a running service has behind it). Ours stores into
    the registry at ``out``, scikit-learn pickles its pipeline to ``out``."""
    import threadpoolctl

    threadpoolctl.threadpool_limits(1)
    if side == "ours":
        _ours(warmup_path, out.with_name(out.name + "-warmup"))
    else:
        _sklearn(warmup_path, None)
    gc.collect()
    before = _rss()
    result = _ours(csv_path, out) if side == "ours" else _sklearn(csv_path, out)
    result["extra_bytes"] = result.pop("peak") - before
    return result


def measure(side: str, csv_path: Path, warmup_path: Path, out: Path) -> dict[str, Any]:
    """``side``'s run in a fresh process of this script."""
    done = subprocess.run([sys.executable, __file__, "--worker", side, str(csv_path), str(warmup_path), str(out)],
                          cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise BenchError(f"the {side} run failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["load_after"] = round(os.getloadavg()[0], 2)
    return result


# -- part 1: how close both fits are (untimed) ------------------------------------------------------------
def objective(coef: np.ndarray, intercept: float, X: Any, y: np.ndarray) -> float:
    """Mean log-loss on ``(X, y)`` + ``||coef||^2 / (2 C n)``, from the logits (stable log-sigmoid)."""
    z = np.asarray(X @ coef).ravel() + intercept
    losses = np.logaddexp(0.0, z) - (y == 1) * z
    return float(losses.mean()) + float(coef @ coef) / (2.0 * C * X.shape[0])


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(np.where(y == 1, np.log(p), np.log1p(-p))))


def compare(csv_path: Path, holdout_path: Path, store: Path, pipeline_path: Path) -> dict[str, Any]:
    """Both fitted models on one objective, our encoding against scikit-learn's, both on the held-out rows."""
    import pickle

    import pandas as pd
    import scipy.sparse as sp

    from service.data.sources import open_files
    from service.data.tables import read_table
    from service.store.registry import ModelRegistry

    ours = ModelRegistry(store).load("mixed").model  # an EncodedModel
    with pipeline_path.open("rb") as f:
        pipe = pickle.load(f)  # our own file, written by this benchmark
    sk_names = [str(n) for n in pipe[0].get_feature_names_out()]
    position = {name: i for i, name in enumerate(sk_names)}
    ours_as_sk = [f"cat__{n.replace('=', '_', 1)}" if "=" in n else f"num__{n}" for n in ours.encoder.output_names()]
    missing = sorted(set(ours_as_sk) - set(position))
    if missing or len(ours_as_sk) != len(sk_names):
        raise BenchError(f"the encodings differ: {len(ours_as_sk)} columns (ours) vs {len(sk_names)}; ours has "
                         f"{missing[:5]} that scikit-learn has not")
    perm = np.array([position[n] for n in ours_as_sk])  # our column i is scikit-learn's column perm[i]

    frame = pd.read_csv(csv_path, engine="pyarrow")
    y = frame[TARGET].to_numpy()
    X_sk = sp.csr_array(pipe[0].transform(frame[FEATURES]))
    del frame
    values = read_table(open_files(str(csv_path), roots=None), target=TARGET, columns=ours.columns()).X
    X_ours = ours.encoder.transform(values)
    X_ours = X_ours if sp.issparse(X_ours) else sp.csr_array(X_ours)
    encoding_diff = float(abs(X_ours - X_sk[:, perm]).max())
    del values, X_ours

    coef_ours = np.zeros(len(sk_names))
    coef_ours[perm] = ours.estimator.coef_[0]
    sk = pipe[-1]
    f_ours = objective(coef_ours, float(ours.estimator.intercept_[0]), X_sk, y)
    f_sk = objective(sk.coef_[0], float(sk.intercept_[0]), X_sk, y)

    holdout = pd.read_csv(holdout_path, engine="pyarrow")
    y_h = holdout[TARGET].to_numpy()
    p_sk = pipe.predict_proba(holdout[FEATURES])[:, 1]
    values_h = read_table(open_files(str(holdout_path), roots=None), target=TARGET, columns=ours.columns()).X
    p_ours = ours.predict_proba(values_h)[:, 1]
    return {
        "output_columns": len(sk_names), "encoding_max_diff": encoding_diff,
        "objective_ours": f_ours, "objective_sklearn": f_sk, "objective_gap": (f_ours - f_sk) / abs(f_sk),
        "holdout_max_proba_diff": float(np.max(np.abs(p_ours - p_sk))),
        "holdout_log_loss_ours": log_loss(p_ours, y_h), "holdout_log_loss_sklearn": log_loss(p_sk, y_h),
    }


def iteration_reaching(history: list[float], n_iter: int, target: float) -> int | None:
    """The first iteration whose objective is at most ``target``, from a loss history as the training report
    keeps it (the objective before the first iteration and after each, evenly downsampled to at most
    ``MAX_HISTORY_POINTS``, so the answer is exact to a few iterations); None if it never gets there."""
    from service.domain import MAX_HISTORY_POINTS

    points = n_iter + 1
    kept = (np.arange(points) if points <= MAX_HISTORY_POINTS
            else np.unique(np.linspace(0, points - 1, MAX_HISTORY_POINTS).round().astype(int)))
    hit = np.flatnonzero(np.asarray(history) <= target)
    if len(kept) != len(history) or not hit.size:
        return None
    return int(kept[hit[0]])


def run_training(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    t = time.perf_counter()
    csv_path, holdout_path = generate(folder, args.rows)
    log(f"training: {args.rows:,} rows in {csv_path} ({csv_path.stat().st_size / 1e6:.0f} MB), "
        f"made in {time.perf_counter() - t:.1f} s")
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "sklearn": []}
    outputs: dict[str, Path] = {}
    for r in range(args.repeats):
        for side in ("ours", "sklearn") if r % 2 == 0 else ("sklearn", "ours"):
            out = folder / (f"store-{r}" if side == "ours" else f"pipeline-{r}.pkl")
            runs[side].append(measure(side, csv_path, holdout_path, out))
            outputs[side] = out
            res = runs[side][-1]
            log(f"round {r + 1}/{args.repeats} {side:<7}: {res['seconds']:6.2f} s (read {res['read']:.2f}, encode "
                f"{res['encode']:.2f}, fit {res['fit']:.2f}, finish {res['finish']:.2f}; CPU {res['cpu']:.2f} s), "
                f"{res['n_iter']} iterations, peak +{res['extra_bytes'] / MIB:.0f} MiB, 1-min load after "
                f"{res['load_after']}")
    log("comparing the fits (untimed) ...")
    quality = compare(csv_path, holdout_path, outputs["ours"], outputs["sklearn"])
    medians = {side: {k: statistics.median(float(x[k]) for x in rs)
                      for k in ("seconds", "cpu", "read", "encode", "fit", "finish", "extra_bytes")}
               for side, rs in runs.items()}
    last = runs["ours"][-1]  # the run whose model was compared
    reached = iteration_reaching(last["loss_history"], last["n_iter"], quality["objective_sklearn"])
    at_par = None
    if reached is not None:  # our median time had its fit stopped there (the fit's iterations cost alike)
        o = medians["ours"]
        at_par = {"iteration": reached, "seconds": o["seconds"] - o["fit"] * (1 - reached / max(1, last["n_iter"]))}
    return {"runs": runs, "medians": medians, "quality": quality, "csv_bytes": csv_path.stat().st_size,
            "ratio": medians["ours"]["seconds"] / medians["sklearn"]["seconds"], "at_par": at_par}


# -- part 2: serving raw records --------------------------------------------------------------------------
def run_serving(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    import httpx
    import orjson
    import serve  # benchmarks/serve.py: its servers and load generators

    from service.data.columns import Columns
    from service.store.registry import ModelRegistry

    mixed_train = make_table(args.serve_rows, 2, NUMERIC, LEVELS, MISSING)
    numeric_train = make_table(args.serve_rows, 2, SERVE_NUMERIC, (), 0.0)
    mixed_rows = make_table(args.batch_rows, 3, NUMERIC, LEVELS, MISSING).drop_columns([TARGET])
    numeric_rows = make_table(args.batch_rows, 3, SERVE_NUMERIC, (), 0.0).drop_columns([TARGET])
    records = mixed_rows.to_pylist()  # text categories, None where missing
    features = [list(row.values()) for row in numeric_rows.to_pylist()]
    bodies = {"numeric": orjson.dumps({"model": "numeric", "features": features}),
              "mixed": orjson.dumps({"model": "mixed", "records": records})}
    generator = serve.pick_generator(args.generator, folder)
    log(f"serving: load generator {generator.description}")
    store = folder / "serve-store"
    server = serve.start_server(
        "ours", ["service.app:create_app_from_env", "--factory"],
        serve.server_env({"LOGREG_MODEL_STORE": str(store), "LOGREG_LOG_LEVEL": "warning"}), folder, "/healthz")
    try:
        for name, table in (("mixed", mixed_train), ("numeric", numeric_train)):
            path = write_csv(table, folder / f"serve-{name}.csv")
            r = httpx.post(server.url + "/train", files={"file": (path.name, path.read_bytes(), "text/csv")},
                           data={"target": TARGET, "model": name}, timeout=300.0, trust_env=False)
            if r.status_code != 201:
                raise BenchError(f"POST /train of {name} answered {r.status_code}: {r.text[:500]}")
            log(f"trained {name}: version {r.json()['version']}, {r.json()['n_iter']} iterations")
        loaded = ModelRegistry(store).load("mixed")
        columns = loaded.model.columns()
        assert isinstance(columns, Columns)
        expected = loaded.model.predict_proba(columns.json_matrix(
            [[rec[n] for rec in records] for n in columns.names], "records"))
        for name, body in bodies.items():
            r = httpx.post(server.url + "/predict_proba", content=body, headers={"content-type": "application/json"},
                           timeout=60.0, trust_env=False)
            proba = np.asarray(r.json().get("probabilities"), dtype=np.float64) if r.status_code == 200 else None
            if proba is None or proba.shape != (args.batch_rows, 2) or not np.isfinite(proba).all():
                raise BenchError(f"/predict_proba of {name} answered {r.status_code}: {r.text[:500]}")
            if name == "mixed" and not np.max(np.abs(proba - expected)) <= 1e-9:
                raise BenchError(f"the mixed model's answer differs from the stored model's by "
                                 f"{np.max(np.abs(proba - expected)):g}")
        log("correctness: both answer 200 with finite probabilities; records agree with the stored model")
        url = server.url + "/predict_proba"
        runs: dict[str, list[Any]] = {"numeric": [], "mixed": []}
        for rnd in range(args.rounds):
            for name in ("numeric", "mixed") if rnd % 2 == 0 else ("mixed", "numeric"):
                if args.warmup > 0:
                    generator.run(url, bodies[name], args.connections, args.warmup)
                cpu0, t0 = serve.cpu_seconds(server.proc.pid), time.perf_counter()
                res = generator.run(url, bodies[name], args.connections, args.duration)
                cpu1, t1 = serve.cpu_seconds(server.proc.pid), time.perf_counter()
                if cpu0 is not None and cpu1 is not None:
                    res = dataclasses.replace(res, server_cpu=(cpu1 - cpu0) / (t1 - t0))
                if server.proc.poll() is not None:
                    raise BenchError(f"the server died during the run:\n{server.log_tail()}")
                if res.errors:
                    raise BenchError(f"{res.errors} requests failed in the {name} run; the numbers are not comparable")
                runs[name].append(res)
                log(f"round {rnd + 1}/{args.rounds} {name:<7}: {res.rps * args.batch_rows:9.0f} rows/s, p50 "
                    f"{res.p50_ms:6.1f} ms, p99 {res.p99_ms:6.1f} ms, server CPU "
                    + ("n/a" if res.server_cpu is None else f"{res.server_cpu:.0%}"))
    finally:
        serve.stop_server(server)
    summary = {name: serve.AppSummary.of(rs, args.batch_rows) for name, rs in runs.items()}
    # rows per CPU-second of the server: what it costs the server, whoever else used the cores meanwhile
    cpu_rates = {name: [r.rps * args.batch_rows / r.server_cpu for r in rs if r.server_cpu]
                 for name, rs in runs.items()}
    per_cpu = {name: statistics.median(v) if len(v) == len(runs[name]) else None for name, v in cpu_rates.items()}
    per_cpu_ratio = None
    if per_cpu["numeric"] is not None and per_cpu["mixed"] is not None:
        per_cpu_ratio = statistics.median(m / n for m, n in zip(cpu_rates["mixed"], cpu_rates["numeric"], strict=True))
    per_round = [m.rps / n.rps if n.rps > 0 else float("nan") for m, n in zip(runs["mixed"], runs["numeric"],
                                                                               strict=True)]
    return {"summary": summary, "per_round": per_round, "ratio": statistics.median(per_round), "per_cpu": per_cpu,
            "per_cpu_ratio": per_cpu_ratio,
            "generator": generator.description,
            "body_bytes": {name: len(body) for name, body in bodies.items()}}


# -- report -----------------------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def training_rows(t: dict[str, Any], repeats: int) -> list[list[str]]:
    o, s, q = t["medians"]["ours"], t["medians"]["sklearn"], t["quality"]

    def iters(side: str) -> str:
        last = t["runs"][side][-1]
        return f"{last['n_iter']}" + ("" if last["converged"] else " (not converged)")

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b > 0 else "-"

    return [
        [f"file -> model, median of {repeats} (s)", f"{o['seconds']:.2f}", f"{s['seconds']:.2f}",
         f"{t['ratio']:.2f}", f"<= {TRAIN_TARGET} {verdict(t['ratio'] <= TRAIN_TARGET)}"],
        ["  read the CSV (s)", f"{o['read']:.2f}", f"{s['read']:.2f}", ratio(o["read"], s["read"]), ""],
        ["  encoder fit / ColumnTransformer (s)", f"{o['encode']:.2f}", f"{s['encode']:.2f}",
         ratio(o["encode"], s["encode"]), ""],
        ["  solver fit (ours: + transform) (s)", f"{o['fit']:.2f}", f"{s['fit']:.2f}", ratio(o["fit"], s["fit"]), ""],
        ["  metrics, drift stats, store (s)", f"{o['finish']:.2f}", "-", "", ""],
        ["CPU time of the run (s)", f"{o['cpu']:.2f}", f"{s['cpu']:.2f}", ratio(o["cpu"], s["cpu"]), ""],
        ["iterations (lbfgs)", iters("ours"), iters("sklearn"), "", ""],
        ["ours stopped at sklearn's objective (est.)",
         "-" if t["at_par"] is None else f"{t['at_par']['seconds']:.2f}", "",
         "-" if t["at_par"] is None else ratio(t["at_par"]["seconds"], s["seconds"]),
         "" if t["at_par"] is None else f"iteration {t['at_par']['iteration']}"],
        ["peak RSS above the warmed-up process", f"{o['extra_bytes'] / MIB:.0f} MiB",
         f"{s['extra_bytes'] / MIB:.0f} MiB",
         ratio(o["extra_bytes"], s["extra_bytes"]), ""],
        ["objective (one function, same matrix)", f"{q['objective_ours']:.10f}", f"{q['objective_sklearn']:.10f}",
         f"{q['objective_gap']:+.1e}", ""],
        ["held-out log-loss", f"{q['holdout_log_loss_ours']:.6f}", f"{q['holdout_log_loss_sklearn']:.6f}", "", ""],
        ["held-out max |P(y=1) diff|", f"{q['holdout_max_proba_diff']:.1e}", "", "", ""],
    ]


def _per_cpu(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def serving_rows(s: dict[str, Any], batch_rows: int, connections: int) -> list[list[str]]:
    num, mix = s["summary"]["numeric"], s["summary"]["mixed"]
    per = s["per_round"]
    spread = f" ({min(per):.2f}-{max(per):.2f})" if len(per) > 1 else ""

    def cpu(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.0%}"

    return [
        [f"{batch_rows}-row bodies ({connections} conn.): rows/s", f"{num.rows_per_s:,.0f}", f"{mix.rows_per_s:,.0f}",
         f"{s['ratio']:.2f}{spread}", f">= {SERVE_TARGET} {verdict(s['ratio'] >= SERVE_TARGET)}"],
        ["  p50 latency (ms)", f"{num.p50_ms:.1f}", f"{mix.p50_ms:.1f}", f"{mix.p50_ms / num.p50_ms:.2f}", ""],
        ["  p99 latency (ms)", f"{num.p99_ms:.1f}", f"{mix.p99_ms:.1f}", f"{mix.p99_ms / num.p99_ms:.2f}", ""],
        ["  server CPU (of one core)", cpu(num.server_cpu), cpu(mix.server_cpu), "", ""],
        ["  rows per server CPU-second", _per_cpu(s["per_cpu"]["numeric"]), _per_cpu(s["per_cpu"]["mixed"]),
         "-" if s["per_cpu_ratio"] is None else f"{s['per_cpu_ratio']:.2f}", ""],
        ["  body size", f"{s['body_bytes']['numeric'] / 1e3:.0f} kB", f"{s['body_bytes']['mixed'] / 1e3:.0f} kB",
         f"{s['body_bytes']['mixed'] / s['body_bytes']['numeric']:.2f}", ""],
    ]


TRAIN_HEADER = ["training on a mixed table", "ours", "scikit-learn", "ours/sklearn", "target"]
SERVE_HEADER = ["POST /predict_proba", "numeric model, features", "mixed model, records", "mixed/numeric", "target"]


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in (0, len(r) - 1) else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths, strict=True)))

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)])


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 2) + "---|"]
    out += ["| " + " | ".join(c.replace(">=", "≥").replace("<=", "≤") for c in r) + " |" for r in rows]
    return "\n".join(out)


def machine_info() -> dict[str, Any]:
    import threadpoolctl

    versions = {p: importlib.metadata.version(p) for p in ("numpy", "scipy", "pyarrow", "pandas", "scikit-learn",
                                                           "fastapi", "uvicorn")}
    with threadpoolctl.threadpool_limits(1):
        pools = sorted({f"{i.get('internal_api')} {i.get('num_threads')} thread(s)"
                        for i in threadpoolctl.threadpool_info()})
    return {
        "cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(), "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": versions, "thread_pools": pools, "service_revision": service_revision(),
        "load_average_1min_at_start": round(os.getloadavg()[0], 2),
    }


def report(args: argparse.Namespace, machine: dict[str, Any], training: dict[str, Any] | None,
           serving: dict[str, Any] | None, total_s: float) -> str:
    m = machine
    lines = [
        "Mixed-type tables: training end to end vs scikit-learn, and serving raw records vs numeric rows",
        f"machine: {m['cpu']}, {m['cores']} cores, {m['platform']}, Python {m['python']}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        f"measured: {m['date_utc']}, {m['service_revision']}; took {total_s:.0f} s",
        f"threads: BLAS/OpenMP pinned to 1 (OMP/OPENBLAS/MKL_NUM_THREADS=1 before imports, threadpoolctl: "
        f"{'; '.join(m['thread_pools'])}); Arrow's CSV thread pool left at its default",
        f"1-min load average: {m['load_average_1min_at_start']} at start, {m['load_average_1min_at_end']} at end "
        "(this benchmark accounts for about 1-2: more means other processes competed for the cores)",
    ]
    if training is not None:
        q = training["quality"]
        lines += [
            "",
            f"1. Training, file to model: {args.rows:,} rows x ({len(NUMERIC)} numeric with {MISSING:.0%} missing + "
            f"{len(LEVELS)} categorical of {', '.join(map(str, LEVELS))} levels, Zipf {ZIPF}); CSV "
            f"{training['csv_bytes'] / 1e6:.0f} MB; {q['output_columns']:,} encoded columns; each run in a fresh "
            f"process, {args.repeats} interleaved repeats, medians",
            "",
            text_table(TRAIN_HEADER, training_rows(training, args.repeats)),
            "",
            "- ours: open_files + read_training_table + train_and_store (validation_fraction=0, default params: "
            "lbfgs, C=1, tol 2e-8; default encoding). scikit-learn: pandas.read_csv(engine='pyarrow') + "
            f"ColumnTransformer(median imputer + StandardScaler, OneHotEncoder(handle_unknown='ignore')) + "
            f"LogisticRegression(lbfgs, C=1, tol=1e-4 default, max_iter={SK_MAX_ITER}).",
            "- objective: mean log-loss + ||coef||^2 / (2 C n) on scikit-learn's encoded training matrix for both "
            "(our coefficients mapped to its columns by name); gap = (ours - sklearn) / |sklearn|, negative: ours "
            f"is closer to the optimum. Our encoded matrix differs from scikit-learn's by at most "
            f"{q['encoding_max_diff']:.1e}.",
            "- stopped at sklearn's objective: the first of our iterations at or below scikit-learn's final "
            "objective (from the stored loss history), and our median time had the fit stopped there (an estimate: "
            "our iterations cost alike); not what the target is judged on.",
            f"- held-out: {HOLDOUT_ROWS:,} new rows of the same generator (levels unseen in training: all zeros on "
            "both sides).",
            "- each run in a fresh process after its imports and a warm-up run on the held-out file (untimed); "
            "peak RSS: ru_maxrss of that process minus its VmRSS before the timed run. CPU time: the process's "
            "user + system time over the run (all its threads), steadier than wall time when other processes "
            "compete for the cores.",
            "- runs, wall s (1-min load average after each): " + "; ".join(
                f"{side} " + ", ".join(f"{r['seconds']:.2f} ({r['load_after']})" for r in runs)
                for side, runs in training["runs"].items()) + ".",
        ]
    if serving is not None:
        lines += [
            "",
            f"2. Serving: POST /predict_proba, uvicorn --workers 1 on loopback, {args.batch_rows}-row bodies, "
            f"{args.connections} connections, {args.duration:g} s runs after a {args.warmup:g} s warm-up, "
            f"medians of {args.rounds} alternating rounds; models trained over HTTP on {args.serve_rows:,} rows",
            f"generator: {serving['generator']}",
            "",
            text_table(SERVE_HEADER, serving_rows(serving, args.batch_rows, args.connections)),
            "",
            f"- numeric: {len(SERVE_NUMERIC)} complete numeric columns, rows of numbers (`features`). mixed: "
            f"{len(NUMERIC)} numeric ({MISSING:.0%} null) + {len(LEVELS)} text categorical columns, objects by "
            "column name (`records`). ratio: median of the per-round ratios (range in brackets). Rows per server "
            "CPU-second (the server process's user + system time during the run): the cost to the server, "
            "steadier than rows/s when the generator or other processes take CPU from it; not what the target "
            "is judged on.",
        ]
        slow = [n for n, s in serving["summary"].items() if s.server_cpu is not None and s.server_cpu < 0.8]
        if slow:
            lines.append(f"- WARNING: the server kept less than 80% of a core busy for {', '.join(slow)}: the load "
                         "generator or other processes were the limit there, not the server.")
    if args.markdown:
        lines += ["", "Markdown (README):"]
        if training is not None:
            lines += ["", markdown_table(TRAIN_HEADER, training_rows(training, args.repeats))]
        if serving is not None:
            lines += ["", markdown_table(SERVE_HEADER, serving_rows(serving, args.batch_rows, args.connections))]
        lines += ["", f"_{m['cpu']}, {m['cores']} cores, {m['date_utc']}; BLAS/OpenMP 1 thread. "
                  "`.venv/bin/python benchmarks/mixed.py`_"]
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    import serve

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", choices=("train", "serve"), default=None, help="run one part only (default both)")
    p.add_argument("--rows", type=int, default=500_000, help="rows of the training table (500 000)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each side, interleaved; medians (3)")
    p.add_argument("--serve-rows", type=int, default=20_000, help="rows the served models are trained on (20 000)")
    p.add_argument("--batch-rows", type=int, default=1000, help="rows per /predict_proba body (1000)")
    p.add_argument("--connections", type=int, default=4, help="concurrent connections of the load (4)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds of each timed load run (5)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of the discarded warm-up before each run (1)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of (numeric, mixed) load runs; medians (3)")
    p.add_argument("--generator", choices=serve.GENERATORS, default="auto",
                   help="load generator: wrk if on PATH (auto), else an asyncio socket loop; or an httpx loop")
    p.add_argument("--keep", type=Path, default=None, metavar="DIR", help="generate into DIR and keep it")
    p.add_argument("--markdown", action="store_true", help="also print README-ready markdown tables")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the raw numbers to PATH")
    args = p.parse_args(argv)
    if min(args.rows, args.repeats, args.serve_rows, args.batch_rows, args.connections, args.rounds) < 1:
        p.error("--rows, --repeats, --serve-rows, --batch-rows, --connections and --rounds must be >= 1")
    if args.duration <= 0 or args.warmup < 0:
        p.error("--duration must be > 0 and --warmup >= 0")
    return args


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that stops the server


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:  # one measured run of part 1, started by measure()
        side, csv_path, warmup_path, out = argv[1], Path(argv[2]), Path(argv[3]), Path(argv[4])
        print(json.dumps(worker(side, csv_path, warmup_path, out)))
        return 0
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    start = time.perf_counter()
    machine = machine_info()
    training = serving = None
    try:
        with tempfile.TemporaryDirectory(prefix="logreg-mixed-") as tmp:
            folder = args.keep or Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            if args.only in (None, "train"):
                training = run_training(args, folder)
            if args.only in (None, "serve"):
                serving = run_serving(args, Path(tmp))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    machine["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    total = time.perf_counter() - start
    print(report(args, machine, training, serving, total))
    if args.json is not None:
        payload = {
            "machine": machine,
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "targets": {"train_ratio_max": TRAIN_TARGET, "serve_ratio_min": SERVE_TARGET},
            "training": training,
            "serving": None if serving is None else {
                **{k: v for k, v in serving.items() if k != "summary"},
                "summary": {k: dataclasses.asdict(v) for k, v in serving["summary"].items()},
            },
            "total_runtime_s": total,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"raw numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
