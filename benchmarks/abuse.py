"""Benchmark: normal scoring traffic alone and beside abuse -- slow and abandoned requests, explain floods and
metadata reads -- with its p99 latency and the worker's peak memory against the hardening issue's targets.

Issue 16 ("Tests and figures"): "a run of slow and abandoned bodies, explain floods and metadata reads beside
normal traffic, printing the normal traffic's p99 latency and the worker's peak memory with and without the
abuse; targets: p99 within 2x, peak memory within the documented worst case". What this script does:

1. starts ``python -m service serve --workers 1`` (the entry point of ``make run``: uvicorn with the service's
   header-timeout protocol) on 127.0.0.1, a free port and a temporary registry, with ``--log-level warning``
   and every other ``LOGREG_*`` setting at its default (the caller's are dropped), in its own session; every
   server is stopped by its PID (SIGTERM to its process group, SIGKILL after 15 s) in a ``finally`` block;
2. trains ``bc`` (``examples/breast_cancer.csv``, 30 features, 2 classes; a multipart upload, as the demo) and
   ``wide`` (``--wide-features`` 20 000 features x 2 classes on ``--wide-rows`` 60 seeded Gaussian rows, from a
   JSON body, as a background job polled at ``/jobs/{id}``): the model the explain floods and metadata reads
   hit. Then it stops that server and starts a fresh one on the same registry, so that the training's memory is
   not part of the baseline; the worker measured is the process whose ``pid`` ``GET /healthz`` answers;
3. a warm-up of normal traffic (``--lead`` + 3 s, discarded), then ``--rounds`` rounds (2), each of two
   phases: (a) the normal traffic alone for ``--duration`` seconds (25); (b) the same normal traffic beside the
   abuse, which starts ``--lead`` seconds (2) before it and stops with it. Every phase is followed by
   ``--settle`` quiet seconds (3) and until ``/healthz`` answers within 50 ms, counted in its memory window (an
   explanation still running when its client left is still the phase's);
4. between the first phase (the baseline: normal traffic alone on a server that has seen nothing else) and the
   first abuse, the calibration: each kind of complete request the abuse sends, alone on the quiet server,
   twice: the rise of the worker's peak RSS over its RSS just before, for the first call (which loads the wide
   model and its metadata) and the second. The largest rise is the "largest single request" of the bound;
5. prints the machine, commit and date; the normal traffic alone and with abuse side by side (p50, p99, max,
   throughput, answers other than 200, the worker's CPU) with the ratios; the worker's peak RSS against the
   bound; what the abuse got (status codes, connections the server closed, connections still open when the
   phase ended); each phase; the calibration; PASS/MISS for the targets; with ``--markdown``, README-ready
   markdown.

The normal traffic (its own process, an asyncio loop on raw keep-alive sockets): ``POST /predict_proba`` on
``bc``, ``--rate`` 1-row bodies per second (40) and ``--batch-rate`` 100-row bodies per second (10) at a fixed
schedule over a pool of ``--connections`` (8) connections. The offered load is the same in both phases (an open
loop, not wrk's closed loop, which would measure capacity instead): each request's latency is measured from the
moment it was scheduled (waiting for a free connection counts, so a stalled server is not hidden) to the last
byte of its answer. Percentiles are over the 200 answers of all the phases of a kind, pooled over the rounds;
any other answer or a failed connection is counted apart.

The abuse (another process, asyncio on raw sockets; every loop ends at the phase's end and after
``--max-attempts`` attempts per connection):

- slowloris: ``--slowloris`` (32) connections each sending half a request header, then one byte every
  ``--slow-interval`` seconds (3) until the server answers or closes (LOGREG_HEADER_TIMEOUT_SECONDS); again;
- slow bodies: ``--slow-bodies`` (8) connections each sending complete headers of a 1 000-byte body, then one
  byte of it every ``--slow-interval`` seconds: never a pause of LOGREG_BODY_IDLE_SECONDS;
- stalled bodies: ``--stalled`` (8) connections each declaring a ``--stalled-mb`` (40) MB body, sending
  ``--stalled-fraction`` (0.9) of it, then stopping until the server answers (408 after LOGREG_BODY_IDLE_SECONDS;
  503 beyond LOGREG_MAX_OPEN_BODIES / LOGREG_MAX_BODY_BYTES_IN_FLIGHT) or closes; then, after 1 s (a 503's
  Retry-After), again;
- explain floods: ``--explain`` (2) connections posting ``/predict_proba?explain=true`` back to back with the
  largest body allowed on ``wide`` (MAX_EXPLAIN_VALUES // (features x 3) rows: 16 of 20 000 features), and
  ``--explain-over`` (1) connection alternating a body one row over that (MAX_EXPLAIN_VALUES) and
  MAX_EXPLAIN_ROWS + 1 rows on ``bc`` (MAX_EXPLAIN_ROWS): 413s expected;
- metadata reads: ``--metadata`` (1) connection looping ``GET /models/wide/versions/1`` (the model card) and
  as many looping ``GET /metrics?model=wide``.

Where the time goes: the worker's CPU (``/proc/<pid>/stat``) and, from ``/proc/<pid>/task/*/schedstat``, the
share of the time its event-loop (main) thread spent on a CPU and runnable but waiting for one, and the
machine's CPU pressure (``/proc/pressure/cpu``): a loop neither on a CPU nor waiting for one is idle or blocked,
e.g. on the GIL held by an explanation or a metadata parse in a worker thread.

Memory: the worker's ``VmHWM`` (peak RSS), reset at the start of every phase (and calibration request) by
writing 5 to ``/proc/<pid>/clear_refs`` and read at its end, and its ``VmRSS`` sampled every 50 ms (the peak is
the larger of the two; the samples alone where the reset is refused).

Targets: the normal traffic's p99 with abuse / alone <= 2.0, for each body size; and the worker's peak RSS with
abuse <= the documented worst case. The README's "Limits" says a worker holds at most
LOGREG_MAX_BODY_BYTES_IN_FLIGHT (200 MiB) of request bodies being received, and parses one body per request;
so the bound is: the peak of the first phase (normal traffic alone, before any abuse)
+ LOGREG_MAX_BODY_BYTES_IN_FLIGHT + the largest rise of one complete request of the abuse, measured alone in
step 4 (first or second call).

Client processes and server share the machine's cores (and whatever else runs there: the 1-minute load
average at start and end is printed), so the latencies include some scheduling noise of the machine.

Run it from the repository root with::

    .venv/bin/python benchmarks/abuse.py                       # 2 rounds of 25 s alone + 25 s with abuse, ~3 min
    .venv/bin/python benchmarks/abuse.py --markdown            # also README-ready markdown
    .venv/bin/python benchmarks/abuse.py --abuse explain       # one kind of abuse only, to see what it costs
    .venv/bin/python benchmarks/abuse.py --duration 60 --rounds 3 --json abuse.json

The exit code is 0 whether the targets pass or not (this is a benchmark, not a test); it is 1 only when the
server cannot be started or the models cannot be trained.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import importlib.metadata
import json
import multiprocessing
import os
import platform
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
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
BC, WIDE = "bc", "wide"
BATCH_ROWS = 100
P99_TARGET = 2.0  # the issue: the normal traffic's p99 with abuse within 2x of its p99 alone
MIB = 2.0**20
KIB = 1024
SAMPLE_EVERY = 0.05  # seconds between VmRSS samples
REQUEST_TIMEOUT = 60.0  # most seconds one request of the normal traffic or the floods may take
ABUSE_KINDS = ("slowloris", "slow-body", "stalled", "explain", "explain-over", "card", "metrics")
ABUSE_GROUPS = {"slowloris": ("slowloris", "slow-body"), "stalled": ("stalled",),
                "explain": ("explain", "explain-over"), "metadata": ("card", "metrics")}


class BenchError(RuntimeError):
    """The benchmark cannot run: the server does not start, or the models cannot be trained."""


def log(msg: str) -> None:
    print(f"[abuse-bench] {msg}", file=sys.stderr, flush=True)


# -- the documented limits ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Limits:
    """The server's defaults that the abuse runs into (read from the code, so they follow it)."""

    header_timeout: float
    body_idle: float
    max_open_bodies: int
    in_flight: int
    max_body: int
    max_explain_rows: int
    max_explain_values: int


def documented_limits() -> Limits:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from service.config import Settings
    from service.domain import MAX_EXPLAIN_ROWS, MAX_EXPLAIN_VALUES

    fields = Settings.model_fields
    return Limits(
        header_timeout=float(fields["header_timeout_seconds"].default),
        body_idle=float(fields["body_idle_seconds"].default),
        max_open_bodies=int(fields["max_open_bodies"].default),
        in_flight=int(fields["max_body_bytes_in_flight"].default),
        max_body=int(fields["max_body_bytes"].default),
        max_explain_rows=MAX_EXPLAIN_ROWS,
        max_explain_values=MAX_EXPLAIN_VALUES,
    )


# -- the server, its worker and its memory ------------------------------------------------------------
@dataclasses.dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    worker_pid: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)


def start_server(workdir: Path, timeout: float = 60.0) -> Server:
    """``python -m service serve --workers 1`` in its own session on a free loopback port, once /healthz answers."""
    port = free_port(HOST)
    log_path = workdir / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGREG_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", "service", "serve", "--host", HOST, "--port", str(port), "--workers", "1",
           "--store", str(workdir / "model_store"), "--log-level", "warning"]
    with log_path.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(proc, port, log_path)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"the server exited with code {proc.returncode}:\n{server.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(server.url + "/healthz", timeout=1.0, trust_env=False)
                if r.status_code == 200:
                    server.worker_pid = int(r.json()["pid"])
                    return server
            time.sleep(0.1)
        raise BenchError(f"the server did not answer /healthz within {timeout:.0f} s:\n{server.log_tail()}")
    except BaseException:
        stop_server(server)
        raise


def stop_server(server: Server, timeout: float = 15.0) -> None:
    """SIGTERM to the server's process group (its own session, by its PID); SIGKILL if it has not exited."""
    if server.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.proc.pid, signal.SIGTERM)
        try:
            server.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=timeout)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in KiB (empty once the process is gone)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux ``/proc``); None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@dataclasses.dataclass(frozen=True)
class Sched:
    """Scheduler counters at one moment: per thread of the worker (``/proc/<pid>/task/*/schedstat``) nanoseconds
    on a CPU and waiting on a run queue for one; the machine's CPU pressure (``/proc/pressure/cpu``, "some": time
    during which at least one runnable task waited, in microseconds)."""

    t: float
    threads: dict[int, tuple[int, int]]
    pressure_us: int | None


def sched_now(pid: int) -> Sched:
    threads: dict[int, tuple[int, int]] = {}
    with contextlib.suppress(OSError):
        for f in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError, ValueError):
                on_cpu, waiting, _ = f.read_text().split()
                threads[int(f.parent.name)] = (int(on_cpu), int(waiting))
    pressure = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        pressure = int(some.rsplit("total=", 1)[1])
    return Sched(time.monotonic(), threads, pressure)


@dataclasses.dataclass(frozen=True)
class SchedShares:
    """Shares of the wall time between two :class:`Sched` readings."""

    loop_on_cpu: float | None  # the worker's main thread (the event loop) on a CPU
    loop_waiting: float | None  # ... runnable but waiting for a CPU (the machine was busy)
    threads_on_cpu: float | None  # all the worker's threads together, in cores
    threads_waiting: float | None
    pressure: float | None  # share of the time some task of the machine waited for a CPU

    @classmethod
    def between(cls, pid: int, a: Sched, b: Sched) -> SchedShares:
        wall_ns = (b.t - a.t) * 1e9
        if wall_ns <= 0 or not b.threads:
            return cls(None, None, None, None, None)

        def delta(tid: int, i: int) -> int:
            return b.threads[tid][i] - a.threads.get(tid, (0, 0))[i]

        loop = pid in b.threads
        return cls(
            loop_on_cpu=delta(pid, 0) / wall_ns if loop else None,
            loop_waiting=delta(pid, 1) / wall_ns if loop else None,
            threads_on_cpu=sum(delta(t, 0) for t in b.threads) / wall_ns,
            threads_waiting=sum(delta(t, 1) for t in b.threads) / wall_ns,
            pressure=(b.pressure_us - a.pressure_us) * 1e3 / wall_ns
            if a.pressure_us is not None and b.pressure_us is not None else None,
        )


class MemoryMeter:
    """The worker's peak RSS over windows of time: ``VmHWM`` reset at a window's start (``clear_refs``), and
    ``VmRSS`` sampled every SAMPLE_EVERY seconds by a thread (for the timeline, and where the reset is refused)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int]] = []  # (time.monotonic(), VmRSS KiB)
        self.hwm_reset_works = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._window_start = time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            rss = proc_status(self.pid).get("VmRSS")
            if rss is not None:
                self.samples.append((time.monotonic(), rss))

    def __enter__(self) -> MemoryMeter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def start_window(self) -> int:
        """Reset the peak; the RSS now (KiB)."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            self.hwm_reset_works = False
        self._window_start = time.monotonic()
        return proc_status(self.pid).get("VmRSS", 0)

    def end_window(self) -> tuple[int, float]:
        """The peak RSS (KiB) since :meth:`start_window`, and when it was sampled (seconds into the window)."""
        now = time.monotonic()
        status = proc_status(self.pid)
        rss = status.get("VmRSS", 0)
        window = [(t, r) for t, r in self.samples if t >= self._window_start] + [(now, rss)]
        t_peak, sampled = max(window, key=lambda s: s[1])
        peak = max(sampled, status.get("VmHWM", 0)) if self.hwm_reset_works else sampled
        return peak, t_peak - self._window_start


# -- data and training --------------------------------------------------------------------------------
def breast_cancer() -> np.ndarray:
    """The feature matrix of the breast-cancer CSV (569 x 30)."""
    header = CSV_PATH.read_text().splitlines()[0].split(",")
    data = np.genfromtxt(CSV_PATH, delimiter=",", skip_header=1, dtype=str)
    keep = [i for i, name in enumerate(header) if name != TARGET_COLUMN]
    return data[:, keep].astype(np.float64)


def wide_data(rows: int, features: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """Seeded Gaussian rows (3 decimals, for a compact JSON body) and labels from a random linear rule."""
    rng = np.random.default_rng(seed)
    X = np.round(rng.normal(size=(rows, features)), 3)
    y = (X @ rng.normal(size=features) > 0).astype(int)
    y[:2] = [0, 1]  # both classes, whatever the draw
    return X, y.tolist()


def train_models(url: str, X_wide: np.ndarray, y_wide: list[int]) -> None:
    """``bc`` from the CSV (multipart, synchronous) and ``wide`` from a JSON body (background job, polled)."""
    with httpx.Client(base_url=url, timeout=120.0, trust_env=False) as client:
        files = {"file": (CSV_PATH.name, CSV_PATH.read_bytes(), "text/csv")}
        r = client.post("/train", files=files, data={"target": TARGET_COLUMN, "model": BC})
        if r.status_code != 201:
            raise BenchError(f"POST /train ({BC}) answered {r.status_code}: {r.text[:300]}")
        body = orjson.dumps({"model": WIDE, "features": X_wide.tolist(), "labels": y_wide,
                             "description": "benchmarks/abuse.py: explain floods and metadata reads"})
        log(f"training {WIDE} ({X_wide.shape[0]} x {X_wide.shape[1]}, a {len(body) / 1e6:.1f} MB JSON body) ...")
        r = client.post("/train?background=true", content=body, headers={"content-type": "application/json"})
        if r.status_code != 202:
            raise BenchError(f"POST /train?background=true ({WIDE}) answered {r.status_code}: {r.text[:300]}")
        job = r.headers["location"]
        deadline = time.monotonic() + 300.0
        while time.monotonic() < deadline:
            state = client.get(job).json()
            if state.get("state") == "succeeded":
                return
            if state.get("state") in ("failed", "cancelled"):
                raise BenchError(f"training {WIDE} {state['state']}: {json.dumps(state)[:500]}")
            time.sleep(0.5)
        raise BenchError(f"training {WIDE} did not finish within 300 s")


def http_request(method: str, path: str, port: int, body: bytes = b"") -> bytes:
    """A complete HTTP/1.1 request, ready to write to a keep-alive socket."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
    if method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def predict_body(model: str, X: np.ndarray) -> bytes:
    return orjson.dumps({"model": model, "features": X.tolist()})


@dataclasses.dataclass(frozen=True)
class Requests:
    """Every request the clients send, prebuilt (raw bytes), and the sizes they were built for."""

    normal: dict[str, bytes]  # "1-row", "100-row": POST /predict_proba on bc
    explain_max: bytes
    explain_over: tuple[bytes, ...]
    card: bytes
    metrics: bytes
    explain_rows: int
    wide_features: int


def build_requests(port: int, X_bc: np.ndarray, X_wide: np.ndarray, limits: Limits) -> Requests:
    features = X_wide.shape[1]
    rows = min(limits.max_explain_rows, limits.max_explain_values // (features * 3))  # 3 values per feature: binary
    if rows < 1 or rows + 1 > X_wide.shape[0]:
        raise BenchError(f"--wide-features {features} allows {rows} explained rows; --wide-rows must be at least "
                         f"{rows + 1} and the model narrow enough for one row")
    over_rows = np.resize(X_bc, (limits.max_explain_rows + 1, X_bc.shape[1]))
    explain = "/predict_proba?explain=true"
    return Requests(
        normal={"1-row": http_request("POST", "/predict_proba", port, predict_body(BC, X_bc[:1])),
                f"{BATCH_ROWS}-row": http_request("POST", "/predict_proba", port,
                                                  predict_body(BC, X_bc[:BATCH_ROWS]))},
        explain_max=http_request("POST", explain, port, predict_body(WIDE, X_wide[:rows])),
        explain_over=(http_request("POST", explain, port, predict_body(WIDE, X_wide[:rows + 1])),
                      http_request("POST", explain, port, predict_body(BC, over_rows))),
        card=http_request("GET", f"/models/{WIDE}/versions/1", port),
        metrics=http_request("GET", f"/metrics?model={WIDE}", port),
        explain_rows=rows,
        wide_features=features,
    )


# -- a small HTTP/1.1 client on asyncio streams -------------------------------------------------------
async def _discard(reader: asyncio.StreamReader, n: int) -> None:
    while n > 0:
        chunk = await reader.read(min(n, 1 << 20))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", n)
        n -= len(chunk)


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, int, bool]:
    """Read one answer, discarding its body: (status, body bytes, whether the server closes the connection)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked, close = None, False, False
    for line in lines[1:]:
        key, _, value = line.partition(b":")
        key = key.strip().lower()
        if key == b"content-length":
            length = int(value)
        elif key == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif key == b"connection":
            close = b"close" in value.lower()
    size = 0
    if chunked:
        while True:
            n = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await _discard(reader, n + 2)
            size += n
            if n == 0:
                break
    elif length is not None:
        await _discard(reader, length)
        size = length
    else:  # the body runs to the end of the connection
        close = True
        while chunk := await reader.read(1 << 20):
            size += len(chunk)
    return status, size, close


CONNECTION_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError)


def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.close()


def _failure(exc: BaseException) -> str:
    """What a failed exchange counts as: the server closed without an answer, or the connection was reset."""
    if isinstance(exc, asyncio.IncompleteReadError):
        return "closed, no answer"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "reset"
    if isinstance(exc, ConnectionRefusedError):
        return "connect refused"
    return type(exc).__name__


async def _sleep_until(wall: float) -> None:
    await asyncio.sleep(max(0.0, wall - time.time()))


# -- the normal traffic (its own process) -------------------------------------------------------------
async def normal_traffic(port: int, requests: dict[str, bytes], rates: dict[str, float], start_wall: float,
                         duration: float, connections: int) -> dict[str, Any]:
    """Each kind of request at its fixed rate over a pool of keep-alive connections, from ``start_wall``
    (``time.time()``) for ``duration`` seconds; the latency runs from a request's scheduled time."""
    loop = asyncio.get_running_loop()
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(None)  # connected when first used
    out: dict[str, Any] = {k: {"latencies": [], "outcomes": collections.Counter()} for k in requests}

    async def one(kind: str, scheduled: float) -> None:
        conn = await pool.get()
        try:
            if conn is None:
                conn = await asyncio.open_connection(HOST, port)
            reader, writer = conn
            writer.write(requests[kind])
            status, _, close = await read_answer(reader)
            latency = loop.time() - scheduled
            if close:
                _close(writer)
                conn = None
            out[kind]["outcomes"][str(status)] += 1
            if status == 200:
                out[kind]["latencies"].append(latency)
        except CONNECTION_ERRORS as exc:
            out[kind]["outcomes"][_failure(exc)] += 1
            _close(conn[1] if conn else None)
            conn = None
        finally:
            pool.put_nowait(conn)

    async def bounded(kind: str, scheduled: float) -> None:
        try:
            await asyncio.wait_for(one(kind, scheduled), REQUEST_TIMEOUT)
        except TimeoutError:
            out[kind]["outcomes"]["client timeout"] += 1

    async def stream(kind: str, rate: float, offset: float) -> list[asyncio.Task[None]]:
        tasks = []
        t0 = loop.time()
        for i in range(int(rate * duration)):  # bounded in count: rate x duration requests
            scheduled = t0 + (i + offset) / rate
            await asyncio.sleep(max(0.0, scheduled - loop.time()))
            tasks.append(asyncio.create_task(bounded(kind, scheduled)))
        return tasks

    await _sleep_until(start_wall)
    began = time.time()
    streams = await asyncio.gather(*(stream(k, rates[k], i / len(requests)) for i, k in enumerate(requests)))
    await asyncio.gather(*(t for tasks in streams for t in tasks))
    out["_seconds"] = time.time() - began
    while not pool.empty():
        conn = pool.get_nowait()
        _close(conn[1] if conn else None)
    return out


# -- the abuse (its own process) ----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class AbuseConfig:
    counts: dict[str, int]  # connections per kind (ABUSE_KINDS)
    slow_interval: float
    stalled_bytes: int  # declared Content-Length of a stalled body
    stalled_sent: int  # bytes of it sent before stopping
    max_attempts: int


class Tally:
    """Outcomes of one kind of abuse: answers by status, connections closed, still open at the end; seconds."""

    def __init__(self) -> None:
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.seconds: list[float] = []  # from an attempt's start to its answer (or the server closing)
        self.bytes_sent = 0

    def as_dict(self) -> dict[str, Any]:
        return {"outcomes": dict(self.outcomes), "seconds": self.seconds, "bytes_sent": self.bytes_sent}


async def _trickle(port: int, head: bytes, interval: float, tally: Tally, deadline: float, attempts: int) -> None:
    """Send ``head`` then one byte every ``interval`` seconds until the server answers or closes; again."""
    for _ in range(attempts):
        if time.time() >= deadline:
            return
        writer = None
        t0 = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
            answer = asyncio.ensure_future(reader.read(65536))
            try:
                writer.write(head)
                tally.bytes_sent += len(head)
                while not answer.done():
                    await asyncio.wait({answer}, timeout=interval)
                    if not answer.done():
                        writer.write(b"x")
                        await writer.drain()
                        tally.bytes_sent += 1
                data = answer.result()
            finally:
                answer.cancel()
            tally.seconds.append(time.monotonic() - t0)
            if data.startswith(b"HTTP/1.1 "):
                tally.outcomes[data.split(b" ", 2)[1].decode()] += 1
            else:
                tally.outcomes["closed, no answer" if not data else "other"] += 1
        except CONNECTION_ERRORS as exc:
            tally.seconds.append(time.monotonic() - t0)
            tally.outcomes[_failure(exc)] += 1
        except asyncio.CancelledError:
            tally.outcomes["open at phase end"] += 1
            tally.seconds.append(time.monotonic() - t0)
            raise
        finally:
            _close(writer)


async def _stalled(port: int, cfg: AbuseConfig, tally: Tally, deadline: float) -> None:
    """Declare a large body, send most of it, stop; wait for the answer or the close; pause 1 s; again."""
    head = (f"POST /predict_proba HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {cfg.stalled_bytes}\r\n\r\n").encode()
    chunk = b"{" + b" " * ((1 << 20) - 1)
    for _ in range(cfg.max_attempts):
        if time.time() >= deadline:
            return
        writer = None
        t0 = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
            answer = asyncio.ensure_future(read_answer(reader))  # read while sending: a 503 comes early
            try:
                writer.write(head)
                sent = 0
                with contextlib.suppress(ConnectionError):
                    while sent < cfg.stalled_sent and not answer.done():
                        piece = chunk[:min(len(chunk), cfg.stalled_sent - sent)]
                        writer.write(piece)
                        await writer.drain()
                        sent += len(piece)
                        tally.bytes_sent += len(piece)
                status, _, _ = await answer
            finally:
                answer.cancel()
            tally.outcomes[str(status)] += 1
        except CONNECTION_ERRORS as exc:
            tally.outcomes[_failure(exc)] += 1
        except asyncio.CancelledError:
            tally.outcomes["open at phase end"] += 1
            tally.seconds.append(time.monotonic() - t0)
            raise
        finally:
            _close(writer)
        tally.seconds.append(time.monotonic() - t0)
        await asyncio.sleep(1.0)  # a 503's Retry-After


async def _loop(port: int, requests: tuple[bytes, ...], tally: Tally, deadline: float, attempts: int) -> None:
    """Complete requests back to back on a keep-alive connection (reconnecting when it closes), in turn."""
    writer = None
    reader: asyncio.StreamReader | None = None
    try:
        for i in range(attempts):
            if time.time() >= deadline:
                return
            t0 = time.monotonic()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(HOST, port)
                assert reader is not None
                request = requests[i % len(requests)]
                writer.write(request)
                tally.bytes_sent += len(request)
                status, _, close = await asyncio.wait_for(read_answer(reader), REQUEST_TIMEOUT)
                tally.outcomes[str(status)] += 1
                if close:
                    _close(writer)
                    writer = None
            except (*CONNECTION_ERRORS, TimeoutError) as exc:
                tally.outcomes["client timeout" if isinstance(exc, TimeoutError) else _failure(exc)] += 1
                _close(writer)
                writer = None
                await asyncio.sleep(0.1)
            tally.seconds.append(time.monotonic() - t0)
    except asyncio.CancelledError:
        tally.outcomes["open at phase end"] += 1
        raise
    finally:
        _close(writer)


async def abuse(port: int, reqs: Requests, cfg: AbuseConfig, start_wall: float, duration: float) -> dict[str, Any]:
    """Every kind of abuse at once from ``start_wall`` for ``duration`` seconds; then every connection closes."""
    tallies = {k: Tally() for k in ABUSE_KINDS}
    deadline = start_wall + duration
    half_header = (f"POST /predict_proba HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
                   "X-Slow: ").encode()
    slow_body = (f"POST /predict_proba HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
                 "Content-Length: 1000\r\n\r\n{").encode()
    makers: dict[str, Callable[[], Any]] = {
        "slowloris": lambda: _trickle(port, half_header, cfg.slow_interval, tallies["slowloris"], deadline,
                                      cfg.max_attempts),
        "slow-body": lambda: _trickle(port, slow_body, cfg.slow_interval, tallies["slow-body"], deadline,
                                      cfg.max_attempts),
        "stalled": lambda: _stalled(port, cfg, tallies["stalled"], deadline),
        "explain": lambda: _loop(port, (reqs.explain_max,), tallies["explain"], deadline, cfg.max_attempts),
        "explain-over": lambda: _loop(port, reqs.explain_over, tallies["explain-over"], deadline, cfg.max_attempts),
        "card": lambda: _loop(port, (reqs.card,), tallies["card"], deadline, cfg.max_attempts),
        "metrics": lambda: _loop(port, (reqs.metrics,), tallies["metrics"], deadline, cfg.max_attempts),
    }
    await _sleep_until(start_wall)
    tasks = [asyncio.create_task(makers[kind]()) for kind in ABUSE_KINDS for _ in range(cfg.counts.get(kind, 0))]
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.time()))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return {k: t.as_dict() for k, t in tallies.items()}


def _child(name: str, kwargs: dict[str, Any], results: Any) -> None:
    """Entry point of a client process: run one of the coroutines above and send back its result."""
    try:
        fn = {"normal": normal_traffic, "abuse": abuse}[name]
        results.put((name, asyncio.run(fn(**kwargs))))
    except BaseException as exc:  # reported by the parent
        results.put((name, f"{type(exc).__name__}: {exc}"))


class Clients:
    """Client processes (spawned: no inherited threads or sockets), joined with a time limit and terminated by
    their PID if they overstay it."""

    def __init__(self) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.results = self.ctx.Queue()
        self.procs: list[multiprocessing.process.BaseProcess] = []

    def start(self, name: str, **kwargs: Any) -> None:
        proc = self.ctx.Process(target=_child, args=(name, kwargs, self.results), name=f"abuse-bench-{name}",
                                daemon=True)
        proc.start()
        self.procs.append(proc)

    def collect(self, timeout: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        deadline = time.monotonic() + timeout
        try:
            while len(out) < len(self.procs):
                name, value = self.results.get(timeout=max(0.1, deadline - time.monotonic()))
                if isinstance(value, str):
                    raise BenchError(f"the {name} client failed: {value}")
                out[name] = value
        except queue.Empty:
            raise BenchError(f"client processes did not finish within {timeout:.0f} s") from None
        finally:
            for proc in self.procs:
                proc.join(timeout=5.0)
                if proc.is_alive():
                    proc.terminate()
                    proc.join(timeout=5.0)
            self.procs.clear()
        return out


# -- one phase ----------------------------------------------------------------------------------------
@dataclasses.dataclass
class Phase:
    name: str  # "alone 1", "abuse 1", ...
    abused: bool
    normal: dict[str, Any]
    abuse: dict[str, Any] | None
    peak_kib: int
    peak_at: float  # seconds into the phase's memory window
    rss_start_kib: int
    server_cpu: float | None  # CPU seconds of the worker per wall second over the normal traffic's run
    seconds: float
    sched: SchedShares  # over the normal traffic's run


def run_phase(name: str, abused: bool, server: Server, meter: MemoryMeter, reqs: Requests,
              cfg: AbuseConfig, args: argparse.Namespace) -> Phase:
    rss0 = meter.start_window()
    clients = Clients()
    start = time.time() + 2.0  # time for the spawned processes to import
    lead = args.lead if abused else 0.0
    if abused:
        clients.start("abuse", port=server.port, reqs=reqs, cfg=cfg, start_wall=start,
                      duration=lead + args.duration)
    clients.start("normal", port=server.port, requests=reqs.normal,
                  rates={"1-row": args.rate, f"{BATCH_ROWS}-row": args.batch_rate}, start_wall=start + lead,
                  duration=args.duration, connections=args.connections)
    time.sleep(max(0.0, start + lead - time.time()))
    cpu0, t0, sched0 = cpu_seconds(server.worker_pid), time.monotonic(), sched_now(server.worker_pid)
    results = clients.collect(timeout=lead + args.duration + 2 * REQUEST_TIMEOUT + 30.0)
    cpu1, t1, sched1 = cpu_seconds(server.worker_pid), time.monotonic(), sched_now(server.worker_pid)
    if server.proc.poll() is not None:
        raise BenchError(f"the server died during phase {name}:\n{server.log_tail()}")
    settle(server, args.settle)
    peak, peak_at = meter.end_window()
    cpu = (cpu1 - cpu0) / (t1 - t0) if cpu0 is not None and cpu1 is not None else None
    normal = results["normal"]
    sched = SchedShares.between(server.worker_pid, sched0, sched1)
    phase = Phase(name, abused, normal, results.get("abuse"), peak, peak_at, rss0, cpu, normal.pop("_seconds"),
                  sched)
    p99 = {k: _pct(v["latencies"], 99) for k, v in normal.items()}
    log(f"{name}: p99 " + ", ".join(f"{k} {v:.1f} ms" for k, v in p99.items())
        + f"; peak RSS {peak / KIB:.0f} MiB; worker CPU {_share(cpu)}; event loop on a CPU "
        f"{_share(sched.loop_on_cpu)}, waiting for one {_share(sched.loop_waiting)}; machine CPU pressure "
        f"{_share(sched.pressure)}")
    return phase


def settle(server: Server, seconds: float) -> None:
    """Quiet time after a phase: ``seconds``, and until /healthz answers quickly (work left by the abuse done)."""
    time.sleep(seconds)
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(server.url + "/healthz", timeout=10.0, trust_env=False)
            if time.perf_counter() - t0 < 0.05:
                return
        time.sleep(0.5)


# -- calibration: one complete request alone ----------------------------------------------------------
@dataclasses.dataclass
class Single:
    label: str
    status: int
    seconds: float  # the warm call
    answer_bytes: int
    cold_rise_kib: int  # the first call (model and metadata loads included): peak RSS minus RSS just before
    warm_rise_kib: int  # the second call, the same

    @property
    def rise_kib(self) -> int:
        return max(self.cold_rise_kib, self.warm_rise_kib)


def calibrate(server: Server, meter: MemoryMeter, reqs: Requests) -> list[Single]:
    """Each complete request the abuse sends, alone, twice: the first call loads what it needs (the wide model,
    its metadata), the second is warm; the peak RSS rise of both."""
    kinds = [
        (f"explain, {reqs.explain_rows} rows x {reqs.wide_features} features ({WIDE})", reqs.explain_max),
        (f"explain over MAX_EXPLAIN_VALUES ({reqs.explain_rows + 1} rows, {WIDE})", reqs.explain_over[0]),
        ("explain over MAX_EXPLAIN_ROWS (bc)", reqs.explain_over[1]),
        (f"GET model card ({WIDE})", reqs.card),
        (f"GET /metrics?model={WIDE}", reqs.metrics),
        (f"predict_proba {BATCH_ROWS} rows (bc)", reqs.normal[f"{BATCH_ROWS}-row"]),
    ]
    out = []

    async def send(raw: bytes) -> tuple[int, int]:
        reader, writer = await asyncio.open_connection(HOST, server.port)
        try:
            writer.write(raw)
            status, size, _ = await asyncio.wait_for(read_answer(reader), REQUEST_TIMEOUT)
            return status, size
        finally:
            _close(writer)

    def measured(raw: bytes) -> tuple[int, int, float, int]:
        time.sleep(0.5)
        rss0 = meter.start_window()
        t0 = time.perf_counter()
        status, size = asyncio.run(send(raw))
        seconds = time.perf_counter() - t0
        time.sleep(0.2)
        peak, _ = meter.end_window()
        return status, size, seconds, max(0, peak - rss0)

    for label, raw in kinds:
        *_, cold = measured(raw)
        status, size, seconds, warm = measured(raw)
        out.append(Single(label, status, seconds, size, cold, warm))
        log(f"alone: {label}: {status}, {seconds:.2f} s, {size / 1e6:.1f} MB answer, peak +{cold / KIB:.0f} MiB "
            f"(first call), +{warm / KIB:.0f} MiB (second)")
    return out


# -- the report ---------------------------------------------------------------------------------------
def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1e3 if values else float("nan")


def _share(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _mib(kib: float) -> str:
    return f"{kib / KIB:.0f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


@dataclasses.dataclass
class Result:
    machine: dict[str, Any]
    args: dict[str, Any]
    limits: Limits
    reqs: dict[str, Any]
    singles: list[Single]
    phases: list[Phase]
    abuse_counts: dict[str, int]
    hwm_reset_works: bool
    total_s: float = 0.0

    def pooled(self, abused: bool, kind: str) -> dict[str, Any]:
        phases = [p for p in self.phases if p.abused == abused]
        lat = [x for p in phases for x in p.normal[kind]["latencies"]]
        outcomes: collections.Counter[str] = collections.Counter()
        for p in phases:
            outcomes.update(p.normal[kind]["outcomes"])
        seconds = sum(p.seconds for p in phases)
        def mean(values: list[float | None]) -> float | None:
            known = [v for v in values if v is not None]
            return float(np.mean(known)) if known else None

        return {"p50": _pct(lat, 50), "p99": _pct(lat, 99), "max": max(lat) * 1e3 if lat else float("nan"),
                "ok": len(lat), "rps": len(lat) / seconds if seconds else 0.0, "not_ok": sum(outcomes.values())
                - outcomes.get("200", 0), "outcomes": dict(outcomes), "cpu": mean([p.server_cpu for p in phases]),
                "loop_on_cpu": mean([p.sched.loop_on_cpu for p in phases]),
                "loop_waiting": mean([p.sched.loop_waiting for p in phases]),
                "threads_waiting": mean([p.sched.threads_waiting for p in phases]),
                "pressure": mean([p.sched.pressure for p in phases])}

    @property
    def kinds(self) -> list[str]:
        return list(self.phases[0].normal)

    @property
    def baseline_kib(self) -> int:
        return self.phases[0].peak_kib  # the first phase: normal traffic alone, before any abuse

    @property
    def largest_single(self) -> Single:
        return max(self.singles, key=lambda s: s.rise_kib)

    @property
    def bound_kib(self) -> int:
        return self.baseline_kib + self.limits.in_flight // KIB + self.largest_single.rise_kib

    @property
    def peak_abuse_kib(self) -> int:
        return max(p.peak_kib for p in self.phases if p.abused)

    def p99_ratio(self, kind: str) -> float:
        return self.pooled(True, kind)["p99"] / self.pooled(False, kind)["p99"]

    def checks(self) -> dict[str, bool]:
        out = {f"p99 {k}": self.p99_ratio(k) <= P99_TARGET for k in self.kinds}
        out["peak memory"] = self.peak_abuse_kib <= self.bound_kib
        return out


def main_rows(r: Result) -> list[list[str]]:
    rows = []
    for kind in r.kinds:
        a, b = r.pooled(False, kind), r.pooled(True, kind)
        ratio = b["p99"] / a["p99"]
        rows.append([f"{kind} p50 latency (ms)", f"{a['p50']:.1f}", f"{b['p50']:.1f}", f"{b['p50'] / a['p50']:.2f}",
                     ""])
        rows.append([f"{kind} p99 latency (ms)", f"{a['p99']:.1f}", f"{b['p99']:.1f}", f"{ratio:.2f}",
                     f"<= {P99_TARGET:.1f} {verdict(ratio <= P99_TARGET)}"])
        rows.append([f"{kind} max latency (ms)", f"{a['max']:.0f}", f"{b['max']:.0f}", f"{b['max'] / a['max']:.1f}",
                     ""])
        rows.append([f"{kind} answered 200 per s", f"{a['rps']:.1f}", f"{b['rps']:.1f}", f"{b['rps'] / a['rps']:.2f}",
                     ""])
        rows.append([f"{kind} answers other than 200", str(a["not_ok"]), str(b["not_ok"]), "", ""])
    a, b = r.pooled(False, r.kinds[0]), r.pooled(True, r.kinds[0])
    rows.append(["worker CPU, all threads (of one core)", _share(a["cpu"]), _share(b["cpu"]),
                 f"{b['cpu'] / a['cpu']:.2f}" if a["cpu"] and b["cpu"] else "", ""])
    rows.append(["event-loop thread on a CPU", _share(a["loop_on_cpu"]), _share(b["loop_on_cpu"]), "", ""])
    rows.append(["event-loop thread runnable, waiting for a CPU", _share(a["loop_waiting"]),
                 _share(b["loop_waiting"]), "", ""])
    rows.append(["worker threads waiting for a CPU (sum)", _share(a["threads_waiting"]),
                 _share(b["threads_waiting"]), "", ""])
    rows.append(["machine CPU pressure (some task waiting)", _share(a["pressure"]), _share(b["pressure"]), "", ""])
    peak_ok = r.peak_abuse_kib <= r.bound_kib
    rows.append(["worker peak RSS (MiB)", _mib(r.baseline_kib), _mib(r.peak_abuse_kib),
                 f"{r.peak_abuse_kib / r.baseline_kib:.2f}", f"<= {_mib(r.bound_kib)} {verdict(peak_ok)}"])
    return rows


MAIN_HEADER = ["normal traffic (POST /predict_proba, bc)", "alone", "with abuse", "abuse/alone", "target"]


def abuse_rows(r: Result) -> list[list[str]]:
    tallies: dict[str, Tally] = {k: Tally() for k in ABUSE_KINDS}
    for p in r.phases:
        for kind, t in (p.abuse or {}).items():
            tallies[kind].outcomes.update(t["outcomes"])
            tallies[kind].seconds += t["seconds"]
            tallies[kind].bytes_sent += t["bytes_sent"]
    lim = r.limits
    what = {
        "slowloris": f"half a header, then 1 byte every {r.args['slow_interval']:g} s",
        "slow-body": f"headers, then 1 body byte every {r.args['slow_interval']:g} s",
        "stalled": f"{r.args['stalled_fraction']:.0%} of a declared {r.args['stalled_mb']:g} MB body, then nothing",
        "explain": f"explain=true, {r.reqs['explain_rows']} rows x {r.reqs['wide_features']} features",
        "explain-over": f"explain=true, {r.reqs['explain_rows'] + 1} rows ({WIDE}) / {lim.max_explain_rows + 1} (bc)",
        "card": f"GET /models/{WIDE}/versions/1",
        "metrics": f"GET /metrics?model={WIDE}",
    }
    rows = []
    for kind in ABUSE_KINDS:
        n = r.abuse_counts.get(kind, 0)
        if not n:
            continue
        t = tallies[kind]
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(t.outcomes.items(), key=lambda kv: -kv[1]))
        secs = f"{np.median(t.seconds):.1f} / {max(t.seconds):.1f}" if t.seconds else "-"
        rows.append([kind, str(n), what[kind], str(sum(t.outcomes.values())), outcomes or "-", secs,
                     f"{t.bytes_sent / 1e6:.0f}"])
    return rows


ABUSE_HEADER = ["abuse", "conns", "each connection sends", "attempts", "outcomes (all abuse phases)",
                "held s, median / max", "MB sent"]


def phase_rows(r: Result) -> list[list[str]]:
    rows = []
    for p in r.phases:
        p99s = [f"{_pct(p.normal[k]['latencies'], 99):.1f}" for k in r.kinds]
        not_ok = sum(sum(v for s, v in p.normal[k]["outcomes"].items() if s != "200") for k in r.kinds)
        rows.append([p.name, *p99s, str(not_ok), _mib(p.rss_start_kib), _mib(p.peak_kib), f"{p.peak_at:.1f}",
                     _share(p.server_cpu), _share(p.sched.loop_on_cpu), _share(p.sched.loop_waiting),
                     _share(p.sched.pressure)])
    return rows


def single_rows(r: Result) -> list[list[str]]:
    return [[s.label, str(s.status), f"{s.seconds:.2f}", f"{s.answer_bytes / 1e6:.2f}", _mib(s.cold_rise_kib),
             _mib(s.warm_rise_kib)] for s in r.singles]


def plain_table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths,
                                                                                               strict=True)))

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *(fmt(row) for row in rows)])


def markdown_table(header: list[str], rows: list[list[str]], left: int = 1) -> str:
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" if i < left else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(c.replace("<=", "≤") for c in row) + " |" for row in rows]
    return "\n".join(out)


def report(r: Result, markdown: bool) -> str:
    a, lim = r.args, r.limits
    m = r.machine
    largest = r.largest_single
    out = ["Abuse: normal scoring traffic alone and beside slow/abandoned requests, explain floods and metadata reads",
           ""]
    out.append(f"machine:  {m['cpu']}, {m['cores']} cores, {m['platform']}, Python {m['python']}; "
               + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    out.append(f"date:     {m['date_utc']}; service: {m['service_revision']}")
    out.append(f"load:     1-min load average {m['load_average_1min_at_start']} at start, "
               f"{m['load_average_1min_at_end']} at end (the benchmark's own processes account for about 2 during "
               "abuse: more means other processes competed for the cores)")
    out.append(f"server:   python -m service serve --workers 1, 127.0.0.1, defaults: header timeout "
               f"{lim.header_timeout:g} s, body idle {lim.body_idle:g} s, {lim.max_open_bodies} open bodies, "
               f"{lim.in_flight / MIB:.0f} MiB of bodies in flight, bodies up to {lim.max_body / MIB:.0f} MiB")
    out.append(f"normal:   POST /predict_proba on bc: {a['rate']:g} 1-row + {a['batch_rate']:g} {BATCH_ROWS}-row "
               f"requests/s at a fixed schedule, {a['connections']} keep-alive connections, latency from the "
               "scheduled time")
    out.append(f"phases:   {a['rounds']} round(s) of {a['duration']:g} s alone, then {a['duration']:g} s with abuse "
               f"(started {a['lead']:g} s earlier); {a['settle']:g} s settle after each")
    out += ["", plain_table(MAIN_HEADER, main_rows(r))]
    out.append("")
    out.append(f"peak memory bound = {_mib(r.baseline_kib)} MiB (peak of the first phase, normal traffic alone, "
               f"before any abuse) + {lim.in_flight / MIB:.0f} MiB (LOGREG_MAX_BODY_BYTES_IN_FLIGHT: bodies being "
               f"received) + {_mib(largest.rise_kib)} MiB (the largest single request alone: {largest.label}) = "
               f"{_mib(r.bound_kib)} MiB; peak with abuse {_mib(r.peak_abuse_kib)} MiB "
               f"({'VmHWM reset per phase and VmRSS samples' if r.hwm_reset_works else 'VmRSS samples only'})")
    out.append("latencies over the 200 answers only; 'answers other than 200' counts the rest (statuses, connections "
               "closed without an answer, client timeouts). CPU and scheduler shares over the normal traffic's run: "
               "the event-loop thread is the worker's main thread; neither on a CPU nor waiting for one, it is idle "
               "or blocked (waiting for the GIL held by another thread counts here); the machine's CPU pressure is "
               "the share of the time some task waited for a CPU (/proc/pressure/cpu), other processes included")
    offered = {"1-row": a["rate"], f"{BATCH_ROWS}-row": a["batch_rate"]}
    behind = [k for k in r.kinds if r.pooled(True, k)["rps"] < 0.95 * offered[k]]
    if behind:
        out.append(f"WARNING: with abuse the server answered fewer {' and '.join(behind)} requests than were offered: "
                   "they queued, so their latency with abuse grows with --duration and the ratio depends on it")
    cut = sum(t["outcomes"].get("closed, no answer", 0) for p in r.phases for k, t in (p.abuse or {}).items()
              if k in ("explain", "explain-over", "card", "metrics"))
    if cut:
        out.append(f"NOTE: {cut} complete request(s) of the floods or metadata reads got no answer: the server closed "
                   "the connection. The header timer of service/api/protocol.py re-arms when a request has arrived "
                   "(on_message_complete), not when it is answered, so an answer that takes longer than "
                   f"LOGREG_HEADER_TIMEOUT_SECONDS ({lim.header_timeout:g} s) is cut off")
    out += ["", "What the abuse got:", "", plain_table(ABUSE_HEADER, abuse_rows(r), left=3)]
    out += ["", "Per phase (p99 in ms; memory in MiB):", "",
            plain_table(["phase", *(f"p99 {k}" for k in r.kinds), "not 200", "RSS at start", "peak RSS",
                         "peak at (s)", "worker CPU", "loop on CPU", "loop waiting", "CPU pressure"], phase_rows(r))]
    out += ["", "Each complete request of the abuse, alone on the quiet server, twice (after the first phase; "
            "seconds and MB of the second call):", "",
            plain_table(["request", "status", "seconds", "answer MB", "peak rise MiB, 1st call", "2nd call"],
                        single_rows(r))]
    checks = r.checks()
    out += ["", "Targets:"]
    for kind in r.kinds:
        out.append(f"  normal traffic p99 with abuse / alone, {kind}: {r.p99_ratio(kind):.2f} <= {P99_TARGET:.1f} -> "
                   f"{verdict(checks[f'p99 {kind}'])}")
    out.append(f"  worker peak RSS with abuse <= documented worst case: {_mib(r.peak_abuse_kib)} <= "
               f"{_mib(r.bound_kib)} MiB -> {verdict(checks['peak memory'])}")
    misses = [k for k, ok in checks.items() if not ok]
    out.append(f"MISSED: {', '.join(misses)}" if misses else "all targets met")
    if markdown:
        out += ["", "Markdown (README):", "", markdown_table(MAIN_HEADER, main_rows(r)), "",
                markdown_table(ABUSE_HEADER, abuse_rows(r), left=3), ""]
        out.append(f"_{m['cpu']}, {m['cores']} cores, {m['date_utc']}; one worker, {a['rate']:g} + "
                   f"{a['batch_rate']:g} requests/s of normal traffic, {a['rounds']} x {a['duration']:g} s per "
                   f"condition; bound = peak alone + {lim.in_flight / MIB:.0f} MiB in flight + largest single "
                   f"request ({_mib(largest.rise_kib)} MiB). `.venv/bin/python benchmarks/abuse.py`_")
    out += ["", f"total runtime {r.total_s:.1f} s"]
    return "\n".join(out)


def machine_info() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": {p: importlib.metadata.version(p) for p in ("fastapi", "uvicorn", "numpy")},
        "load_average_1min_at_start": _loadavg(),
        "service_revision": service_revision(),
    }


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


# -- main ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=25.0, help="seconds of normal traffic per phase (25)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of (alone, with abuse) phases (2)")
    p.add_argument("--lead", type=float, default=2.0, help="seconds the abuse starts before the normal traffic (2)")
    p.add_argument("--settle", type=float, default=3.0, help="quiet seconds after each phase (3)")
    p.add_argument("--rate", type=float, default=40.0, help="1-row requests per second of normal traffic (40)")
    p.add_argument("--batch-rate", type=float, default=10.0, help=f"{BATCH_ROWS}-row requests per second (10)")
    p.add_argument("--connections", type=int, default=8, help="keep-alive connections of normal traffic (8)")
    p.add_argument("--abuse", default="all",
                   help="comma-separated: slowloris (with slow bodies), stalled, explain (with over-limit), metadata;"
                        " or all (default)")
    p.add_argument("--slowloris", type=int, default=32, help="connections sending half a header slowly (32)")
    p.add_argument("--slow-bodies", type=int, default=8, help="connections sending a body slowly (8)")
    p.add_argument("--slow-interval", type=float, default=3.0, help="seconds between their bytes (3)")
    p.add_argument("--stalled", type=int, default=8, help="connections sending most of a body, then stalling (8)")
    p.add_argument("--stalled-mb", type=float, default=40.0, help="declared size of a stalled body, MB (40)")
    p.add_argument("--stalled-fraction", type=float, default=0.9, help="share of it sent before stalling (0.9)")
    p.add_argument("--explain", type=int, default=2, help="connections flooding the largest explain (2)")
    p.add_argument("--explain-over", type=int, default=1, help="connections flooding over-limit explains (1)")
    p.add_argument("--metadata", type=int, default=1, help="connections looping the card, and as many /metrics (1)")
    p.add_argument("--max-attempts", type=int, default=10_000, help="attempts per abuse connection and phase")
    p.add_argument("--wide-features", type=int, default=20_000, help="features of the wide model (20000)")
    p.add_argument("--wide-rows", type=int, default=60, help="training rows of the wide model (60)")
    p.add_argument("--seed", type=int, default=0, help="seed of the wide model's data")
    p.add_argument("--markdown", action="store_true", help="also print README-ready markdown")
    p.add_argument("--json", type=Path, metavar="PATH", help="write the raw numbers to PATH")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.rounds < 1 or args.lead < 0 or args.settle < 0:
        p.error("--duration must be > 0, --rounds >= 1, --lead and --settle >= 0")
    if args.rate <= 0 or args.batch_rate <= 0 or args.connections < 1 or args.max_attempts < 1:
        p.error("--rate and --batch-rate must be > 0, --connections and --max-attempts >= 1")
    if not 0 < args.stalled_fraction < 1 or args.stalled_mb <= 0 or args.slow_interval <= 0:
        p.error("--stalled-fraction must be in (0, 1), --stalled-mb and --slow-interval > 0")
    groups = set(ABUSE_GROUPS) if args.abuse == "all" else {g.strip() for g in args.abuse.split(",") if g.strip()}
    if not groups or groups - set(ABUSE_GROUPS):
        p.error(f"--abuse takes all or some of {', '.join(ABUSE_GROUPS)}")
    args.abuse_groups = sorted(groups)
    return args


def abuse_counts(args: argparse.Namespace) -> dict[str, int]:
    counts = {"slowloris": args.slowloris, "slow-body": args.slow_bodies, "stalled": args.stalled,
              "explain": args.explain, "explain-over": args.explain_over, "card": args.metadata,
              "metrics": args.metadata}
    chosen = {k for g in args.abuse_groups for k in ABUSE_GROUPS[g]}
    return {k: (v if k in chosen else 0) for k, v in counts.items()}


def run(args: argparse.Namespace, machine: dict[str, Any], workdir: Path, start: float) -> Result:
    limits = documented_limits()
    X_bc = breast_cancer()
    X_wide, y_wide = wide_data(args.wide_rows, args.wide_features, args.seed)
    stalled_bytes = int(args.stalled_mb * 1e6)
    if stalled_bytes > limits.max_body:
        raise BenchError(f"--stalled-mb {args.stalled_mb:g} is over LOGREG_MAX_BODY_BYTES: that is a plain 413")
    cfg = AbuseConfig(counts=abuse_counts(args), slow_interval=args.slow_interval, stalled_bytes=stalled_bytes,
                      stalled_sent=int(stalled_bytes * args.stalled_fraction), max_attempts=args.max_attempts)
    log("starting python -m service serve --workers 1 to train the models ...")
    server = start_server(workdir)
    try:
        train_models(server.url, X_wide, y_wide)
    finally:
        stop_server(server)
    # A fresh server on the same registry: the training's memory is not the baseline's.
    server = start_server(workdir)
    try:
        log(f"measured server on {server.url}, worker pid {server.worker_pid}")
        reqs = build_requests(server.port, X_bc, X_wide, limits)
        with MemoryMeter(server.worker_pid) as meter:
            log(f"warm-up: {args.lead + 3:g} s of normal traffic")
            warm = argparse.Namespace(**{**vars(args), "duration": args.lead + 3.0, "settle": 1.0})
            run_phase("warm-up", False, server, meter, reqs, cfg, warm)
            phases: list[Phase] = []
            for rnd in range(1, args.rounds + 1):
                for abused in (False, True):
                    name = f"{'abuse' if abused else 'alone'} {rnd}"
                    log(f"phase {name}: {args.duration:g} s" + (f" (abuse from {args.lead:g} s before)"
                                                                if abused else ""))
                    phases.append(run_phase(name, abused, server, meter, reqs, cfg, args))
                    if rnd == 1 and not abused:  # after the baseline phase, before any abuse
                        singles = calibrate(server, meter, reqs)
            hwm_ok = meter.hwm_reset_works
    finally:
        stop_server(server)
    machine["load_average_1min_at_end"] = _loadavg()
    return Result(machine=machine, args={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                  limits=limits, reqs={"explain_rows": reqs.explain_rows, "wide_features": reqs.wide_features},
                  singles=singles, phases=phases, abuse_counts=cfg.counts, hwm_reset_works=hwm_ok,
                  total_s=time.perf_counter() - start)


def to_json(r: Result) -> dict[str, Any]:
    return {
        "machine": r.machine,
        "args": r.args,
        "limits": dataclasses.asdict(r.limits),
        "normal": {("with_abuse" if abused else "alone"): {k: {key: v for key, v in r.pooled(abused, k).items()}
                                                            for k in r.kinds} for abused in (False, True)},
        "memory_kib": {"baseline_peak": r.baseline_kib, "peak_with_abuse": r.peak_abuse_kib, "bound": r.bound_kib,
                       "in_flight": r.limits.in_flight // KIB, "largest_single": dataclasses.asdict(r.largest_single)},
        "singles": [dataclasses.asdict(s) for s in r.singles],
        "phases": [{**dataclasses.asdict(p), "normal": {k: {"outcomes": dict(v["outcomes"]),
                                                            "latencies_s": v["latencies"]}
                                                        for k, v in p.normal.items()}} for p in r.phases],
        "checks": r.checks(),
        "total_runtime_s": r.total_s,
    }


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that stops the server


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    start = time.perf_counter()
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="logreg-abuse-") as tmp:
        try:
            result = run(args, machine, Path(tmp), start)
        except BenchError as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 1
    print(report(result, args.markdown))
    if args.json is not None:
        args.json.write_text(json.dumps(to_json(result), indent=2) + "\n")
        print(f"raw numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
