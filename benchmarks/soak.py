"""Soak benchmark: a real server under mixed predict / metrics / train load for a minute; errors and memory.

The issue's requirement: "60 s of mixed predict/train/metrics load; no errors, and resident memory at the
end within 10% of the memory after warm-up". What this script does, in one go:

1. starts ``python -m service serve`` (the entry point of ``make run``) on 127.0.0.1, a free port and a
   temporary registry, with ``--log-level warning`` (no access-log line per request) and the Prometheus
   multi-process directory inside the same temporary directory; the caller's ``LOGREG_*`` variables are
   dropped so every other setting is the default (cache of 16 loaded versions per process, at most 2
   trainings at once). The server runs in its own session and is stopped by its PID (SIGTERM to its
   process group, SIGKILL after 15 s) in a ``finally`` block, whatever happens;
2. trains what the load needs through the API: ``soak-binary`` (the 569-row breast-cancer CSV, 30 features,
   string labels) and ``soak-multi`` (600 synthetic rows, 6 features, 3 classes), and points their
   ``production`` alias at version 1;
3. runs ``--clients`` threads, each with its own keep-alive ``httpx.Client``, drawing every request at random
   from the same mix: 39.5% ``POST /predict_proba`` and 39.5% ``POST /predict`` (1-row or 100-row bodies,
   half by ``features`` and half by ``records``, 70% on the binary model; 5% name an explicit recent version
   instead of the ``production`` alias, so the registry's LRU cache loads and evicts), 10% ``POST /metrics``
   (100 labelled rows), 10% ``POST /train`` (300 rows drawn from the model's data set, 201 = a new version
   on disk) and 1% alias moves (``PUT /models/{name}/aliases/production`` to one of the last 10 versions);
   at most 2 trainings are in flight at once (a client-side semaphore matching the server's default
   ``LOGREG_MAX_CONCURRENT_TRAININGS``), so a 429 is not expected; any 429 from ``/train`` is still counted
   apart, as documented back-pressure, not as an error;
4. first a warm-up of ``--warmup`` seconds, then the soak of ``--duration`` seconds; each phase is bounded by
   its time and by ``--max-requests``; after each phase the load stops, the script waits ``--settle``
   seconds, and reads the server's resident memory: the sum of ``VmRSS`` from ``/proc/<pid>/status`` over
   the server process and all its descendants (found through ``/proc/<pid>/task/*/children``; uvicorn
   workers when ``--workers`` > 1). These two quiet readings are "after warm-up" and "end"; the memory is
   also sampled every second during the load for the maximum and the timeline;
5. prints requests, errors, 429s, requests/s, p50/p99/max latency per request type, the memory figures and
   the end/after-warm-up ratio, a timeline, what the server reports about its model cache, the registry on
   disk, and PASS/MISS for "no errors" (none in warm-up or soak: any non-2xx answer but a 429 from
   ``/train``, any wrong-shaped answer, any exception) and for "end RSS within 10% of after-warm-up RSS".

Every training stores a new version on disk (tens per second here) and the server keeps up to 16 loaded
versions per process: that is real behaviour the soak exercises, not something to tune away.

Latencies are measured in the client around each request (send to last byte read). Client and server share
the machine's cores and the client threads share one GIL, so latencies include some client-side queueing
and the throughput is lower than from a dedicated load machine.

Run it from the repository root with::

    .venv/bin/python benchmarks/soak.py                          # 10 s warm-up, 60 s soak, 1 worker, 8 clients
    .venv/bin/python benchmarks/soak.py --markdown               # also README-ready markdown
    .venv/bin/python benchmarks/soak.py --duration 300 --workers 2 --json soak.json

The exit code is 0 whether the checks pass or not (this is a benchmark, not a test); failures are printed
as MISS with the reasons. It is 1 only when the server cannot be started or set up.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import datetime as dt
import importlib.metadata
import json
import os
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from _common import cpu_model, free_port, log_tail, service_revision  # benchmarks/ is the script's folder

ROOT = Path(__file__).resolve().parent.parent
CSV_PATH = ROOT / "examples" / "breast_cancer.csv"
TARGET_COLUMN = "diagnosis"
HOST = "127.0.0.1"
BINARY = "soak-binary"
MULTI = "soak-multi"
RSS_TOLERANCE = 0.10  # the issue: end RSS within 10% of the RSS after warm-up
MAX_TRAININGS = 2  # the server's default LOGREG_MAX_CONCURRENT_TRAININGS
TRAIN_ROWS = 300
BATCH_ROWS = 100
BODIES_PER_KIND = 16  # pre-built bodies per (model, rows, form), cycled at random
ALIAS_CHOICES = 10  # alias moves pick one of the last N versions of the model
EXPLICIT_VERSION_SHARE = 0.05  # predictions naming a recent version instead of the production alias
EXPLICIT_VERSION_CHOICES = 40  # ... one of the last N versions (more than the 16 the server caches)
BINARY_SHARE = 0.7
KIB = 1024
MIB = 2.0**20
JSON_HEADERS = {"content-type": "application/json"}

#: The request mix: (operation, weight).
MIX: tuple[tuple[str, float], ...] = (
    ("predict_proba", 0.395),
    ("predict", 0.395),
    ("metrics", 0.10),
    ("train", 0.10),
    ("alias", 0.01),
)
#: Row order of the tables: request type labels.
LABELS = (
    "predict_proba 1-row",
    "predict_proba 100-row",
    "predict 1-row",
    "predict 100-row",
    f"metrics {BATCH_ROWS}-row",
    f"train {TRAIN_ROWS}-row",
    "alias move",
)


class SoakError(RuntimeError):
    """The soak cannot run: the server does not start or the setup requests fail."""


# -- data ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Dataset:
    model: str
    X: np.ndarray
    y: list[str]
    feature_names: list[str]

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.y))


def breast_cancer() -> Dataset:
    """The 569 x 30 breast-cancer CSV with its string labels (benign, malignant)."""
    header = CSV_PATH.read_text().splitlines()[0].split(",")
    data = np.genfromtxt(CSV_PATH, delimiter=",", skip_header=1, dtype=str)
    t = header.index(TARGET_COLUMN)
    keep = [i for i in range(len(header)) if i != t]
    return Dataset(BINARY, data[:, keep].astype(np.float64), data[:, t].tolist(), [header[i] for i in keep])


def three_blobs(n_per_class: int = 200, n_features: int = 6, seed: int = 7) -> Dataset:
    """Three overlapping Gaussian blobs with string labels: a small multiclass problem."""
    rng = np.random.default_rng(seed)
    names = ["red", "green", "blue"]
    centers = rng.normal(0.0, 1.5, size=(len(names), n_features))
    X = np.vstack([c + rng.normal(0.0, 1.0, size=(n_per_class, n_features)) for c in centers])
    y = [name for name in names for _ in range(n_per_class)]
    return Dataset(MULTI, X, y, [f"f{i}" for i in range(n_features)])


def rows_body(ds: Dataset, index: np.ndarray, form: str) -> dict[str, Any]:
    """``{"features": rows}`` or ``{"records": [{name: value}, ...]}`` for the rows at ``index``."""
    rows = ds.X[index].tolist()
    if form == "features":
        return {"features": rows}
    return {"records": [dict(zip(ds.feature_names, row, strict=True)) for row in rows]}


# -- the server and its memory ------------------------------------------------------------------------
@dataclasses.dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path
    store: Path
    prometheus_dir: Path

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)


def start_server(workdir: Path, workers: int, timeout: float = 60.0) -> Server:
    """``python -m service serve`` in its own session on a free port; returned once /healthz answers 200."""
    port = free_port(HOST)
    store, prom, log_path = workdir / "model_store", workdir / "prometheus", workdir / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGREG_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["LOGREG_PROMETHEUS_DIR"] = str(prom)
    cmd = [sys.executable, "-m", "service", "serve", "--host", HOST, "--port", str(port), "--workers", str(workers),
           "--store", str(store), "--log-level", "warning"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = Server(proc, f"http://{HOST}:{port}", log_path, store, prom)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SoakError(f"the server exited with code {proc.returncode}:\n{server.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(server.url + "/healthz", timeout=1.0, trust_env=False).status_code == 200:
                    if workers > 1:
                        wait_for_workers(server, workers, deadline)
                    return server
            time.sleep(0.1)
        raise SoakError(f"the server did not answer /healthz within {timeout:.0f} s:\n{server.log_tail()}")
    except BaseException:
        stop_server(server)
        raise


def wait_for_workers(server: Server, workers: int, deadline: float) -> None:
    """With several workers, wait until that many child processes exist (they start one after the other)."""
    while time.monotonic() < deadline and len(descendants(server.proc.pid)) < workers:
        time.sleep(0.1)
    time.sleep(1.0)  # let the last ones finish importing before the load starts


def stop_server(server: Server, timeout: float = 15.0) -> None:
    """SIGTERM to the server's process group (its session: the server and any workers), SIGKILL if needed."""
    if server.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.proc.pid, signal.SIGTERM)
        try:
            server.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=timeout)
    else:  # the server itself is gone; make sure no worker of its group outlives it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.proc.pid, signal.SIGKILL)


def children(pid: int) -> list[int]:
    """Direct children of ``pid``: ``/proc/<pid>/task/*/children``, or a scan of ``/proc/*/stat`` without it."""
    tasks = Path(f"/proc/{pid}/task")
    found: list[int] = []
    try:
        files = list(tasks.glob("*/children"))
    except OSError:
        return []
    if files:
        for f in files:
            with contextlib.suppress(OSError, ValueError):
                found += [int(p) for p in f.read_text().split()]
        return found
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = children(pid)
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


STATUS_FIELDS = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file", "RssShmem": "shmem", "Threads": "threads"}


@dataclasses.dataclass
class MemorySample:
    """Memory of the server's process tree at one moment; sizes in KiB, summed over the processes."""

    t: float  # seconds since the warm-up started
    phase: str
    rss: int = 0
    anon: int = 0
    file: int = 0
    shmem: int = 0
    threads: int = 0
    processes: int = 0

    @property
    def rss_mib(self) -> float:
        return self.rss * KIB / MIB


def read_memory(pid: int, t: float, phase: str) -> MemorySample:
    """Sum of VmRSS (and RssAnon, RssFile, RssShmem, Threads) of ``pid`` and its descendants."""
    sample = MemorySample(t, phase)
    for p in [pid, *descendants(pid)]:
        try:
            text = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue  # exited meanwhile
        sample.processes += 1
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in STATUS_FIELDS:
                attr = STATUS_FIELDS[key]
                setattr(sample, attr, getattr(sample, attr) + int(value.split()[0]))
    return sample


class MemorySampler:
    """A thread reading the server's memory every ``interval`` seconds, tagged with the current phase."""

    def __init__(self, pid: int, t0: float, interval: float = 1.0) -> None:
        self.pid = pid
        self.t0 = t0
        self.interval = interval
        self.phase = "setup"
        self.samples: list[MemorySample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def now(self, phase: str | None = None) -> MemorySample:
        sample = read_memory(self.pid, time.monotonic() - self.t0, phase or self.phase)
        self.samples.append(sample)
        return sample

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.now()

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- the load -----------------------------------------------------------------------------------------
class Recorder:
    """Per request type: latencies of successful requests, counts of errors and of 429 back-pressure."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.latencies: dict[str, list[float]] = collections.defaultdict(list)
        self.errors: collections.Counter[str] = collections.Counter()
        self.backpressure: collections.Counter[str] = collections.Counter()
        self.error_samples: list[str] = []
        self.requests = 0
        self.seconds = 0.0

    def ok(self, label: str, seconds: float) -> None:
        with self._lock:
            self.latencies[label].append(seconds)

    def busy(self, label: str) -> None:
        with self._lock:
            self.backpressure[label] += 1

    def error(self, label: str, message: str) -> None:
        with self._lock:
            self.errors[label] += 1
            if len(self.error_samples) < 20:
                self.error_samples.append(f"{label}: {message}")

    def count(self, label: str) -> int:
        return len(self.latencies.get(label, [])) + self.errors[label] + self.backpressure[label]

    @property
    def total_errors(self) -> int:
        return sum(self.errors.values())


class Budget:
    """At most ``n`` requests in a phase, shared by the client threads."""

    def __init__(self, n: int) -> None:
        self._left = n
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True


@dataclasses.dataclass
class ModelLoad:
    """What the clients send to one model, and the versions it has (appended as trainings succeed)."""

    data: Dataset
    predict_bodies: dict[tuple[int, str], list[dict[str, Any]]]
    metrics_bodies: list[dict[str, Any]]
    train_bodies: list[dict[str, Any]]
    versions: list[int]


def build_load(ds: Dataset, rng: np.random.Generator) -> ModelLoad:
    """Pre-built request bodies (rows drawn at random) so the clients spend little CPU building them."""
    n = ds.X.shape[0]
    predict: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for rows in (1, BATCH_ROWS):
        for form in ("features", "records"):
            predict[rows, form] = [{"model": ds.model, **rows_body(ds, rng.choice(n, rows, replace=False), form)}
                                   for _ in range(BODIES_PER_KIND)]
    metrics = []
    for i in range(BODIES_PER_KIND):
        index = rng.choice(n, BATCH_ROWS, replace=False)
        form = "features" if i % 2 == 0 else "records"
        metrics.append({"model": ds.model, **rows_body(ds, index, form), "labels": [ds.y[j] for j in index]})
    train = []
    params = [{}, {"C": 0.1}, {"C": 10.0}, {"solver": "newton"}, {"penalty": "l1", "solver": "proximal", "C": 1.0}]
    for i in range(BODIES_PER_KIND):
        index = rng.choice(n, TRAIN_ROWS, replace=False)
        form = "features" if i % 2 == 0 else "records"
        train.append({
            "model": ds.model, **rows_body(ds, index, form), "labels": [ds.y[j] for j in index],
            "feature_names": ds.feature_names, "params": params[i % len(params)], "validation_fraction": 0.2,
            "description": "soak", "tags": {"source": "benchmarks/soak.py"},
        })
    return ModelLoad(ds, predict, metrics, train, versions=[])


class Workload:
    """The request mix against one server; one instance shared by every client thread."""

    def __init__(self, loads: dict[str, ModelLoad]) -> None:
        self.loads = loads
        self.train_slots = threading.BoundedSemaphore(MAX_TRAININGS)
        self._lock = threading.Lock()
        self.ops = [op for op, _ in MIX]
        self.weights = [w for _, w in MIX]

    def recent(self, load: ModelLoad, n: int) -> list[int]:
        with self._lock:
            return load.versions[-n:]

    def one_request(self, client: httpx.Client, rng: random.Random, rec: Recorder, deadline: float) -> None:
        op = rng.choices(self.ops, self.weights)[0]
        load = self.loads[BINARY if rng.random() < BINARY_SHARE else MULTI]
        if op in ("predict_proba", "predict"):
            rows = rng.choice((1, BATCH_ROWS))
            body = rng.choice(load.predict_bodies[rows, rng.choice(("features", "records"))])
            if rng.random() < EXPLICIT_VERSION_SHARE:
                body = {**body, "version": rng.choice(self.recent(load, EXPLICIT_VERSION_CHOICES))}
            self._call(client, rec, f"{op} {rows}-row", "POST", f"/{op}", body,
                       lambda r, rows=rows, op=op: self._check_scores(r, op, rows, load))
        elif op == "metrics":
            body = rng.choice(load.metrics_bodies)
            self._call(client, rec, f"metrics {BATCH_ROWS}-row", "POST", "/metrics", body,
                       lambda r: "accuracy" in r and r.get("model") == load.data.model)
        elif op == "train":
            if not self.train_slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                return  # the phase ended while waiting for a training slot; nothing was sent
            try:
                self._call(client, rec, f"train {TRAIN_ROWS}-row", "POST", "/train", rng.choice(load.train_bodies),
                           lambda r: self._check_train(r, load), expect=201, backpressure=429)
            finally:
                self.train_slots.release()
        else:
            version = rng.choice(self.recent(load, ALIAS_CHOICES))
            self._call(client, rec, "alias move", "PUT", f"/models/{load.data.model}/aliases/production",
                       {"version": version}, lambda r: r.get("version") == version)

    @staticmethod
    def _check_scores(r: dict[str, Any], op: str, rows: int, load: ModelLoad) -> bool:
        key = "probabilities" if op == "predict_proba" else "predictions"
        return r.get("model") == load.data.model and len(r.get(key, ())) == rows

    def _check_train(self, r: dict[str, Any], load: ModelLoad) -> bool:
        version = r.get("version")
        if not isinstance(version, int) or r.get("model") != load.data.model:
            return False
        with self._lock:
            load.versions.append(version)
        return True

    @staticmethod
    def _call(client: httpx.Client, rec: Recorder, label: str, method: str, path: str, body: dict[str, Any],
              check: Callable[[dict[str, Any]], bool], expect: int = 200, backpressure: int | None = None) -> None:
        content = orjson.dumps(body)
        start = time.perf_counter()
        try:
            response = client.request(method, path, content=content, headers=JSON_HEADERS)
        except httpx.HTTPError as exc:
            rec.error(label, f"{type(exc).__name__}: {exc}")
            return
        elapsed = time.perf_counter() - start
        if response.status_code == backpressure:
            rec.busy(label)
            return
        if response.status_code != expect:
            rec.error(label, f"{method} {path} answered {response.status_code}: {response.text[:300]}")
            return
        try:
            good = check(response.json())
        except ValueError as exc:
            rec.error(label, f"{method} {path}: the answer is not JSON: {exc}")
            return
        if not good:
            rec.error(label, f"{method} {path}: unexpected answer {response.text[:300]}")
            return
        rec.ok(label, elapsed)


def run_phase(workload: Workload, clients: list[httpx.Client], seconds: float, max_requests: int,
              seed: int) -> Recorder:
    """Every client thread sends requests back to back until ``seconds`` pass or the budget is spent."""
    rec = Recorder()
    budget = Budget(max_requests)
    start = time.monotonic()
    deadline = start + seconds

    def client_loop(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        while time.monotonic() < deadline and budget.take():
            try:
                workload.one_request(clients[i], rng, rec, deadline)
            except Exception as exc:  # a bug here must show up as an error, not silently end a client
                rec.error("client", f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=client_loop, args=(i,), name=f"client-{i}") for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec.seconds = time.monotonic() - start
    rec.requests = sum(rec.count(label) for label in {*rec.latencies, *rec.errors, *rec.backpressure})
    return rec


# -- setup and server-side diagnostics -----------------------------------------------------------------
def setup_models(url: str, loads: dict[str, ModelLoad]) -> None:
    """Train version 1 of each model on its whole data set and point ``production`` at it."""
    with httpx.Client(base_url=url, timeout=120.0, trust_env=False) as client:
        for name, load in loads.items():
            ds = load.data
            body = {"model": name, "features": ds.X.tolist(), "labels": ds.y, "feature_names": ds.feature_names}
            r = client.post("/train", content=orjson.dumps(body), headers=JSON_HEADERS)
            if r.status_code != 201:
                raise SoakError(f"training {name} answered {r.status_code}: {r.text[:500]}")
            version = r.json()["version"]
            r = client.put(f"/models/{name}/aliases/production", json={"version": version})
            if r.status_code != 200:
                raise SoakError(f"setting the production alias of {name} answered {r.status_code}: {r.text[:500]}")
            load.versions.append(version)


PROM_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def server_metrics(url: str) -> dict[str, Any]:
    """A few figures from ``GET /monitoring/metrics``: cache, trainings, and how many series it exports."""
    try:
        r = httpx.get(url + "/monitoring/metrics", timeout=30.0, trust_env=False)
    except httpx.HTTPError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    if r.status_code != 200:
        return {"error": f"answered {r.status_code}"}
    out: dict[str, Any] = {"exposition_bytes": len(r.content), "series": 0, "prediction_series": 0}
    sums: dict[str, float] = collections.defaultdict(float)
    for line in r.text.splitlines():
        m = PROM_LINE.match(line)
        if not m or line.startswith("#"):
            continue
        name, labels, value = m.groups()
        out["series"] += 1
        if name == "logreg_predictions_total":
            out["prediction_series"] += 1
        if name in ("logreg_models_loaded", "logreg_registry_loads_total", "logreg_registry_cache_hits_total"):
            sums[name] += float(value)
        if name == "logreg_trainings_total" and labels and 'outcome="succeeded"' in labels:
            sums["trainings_succeeded"] += float(value)
    out.update({k: int(v) for k, v in sums.items()})
    return out


def dir_stats(path: Path) -> dict[str, int]:
    files = size = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                size += os.lstat(os.path.join(dirpath, name)).st_size
                files += 1
    return {"files": files, "bytes": size}


def registry_stats(store: Path) -> dict[str, Any]:
    versions = {}
    for model in (BINARY, MULTI):
        with contextlib.suppress(OSError):
            versions[model] = sum(1 for p in (store / model).iterdir() if p.name.isdigit())
    return {"versions": versions, **dir_stats(store)}


# -- machine ------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    versions = {p: importlib.metadata.version(p) for p in ("fastapi", "uvicorn", "pydantic", "numpy", "httpx")}
    return {
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": f"{os.cpu_count()} logical, {usable} usable by this process",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": ", ".join(f"{k} {v}" for k, v in versions.items()),
        "load_average": " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "-",
        "service_revision": service_revision(),
    }


# -- results ------------------------------------------------------------------------------------------
@dataclasses.dataclass
class TypeStats:
    label: str
    requests: int
    ok: int
    errors: int
    backpressure: int
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


def type_stats(rec: Recorder) -> list[TypeStats]:
    out = []
    labels = [*LABELS, *sorted({*rec.latencies, *rec.errors, *rec.backpressure} - set(LABELS))]
    for label in labels:
        lat = np.asarray(rec.latencies.get(label, []), dtype=np.float64) * 1e3
        n = rec.count(label)
        if n == 0 and label not in LABELS:
            continue
        p50, p99 = (np.percentile(lat, [50, 99]).tolist() if lat.size else (None, None))
        out.append(TypeStats(label, n, int(lat.size), rec.errors[label], rec.backpressure[label],
                             n / rec.seconds if rec.seconds > 0 else 0.0, p50, p99,
                             float(lat.max()) if lat.size else None))
    all_lat = np.concatenate([np.asarray(v, dtype=np.float64) for v in rec.latencies.values()] or [np.zeros(0)]) * 1e3
    p50, p99 = (np.percentile(all_lat, [50, 99]).tolist() if all_lat.size else (None, None))
    out.append(TypeStats("all", rec.requests, int(all_lat.size), rec.total_errors, sum(rec.backpressure.values()),
                         rec.requests / rec.seconds if rec.seconds > 0 else 0.0, p50, p99,
                         float(all_lat.max()) if all_lat.size else None))
    return out


@dataclasses.dataclass
class MemoryResult:
    after_warmup: MemorySample
    end: MemorySample
    max_soak: MemorySample
    ratio: float
    slope_mib_per_min: float | None  # least-squares slope of RSS over the soak's 1 s samples
    first_half_mib_per_min: float | None
    second_half_mib_per_min: float | None

    @property
    def within(self) -> bool:
        return abs(self.ratio - 1.0) <= RSS_TOLERANCE


def slope(samples: list[MemorySample]) -> float | None:
    if len(samples) < 3:
        return None
    t = np.array([s.t for s in samples])
    rss = np.array([s.rss_mib for s in samples])
    return float(np.polyfit(t, rss, 1)[0] * 60.0)


def memory_result(samples: list[MemorySample], after_warmup: MemorySample, end: MemorySample) -> MemoryResult:
    soak = [s for s in samples if s.phase == "soak"]
    half = len(soak) // 2
    return MemoryResult(
        after_warmup=after_warmup,
        end=end,
        max_soak=max([*soak, end], key=lambda s: s.rss),
        ratio=end.rss / after_warmup.rss if after_warmup.rss else float("nan"),
        slope_mib_per_min=slope(soak),
        first_half_mib_per_min=slope(soak[:half]),
        second_half_mib_per_min=slope(soak[half:]),
    )


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} ms"


def fmt_mib(kib: int) -> str:
    return f"{kib * KIB / MIB:.1f} MiB"


def fmt_slope(v: float | None) -> str:
    return "-" if v is None else f"{v:+.2f} MiB/min"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


HEADERS = ["request type", "requests", "errors", "429s", "req/s", "p50", "p99", "max"]


def table_rows(stats: list[TypeStats]) -> list[list[str]]:
    return [[s.label, str(s.requests), str(s.errors), str(s.backpressure), f"{s.rps:.1f}", fmt_ms(s.p50_ms),
             fmt_ms(s.p99_ms), fmt_ms(s.max_ms)] for s in stats]


def plain_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    align = ["---", *("---:" for _ in headers[1:])]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in (headers, align, *rows))


def memory_rows(mem: MemoryResult) -> list[list[str]]:
    def row(name: str, s: MemorySample) -> list[str]:
        return [name, f"{s.t:.0f} s", fmt_mib(s.rss), fmt_mib(s.anon), fmt_mib(s.file), fmt_mib(s.shmem),
                str(s.threads), str(s.processes)]

    return [row("after warm-up (quiet)", mem.after_warmup), row("max during soak", mem.max_soak),
            row("end (quiet)", mem.end)]


MEMORY_HEADERS = ["reading", "at", "RSS", "anon", "file", "shmem", "threads", "processes"]


@dataclasses.dataclass
class SoakResult:
    machine: dict[str, Any]
    args: dict[str, Any]
    warmup: list[TypeStats]
    soak: list[TypeStats]
    memory: MemoryResult
    samples: list[MemorySample]
    error_samples: list[str]
    server_before: dict[str, Any]
    server_after: dict[str, Any]
    registry_before: dict[str, Any]
    registry_after: dict[str, Any]
    prometheus_dir: dict[str, int]
    server_alive: bool
    server_log_tail: str
    total_s: float

    @property
    def errors(self) -> int:
        return self.warmup[-1].errors + self.soak[-1].errors

    def checks(self) -> dict[str, bool]:
        return {"no_errors": self.errors == 0 and self.server_alive, "rss_within_10pct": self.memory.within}


def timeline(samples: list[MemorySample], every: int = 5) -> list[str]:
    out = []
    load = [s for s in samples if s.phase in ("warm-up", "soak")]
    for i, s in enumerate(load):
        if i % every == 0 or i == len(load) - 1:
            out.append(f"  {s.t:6.1f} s  {s.phase:8}  RSS {s.rss_mib:7.1f} MiB  anon {fmt_mib(s.anon):>10}  "
                       f"file {fmt_mib(s.file):>10}  shmem {fmt_mib(s.shmem):>9}  threads {s.threads}")
    return out


def report(r: SoakResult, markdown: bool) -> str:
    a = r.args
    mem = r.memory
    out = ["Soak: mixed predict / metrics / train load against one logreg-service server", ""]
    for key, value in r.machine.items():
        out.append(f"{key + ':':18}{value}")
    out.append(f"{'server:':18}python -m service serve --workers {a['workers']} (defaults: cache 16 versions per "
               f"process, {MAX_TRAININGS} trainings at once), 127.0.0.1, temporary registry")
    out.append(f"{'load:':18}{a['clients']} client threads (httpx, keep-alive), warm-up {a['warmup']:g} s, soak "
               f"{a['duration']:g} s, at most {a['max_requests']} requests per phase, memory read every 1 s")
    out.append(f"{'mix:':18}" + ", ".join(f"{op} {w:.1%}" for op, w in MIX)
               + f"; {BINARY_SHARE:.0%} on {BINARY} (30 features, 2 classes), the rest on {MULTI} "
               f"(6 features, 3 classes)")
    out += ["", f"Warm-up ({r.warmup[-1].requests} requests in {a['warmup']:g} s, {r.warmup[-1].errors} errors, "
            f"{r.warmup[-1].rps:.1f} req/s)", ""]
    out += [f"Soak ({r.soak[-1].requests} requests, {r.args['duration']:g} s):", ""]
    out.append(plain_table(HEADERS, table_rows(r.soak)))
    out += ["", "Server memory (sum over the server's process tree, from /proc/<pid>/status):", ""]
    out.append(plain_table(MEMORY_HEADERS, memory_rows(mem)))
    out.append("")
    out.append(f"end / after warm-up: {mem.ratio:.3f} ({(mem.ratio - 1) * 100:+.1f}%); RSS slope over the soak "
               f"{fmt_slope(mem.slope_mib_per_min)} (first half {fmt_slope(mem.first_half_mib_per_min)}, "
               f"second half {fmt_slope(mem.second_half_mib_per_min)})")
    out += ["", "Timeline (every 5th 1 s sample):", *timeline(r.samples)]
    out += ["", "Server side (GET /monitoring/metrics) and registry on disk, after warm-up -> end:"]
    b, e = r.server_before, r.server_after
    for key in ("logreg_models_loaded", "logreg_registry_loads_total", "logreg_registry_cache_hits_total",
                "trainings_succeeded", "prediction_series", "series", "exposition_bytes"):
        out.append(f"  {key:34}{b.get(key, '-')} -> {e.get(key, '-')}")
    rb, ra = r.registry_before, r.registry_after
    out.append(f"  {'versions on disk':34}{rb['versions']} -> {ra['versions']}")
    out.append(f"  {'registry files / bytes':34}{rb['files']} / {rb['bytes']} -> {ra['files']} / {ra['bytes']}")
    out.append(f"  {'prometheus dir files / bytes':34}{r.prometheus_dir['files']} / {r.prometheus_dir['bytes']}")
    out.append("  (logreg_predictions_total has one series per model, version and class in every worker, kept for the "
               "life of the process: each version predicted on adds series)")
    if "error" in e:
        out.append(f"  (scrape failed: {e['error']})")
    if r.error_samples:
        out += ["", "First errors:", *(f"  {m}" for m in r.error_samples)]
    if not r.server_alive:
        out += ["", "THE SERVER EXITED DURING THE RUN; last log lines:", r.server_log_tail]
    checks = r.checks()
    out += ["", "Checks:"]
    out.append(f"  no errors (warm-up + soak; 429 from /train is back-pressure, not an error): "
               f"{r.errors} errors, {r.warmup[-1].backpressure + r.soak[-1].backpressure} 429s -> "
               f"{verdict(checks['no_errors'])}")
    out.append(f"  end RSS within {RSS_TOLERANCE:.0%} of after-warm-up RSS: {fmt_mib(mem.end.rss)} vs "
               f"{fmt_mib(mem.after_warmup.rss)} = {mem.ratio:.3f} -> {verdict(checks['rss_within_10pct'])}")
    misses = [k for k, ok in checks.items() if not ok]
    out.append(f"FAILED: {', '.join(misses)}" if misses else "all checks passed")
    if markdown:
        out += ["", "Markdown (README):", ""]
        m = r.machine
        out.append(f"Measured {m['date_utc']} on {m['cpu']} ({m['cores']}), {m['platform']}, Python {m['python']}; "
                   f"one server with {a['workers']} worker(s) and {a['clients']} client threads on the same "
                   f"machine; {a['warmup']:g} s warm-up, then {a['duration']:g} s of the mix (predict_proba and "
                   f"predict 79%, 1-row and 100-row bodies; metrics 10%; train 10%, 300 rows each; alias moves 1%). "
                   "Latency is measured in the client.")
        out.append("")
        out.append(markdown_table(HEADERS, table_rows(r.soak)))
        out.append("")
        out.append(f"Server RSS: {fmt_mib(mem.after_warmup.rss)} after warm-up, {fmt_mib(mem.end.rss)} at the end "
                   f"({(mem.ratio - 1) * 100:+.1f}%, target within ±{RSS_TOLERANCE:.0%}: "
                   f"{verdict(checks['rss_within_10pct'])}), at most {fmt_mib(mem.max_soak.rss)}; errors: "
                   f"{r.errors} ({verdict(checks['no_errors'])}); "
                   f"{' + '.join(f'{n} {m}' for m, n in ra['versions'].items())} versions on disk at the end.")
    out += ["", f"total runtime: {r.total_s:.1f} s"]
    return "\n".join(out)


def to_json(r: SoakResult) -> dict[str, Any]:
    return {
        "machine": r.machine,
        "args": r.args,
        "mix": dict(MIX),
        "warmup": [dataclasses.asdict(s) for s in r.warmup],
        "soak": [dataclasses.asdict(s) for s in r.soak],
        "memory": {
            "after_warmup": dataclasses.asdict(r.memory.after_warmup),
            "end": dataclasses.asdict(r.memory.end),
            "max_soak": dataclasses.asdict(r.memory.max_soak),
            "ratio": r.memory.ratio,
            "slope_mib_per_min": r.memory.slope_mib_per_min,
            "first_half_mib_per_min": r.memory.first_half_mib_per_min,
            "second_half_mib_per_min": r.memory.second_half_mib_per_min,
            "samples_kib": [dataclasses.asdict(s) for s in r.samples],
        },
        "errors": r.errors,
        "error_samples": r.error_samples,
        "server_metrics": {"after_warmup": r.server_before, "end": r.server_after},
        "registry": {"after_warmup": r.registry_before, "end": r.registry_after},
        "checks": r.checks(),
        "total_runtime_s": r.total_s,
    }


# -- main ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of soak after warm-up (default 60)")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of the same mix first (default 10)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    parser.add_argument("--clients", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="cap per phase (default 1000000)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="quiet seconds before each of the two memory readings (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and of the request mix")
    parser.add_argument("--markdown", action="store_true", help="also print README-ready markdown")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the raw numbers as JSON to PATH")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.warmup < 0 or args.settle < 0:
        parser.error("--duration must be > 0, --warmup and --settle >= 0")
    if args.workers < 1 or args.clients < 1 or args.max_requests < 1:
        parser.error("--workers, --clients and --max-requests must be at least 1")
    return args


@contextlib.contextmanager
def http_clients(url: str, n: int) -> Iterator[list[httpx.Client]]:
    clients = [httpx.Client(base_url=url, timeout=60.0, trust_env=False) for _ in range(n)]
    try:
        yield clients
    finally:
        for c in clients:
            c.close()


def soak(args: argparse.Namespace, machine: dict[str, Any], workdir: Path, start: float) -> SoakResult:
    rng = np.random.default_rng(args.seed)
    loads = {BINARY: build_load(breast_cancer(), rng), MULTI: build_load(three_blobs(), rng)}
    print(f"[soak] starting the server ({args.workers} worker(s)) ...", file=sys.stderr, flush=True)
    server = start_server(workdir, args.workers)
    try:
        setup_models(server.url, loads)
        workload = Workload(loads)
        with http_clients(server.url, args.clients) as clients, \
                MemorySampler(server.proc.pid, time.monotonic()) as sampler:
            sampler.phase = "warm-up"
            print(f"[soak] warm-up {args.warmup:g} s ...", file=sys.stderr, flush=True)
            warm = run_phase(workload, clients, args.warmup, args.max_requests, args.seed + 1)
            sampler.phase = "settle"
            time.sleep(args.settle)
            after_warmup = sampler.now("after warm-up")
            server_before, registry_before = server_metrics(server.url), registry_stats(server.store)
            print(f"[soak] after warm-up: RSS {after_warmup.rss_mib:.1f} MiB; soak {args.duration:g} s ...",
                  file=sys.stderr, flush=True)
            sampler.phase = "soak"
            main = run_phase(workload, clients, args.duration, args.max_requests, args.seed + 2)
            sampler.phase = "settle"
            time.sleep(args.settle)
            end = sampler.now("end")
            alive = server.proc.poll() is None
            server_after, registry_after = server_metrics(server.url), registry_stats(server.store)
        print(f"[soak] end: RSS {end.rss_mib:.1f} MiB", file=sys.stderr, flush=True)
    finally:
        stop_server(server)
    return SoakResult(
        machine=machine,
        args={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        warmup=type_stats(warm),
        soak=type_stats(main),
        memory=memory_result(sampler.samples, after_warmup, end),
        samples=sampler.samples,
        error_samples=[*(f"warm-up {m}" for m in warm.error_samples), *(f"soak {m}" for m in main.error_samples)],
        server_before=server_before,
        server_after=server_after,
        registry_before=registry_before,
        registry_after=registry_after,
        prometheus_dir=dir_stats(server.prometheus_dir),
        server_alive=alive,
        server_log_tail=server.log_tail(),
        total_s=time.perf_counter() - start,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="logreg-soak-") as tmp:
        try:
            result = soak(args, machine, Path(tmp), start)
        except SoakError as exc:
            print(f"soak: {exc}", file=sys.stderr)
            return 1
    print(report(result, args.markdown))
    if args.json is not None:
        args.json.write_text(json.dumps(to_json(result), indent=2) + "\n")
        print(f"raw numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
