"""Benchmark: reading training data, ours (pyarrow, batches into the matrix) against pandas and numpy, and
``logreg train`` end to end.

What it does, in one go:

1. generates a 300 000 x 50 numeric table with a binary label (seeded), as CSV (values rounded to 4
   decimals, about 110 MB, like the file of the issue) and as its Parquet twin, in a temporary folder;
2. measures, each in a fresh Python process (so its peak memory is its own), interleaved over ``--rounds``
   rounds: our CSV reader (``read_table``), ``pandas.read_csv(engine="pyarrow")`` (the speed to beat),
   ``np.loadtxt``, our Parquet reader, and ``logreg train`` on the CSV end to end (``--quiet``, a new
   store). For each reader: the wall time of its first read in the fresh process, of a second read in the
   same process (as a long-running service reads: on this VM a fresh process pays about 3 s per GB just to
   touch new memory for the first time, ``first touch`` below), and the peak resident memory of the first
   read beyond what the process held after its imports (``ru_maxrss`` minus the resident size before the
   work), in multiples of the float64 matrix (120 MB);
3. prints the medians, the ratios and the targets (our CSV read <= 1.5x pandas' time, Parquet read <=
   0.25 s, both on the second read; peak memory of a CSV training <= 2.5x the matrix, ``logreg train`` on
   the CSV <= 2.5 s, a fresh process) as PASS/MISS, with the machine, the commit and the date.

Run it from the repository root: ``.venv/bin/python benchmarks/ingest.py`` (``--rows``, ``--rounds``,
``--keep DIR`` to keep the generated files). Every process uses the libraries' default thread pools.
The exit code is 0 whether the targets pass or not; 1 when a measured command fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, cpu_model, service_revision

FEATURES = 50

#: Each measured task: a Python snippet that does the work once, given ``CSV``, ``PARQUET`` and ``STORE``.
TASKS: dict[str, str] = {
    "ours, CSV": (
        "from service.data.sources import open_files\nfrom service.data.tables import read_table\n"
        "WORK = lambda: read_table(open_files(CSV, roots=None), target='y')"
    ),
    "pandas read_csv (pyarrow)": "import pandas as pd\nWORK = lambda: pd.read_csv(CSV, engine='pyarrow')",
    "np.loadtxt": "import numpy as np\nWORK = lambda: np.loadtxt(CSV, delimiter=',', skiprows=1)",
    "first touch of a new 120 MB matrix": "import numpy as np\nWORK = lambda: np.ones((300_000, 50))",
    "ours, Parquet": (
        "from service.data.sources import open_files\nfrom service.data.tables import read_table\n"
        "WORK = lambda: read_table(open_files(PARQUET, roots=None), target='y')"
    ),
}
#: The process that measures one task: imports first, then the resident size, then the timed work.
RUNNER = """
import json, resource, sys, time
CSV, PARQUET = sys.argv[1], sys.argv[2]
{setup}
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
before = rss()
start = time.perf_counter()
result = WORK()
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
del result
start = time.perf_counter()
WORK()
again = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "again": again, "extra_bytes": peak - before}}))
"""


def generate(folder: Path, rows: int) -> tuple[Path, Path]:
    """The CSV and Parquet files of a seeded table (made once; kept when ``folder`` is given again)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    csv_path, parquet_path = folder / f"table-{rows}.csv", folder / f"table-{rows}.parquet"
    if csv_path.exists() and parquet_path.exists():
        return csv_path, parquet_path
    rng = np.random.default_rng(0)
    X = np.round(rng.normal(size=(rows, FEATURES)), 4)
    w = rng.normal(size=FEATURES)
    y = (X @ w + rng.normal(size=rows) > 0).astype(np.int64)
    columns = {f"f{j}": X[:, j] for j in range(FEATURES)}
    table = pa.table({**columns, "y": y})
    pcsv.write_csv(table, csv_path)
    pq.write_table(table, parquet_path)
    return csv_path, parquet_path


def measure_snippet(setup: str, csv_path: Path, parquet_path: Path) -> dict[str, float]:
    code = RUNNER.format(setup=setup)
    done = subprocess.run([sys.executable, "-c", code, str(csv_path), str(parquet_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def measure_train(csv_path: Path, store: Path) -> dict[str, float]:
    """``logreg train`` on the CSV, end to end: wall time and peak memory beyond a bare start of the command."""
    command = [sys.executable, "-m", "service", "train", str(csv_path), "--target", "y", "--model", "bench",
               "--store", str(store), "--quiet"]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(process.stderr.read().decode()[-2000:] if process.stderr else "logreg train failed")
    baseline = subprocess.run(
        [sys.executable, "-c", "import resource, service.cli, service.data.tables, service.services.training;"
         "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=120,
    )
    return {"seconds": seconds, "extra_bytes": usage.ru_maxrss * 1024 - int(baseline.stdout.strip())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000, help="rows of the generated table (300 000)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each task; medians (3)")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR", help="generate into DIR and keep it")
    args = parser.parse_args(argv)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="logreg-ingest-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        csv_path, parquet_path = generate(folder, args.rows)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in [*TASKS, "logreg train (CSV)"]}
        for round_no in range(args.rounds):
            for name, setup in TASKS.items():
                results[name].append(measure_snippet(setup, csv_path, parquet_path))
                print(f"[ingest] round {round_no + 1}/{args.rounds} {name}: {results[name][-1]}", file=sys.stderr)
            store = Path(tmp) / f"store-{round_no}"
            results["logreg train (CSV)"].append(measure_train(csv_path, store))
            print(f"[ingest] round {round_no + 1}/{args.rounds} logreg train: {results['logreg train (CSV)'][-1]}",
                  file=sys.stderr)
        sizes = {"csv": csv_path.stat().st_size, "parquet": parquet_path.stat().st_size}
    print(report(results, args, sizes, time.monotonic() - began))
    return 0


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace, sizes: dict[str, int],
           total_s: float) -> str:
    matrix = args.rows * FEATURES * 8
    med = {name: {k: statistics.median(r.get(k, math.nan) for r in runs) for k in ("seconds", "again", "extra_bytes")}
           for name, runs in results.items()}
    lines = [
        f"Reading training data: {args.rows:,} x {FEATURES} numbers + a label; CSV {sizes['csv'] / 1e6:.0f} MB, "
        f"Parquet {sizes['parquet'] / 1e6:.0f} MB; float64 matrix {matrix / 1e6:.0f} MB",
        f"machine: {cpu_model()}, {os.cpu_count()} cores, {platform.platform()}; Python {platform.python_version()}",
        f"measured: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {service_revision()}, medians of {args.rounds} "
        f"rounds, each task in a fresh process (libraries' default threads); took {total_s:.0f} s",
        "",
        "| task | first, fresh process (s) | again, same process (s) | peak memory beyond the imports | "
        "x matrix |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, m in med.items():
        again = "" if math.isnan(m["again"]) else f"{m['again']:.2f}"
        lines.append(f"| {name} | {m['seconds']:.2f} | {again} | {m['extra_bytes'] / 1e6:,.0f} MB | "
                     f"{m['extra_bytes'] / matrix:.2f} |")
    ours, pandas = med["ours, CSV"]["again"], med["pandas read_csv (pyarrow)"]["again"]
    checks = [
        ("our CSV read / pandas read_csv(engine='pyarrow'), again", ours / pandas, 1.5, "x"),
        ("our Parquet read, again", med["ours, Parquet"]["again"], 0.25, " s"),
        ("peak memory of logreg train on the CSV / matrix", med["logreg train (CSV)"]["extra_bytes"] / matrix, 2.5,
         "x"),
        ("logreg train on the CSV, end to end", med["logreg train (CSV)"]["seconds"], 2.5, " s"),
    ]
    lines += ["", "| target | measured | limit | |", "|---|---:|---:|---|"]
    for label, value, limit, unit in checks:
        lines.append(f"| {label} | {value:.2f}{unit} | <= {limit}{unit} | {'PASS' if value <= limit else 'MISS'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
