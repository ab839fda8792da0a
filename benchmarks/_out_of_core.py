"""The out-of-core half of ``benchmarks/scale.py``: training a table several times the memory budget.

What it measures, on generated data (a seeded ``rows x 50`` float64 table with a binary label from a known
logit, written once as Parquet in row groups of 131 072 rows):

- the time to read the file once (pyarrow, batch by batch, nothing kept), for scale;
- ``logreg``'s training of the whole table with ``LOGREG_TRAIN_MEMORY_BYTES`` = ``--budget`` (1 GiB): the
  matrix goes to a scratch file and the solver reads it from there: wall time, passes over the data (one
  per objective evaluation), time per pass, and the peak of the process's anonymous memory (``RssAnon``,
  sampled every 20 ms; file-backed pages of the scratch matrix are not anonymous) against the target of
  budget + 256 MiB;
- the optimum: the same training, in memory and out of core, of a ``--slice``-row part of the table
  (2 000 000 by default), and the gap between their objectives (target: within 1e-6).

Each training runs in a fresh process (so its memory is its own), with BLAS at one thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
D = 50
ROW_GROUP = 131_072  # rows per Parquet row group: pyarrow decodes one whole while reading it


def write_table(path: Path, rows: int, seed: int = 0) -> None:
    """The seeded table as Parquet, written a row group at a time (never whole in memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    w = rng.normal(size=D) / np.sqrt(D) * 2
    schema = pa.schema([*(pa.field(f"x{j}", pa.float64()) for j in range(D)), pa.field("y", pa.int64())])
    with pq.ParquetWriter(path, schema, compression="none") as writer:
        for start in range(0, rows, ROW_GROUP):
            k = min(ROW_GROUP, rows - start)
            X = rng.normal(size=(k, D))
            y = (rng.random(k) < 1 / (1 + np.exp(-(X @ w)))).astype(np.int64)
            writer.write_table(pa.table({**{f"x{j}": X[:, j] for j in range(D)}, "y": y}, schema=schema))


def read_once(path: Path) -> float:
    """Seconds to read the file once, batch by batch."""
    import pyarrow.parquet as pq

    start = time.perf_counter()
    with pq.ParquetFile(path) as f:
        for _ in f.iter_batches(batch_size=65_536):
            pass
    return time.perf_counter() - start


_CHILD = r"""
import json, os, sys, tempfile, threading, time
from pathlib import Path
path, budget, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon"):
            return int(line.split()[1]) * 1024
from service.data.sources import open_files
from service.services.training import TrainingProgress, read_training_table, train_and_store
from service.store.registry import ModelRegistry
from service.engine import _loss
evaluations = [0]
original = _loss.LinearLoss.value
def counted(self, w, Z):
    evaluations[0] += 1
    return original(self, w, Z)
_loss.LinearLoss.value = counted
base = anon(); peak = [base]; stop = [False]
def watch():
    while not stop[0]:
        peak[0] = max(peak[0], anon()); time.sleep(0.02)
threading.Thread(target=watch, daemon=True).start()
files = open_files(path, "parquet", roots=None)
scratch = Path(tempfile.mkdtemp(prefix="ooc-scratch-"))
start = time.perf_counter()
data = read_training_table(files, "y", None, None, TrainingProgress(), None, budget, scratch)
import pyarrow as pa
pa.default_memory_pool().release_unused()  # what pyarrow's allocator kept from the read batches
read_done = time.perf_counter()
read_peak = peak[0]; peak[0] = anon()
X, y = data.X, data.y
if rows < X.shape[0]:
    X, y = X[:rows], y[:rows]
report = train_and_store(ModelRegistry(tempfile.mkdtemp()), "m", X, y, params={"solver": "lbfgs", "tol": 1e-10},
                         validation_fraction=0)
end = time.perf_counter()
data.close()
stop[0] = True
left = [p for p in scratch.iterdir()]
print(json.dumps({"read_seconds": read_done - start, "fit_seconds": end - read_done, "total_seconds": end - start,
                  "on_disk": isinstance(data.X, __import__("numpy").memmap),
                  "peak_anon": max(peak[0], read_peak) - base,
                  "read_peak_anon": read_peak - base, "fit_peak_anon": peak[0] - base,
                  "base_anon": base, "evaluations": evaluations[0], "n_iter": report["n_iter"],
                  "objective": report["loss_history"][-1], "rows": int(X.shape[0]), "scratch_left": len(left)}))
"""


def train_in_child(path: Path, budget: int, rows: int) -> dict[str, Any]:
    """One training in a fresh process, BLAS at one thread; its measurements."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(budget), str(rows)], env=env,
                         capture_output=True, text=True, check=True, timeout=7200)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(rows: int, slice_rows: int, budget: int, workdir: Path | None = None) -> dict[str, Any]:
    """Write the table, read it once, train it out of core, and compare a slice in memory and out of core."""
    folder = Path(workdir or tempfile.mkdtemp(prefix="ooc-bench-"))
    path = folder / f"table-{rows}.parquet"
    if not path.exists():
        write_table(path, rows)
    read_seconds = read_once(path)
    full = train_in_child(path, budget, rows)
    in_memory = train_in_child(path, 1 << 62, slice_rows)
    out_of_core = train_in_child(path, budget, slice_rows)
    gap = (out_of_core["objective"] - in_memory["objective"]) / abs(in_memory["objective"])
    return {"rows": rows, "features": D, "matrix_bytes": rows * D * 8, "file_bytes": path.stat().st_size,
            "budget": budget, "read_once_seconds": read_seconds, "full": full, "slice_in_memory": in_memory,
            "slice_out_of_core": out_of_core, "slice_gap": gap}


def report(result: dict[str, Any]) -> list[str]:
    """The result as the lines of a table, with the targets."""
    mib = 2.0**20
    full, budget = result["full"], result["budget"]
    per_pass = full["fit_seconds"] / max(1, full["evaluations"])
    target_mem = budget + 256 * mib
    lines = [
        f"out of core: {result['rows']:,} x {result['features']} float64 = {result['matrix_bytes'] / 2**30:.1f} GiB "
        f"(Parquet {result['file_bytes'] / 2**30:.1f} GiB), budget {budget / mib:.0f} MiB",
        "",
        "| | value | target |",
        "|---|---:|---|",
        f"| read the file once (s) | {result['read_once_seconds']:.1f} | |",
        f"| logreg train: read into the scratch matrix (s) | {full['read_seconds']:.1f} | |",
        f"| logreg train: fit, evaluate, store (s) | {full['fit_seconds']:.1f} | |",
        f"| L-BFGS iterations / objective evaluations (passes) | {full['n_iter']} / {full['evaluations']} | |",
        f"| time per pass over the data (s) | {per_pass:.2f} ({per_pass / result['read_once_seconds']:.2f}x a read) "
        "| |",
        f"| peak anonymous memory while reading / fitting (MiB) | {full['read_peak_anon'] / mib:.0f} / "
        f"{full['fit_peak_anon'] / mib:.0f} | |",
        f"| peak anonymous memory above the start (MiB) | {full['peak_anon'] / mib:.0f} | <= "
        f"{target_mem / mib:.0f} {'PASS' if full['peak_anon'] <= target_mem else 'MISS'} |",
        f"| matrix on disk, scratch file removed after | {full['on_disk']}, {full['scratch_left'] == 0} | |",
        f"| objective gap, {result['slice_in_memory']['rows']:,}-row slice out of core vs in memory | "
        f"{result['slice_gap']:.1e} | <= 1e-6 {'PASS' if abs(result['slice_gap']) <= 1e-6 else 'MISS'} |",
    ]
    return lines
