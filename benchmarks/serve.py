"""Benchmark: our service's ``POST /predict_proba`` vs a bare FastAPI app doing dot + sigmoid (the ceiling).

What it does, in one go:

1. starts two servers, each ``python -m uvicorn ... --workers 1`` on a free loopback port: the bare app of
   ``benchmarks/bare_app.py`` (pydantic request model, numpy dot + sigmoid, plain dict response) and our
   service (``service.app:create_app_from_env --factory``) on a temporary ``LOGREG_MODEL_STORE``, with
   ``LOGREG_LOG_LEVEL=warning`` like uvicorn's ``--log-level warning`` (no access-log line per request);
2. trains a 30-feature binary model on our service (``POST /train``, ``examples/breast_cancer.csv`` as a
   multipart upload) and gives its coefficients to the bare app, so both compute the same probabilities;
3. checks once, before timing, that both answer 200 with the same probabilities (shape and values);
4. loads each server in turn with the same generator and the same bodies (rows of the breast-cancer CSV):
   1-row bodies (requests/s, p50, p99) and 1000-row bodies (rows/s, p50, p99); each run is a warm-up
   (discarded) then a timed run; the apps alternate, and which goes first alternates per round; the
   reported numbers are the medians over ``--rounds`` rounds, and the ratio is the median of the per-round
   ratios (each from two back-to-back runs, so a burst of load from other processes skews fewer of them);
5. prints a table with bare vs ours, the ratio ours/bare per scenario, the targets (>= 1.0 for 1-row bodies,
   >= 3.0 for 1000-row bodies) as PASS/MISS, the machine and the generator used;
6. unless ``--no-explain``: in each round, right after our plain run, the same scenario against
   ``/predict_proba?explain=true`` (contributions, top reasons and flips for every row), and a second table
   with the cost of explanations: throughput with explain / without, and both latencies.

The load generator is ``wrk`` (Debian package ``wrk``; one thread, a Lua script for the POST body and its
latency percentiles) when it is on PATH, else an asyncio loop in this process on raw keep-alive sockets
(``--generator httpx`` uses an httpx.AsyncClient loop instead, which costs about ten times more CPU per
request and cannot saturate the server with 1-row bodies). Whichever it is, it runs on the same machine
and shares the CPU cores with the server it loads: it is the same generator for both apps, so the ratios
are fair, but the absolute numbers are lower than from a dedicated client machine. The server's CPU use
during each run is read from ``/proc`` and printed: below 80% of a core, the server was not the limit and
a warning says so. Servers are stopped by their PID (terminate, then kill after a timeout) whatever happens.

Run it from the repository root with::

    .venv/bin/python benchmarks/serve.py                        # 3 rounds of 5 s per app and scenario
    .venv/bin/python benchmarks/serve.py --markdown             # also a README-ready markdown table
    .venv/bin/python benchmarks/serve.py --duration 10 --rounds 5 --generator httpx --json out.json

The exit code is 0 whether the targets pass or not (this is a benchmark, not a test); it is 1 when a server
fails to start, the correctness check fails or requests fail during a timed run.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
import orjson
from _common import cpu_model, free_port, log_tail, service_revision  # benchmarks/ is the script's folder

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
CSV_PATH = ROOT / "examples" / "breast_cancer.csv"
TARGET_COLUMN = "diagnosis"
MODEL_NAME = "bench"
HOST = "127.0.0.1"
APPS = ("bare", "ours")
SATURATED = 0.8  # server CPU share of one core below which a run was limited by the load generator


class BenchError(RuntimeError):
    """A failure that makes the numbers meaningless: a server that does not start, wrong answers, errors."""


# -- scenarios and results ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    rows: int
    connections: int
    target: float  # ours/bare throughput ratio to reach


@dataclasses.dataclass(frozen=True)
class RunResult:
    """One timed run of one app under one scenario."""

    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    server_cpu: float | None = None  # CPU seconds of the server process per wall second (1.0 = one core busy)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


@dataclasses.dataclass
class AppSummary:
    """Medians over the rounds of one app under one scenario."""

    rps: float
    rows_per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu: float | None
    errors: int
    runs: list[RunResult]

    @classmethod
    def of(cls, runs: list[RunResult], rows: int) -> AppSummary:
        rps = statistics.median(r.rps for r in runs)
        return cls(
            rps=rps,
            rows_per_s=rps * rows,
            p50_ms=statistics.median(r.p50_ms for r in runs),
            p99_ms=statistics.median(r.p99_ms for r in runs),
            server_cpu=statistics.median(cpus) if (cpus := [r.server_cpu for r in runs if r.server_cpu is not None])
            else None,
            errors=sum(r.errors for r in runs),
            runs=runs,
        )


def ratios(summary: dict[str, AppSummary]) -> list[float]:
    """ours/bare throughput of each round (the two runs of a round ran back to back)."""
    return [o.rps / b.rps if b.rps > 0 else float("nan")
            for o, b in zip(summary["ours"].runs, summary["bare"].runs, strict=True)]


# -- servers ------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)


def start_server(name: str, target: list[str], env: dict[str, str], log_dir: Path, ready_path: str) -> Server:
    """``python -m uvicorn <target> --workers 1`` on a free loopback port, returned once it answers."""
    port = free_port(HOST)
    log_path = log_dir / f"{name}.log"
    cmd = [sys.executable, "-m", "uvicorn", *target, "--host", HOST, "--port", str(port), "--workers", "1",
           "--log-level", "warning"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(name=name, proc=proc, url=f"http://{HOST}:{port}", log_path=log_path)
    deadline = time.monotonic() + 60.0
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"{name} server exited with code {proc.returncode}:\n{server.log_tail()}")
            try:
                if httpx.get(server.url + ready_path, timeout=1.0, trust_env=False).status_code < 500:
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    except BaseException:
        stop_server(server)
        raise
    stop_server(server)
    raise BenchError(f"{name} server did not answer {ready_path} within 60 s:\n{server.log_tail()}")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux ``/proc``); None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def stop_server(server: Server, timeout: float = 10.0) -> None:
    """Terminate the server process by its PID; kill it if it has not exited after ``timeout`` seconds."""
    if server.proc.poll() is not None:
        return
    server.proc.terminate()
    try:
        server.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(timeout=timeout)


def server_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment without any ``LOGREG_*`` setting of the caller's shell, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGREG_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


# -- data, training and the correctness check ---------------------------------------------------------
def load_features() -> tuple[np.ndarray, list[str]]:
    """The feature matrix of the breast-cancer CSV (30 columns) and the feature names."""
    header = CSV_PATH.read_text().splitlines()[0].split(",")
    data = np.genfromtxt(CSV_PATH, delimiter=",", skip_header=1, dtype=str)
    t = header.index(TARGET_COLUMN)
    keep = [i for i in range(len(header)) if i != t]
    return data[:, keep].astype(np.float64), [header[i] for i in keep]


def train_model(url: str) -> dict[str, Any]:
    """Train model ``bench`` on our service from the CSV; return its model card (coefficients included)."""
    files = {"file": (CSV_PATH.name, CSV_PATH.read_bytes(), "text/csv")}
    data = {"target": TARGET_COLUMN, "model": MODEL_NAME}
    r = httpx.post(url + "/train", files=files, data=data, timeout=120.0, trust_env=False)
    if r.status_code != 201:
        raise BenchError(f"POST /train answered {r.status_code}: {r.text[:500]}")
    card = httpx.get(f"{url}/models/{MODEL_NAME}/versions/{r.json()['version']}", timeout=30.0, trust_env=False)
    if card.status_code != 200:
        raise BenchError(f"GET model card answered {card.status_code}: {card.text[:500]}")
    return card.json()


def bare_weights(card: dict[str, Any]) -> dict[str, Any]:
    """The trained model's raw-unit coefficients and intercept, for the bare app."""
    (positive, coefs), = card["coefficients"].items()
    return {"coef": [coefs[name] for name in card["feature_names"]], "intercept": card["intercepts"][positive]}


def rows_of(X: np.ndarray, n: int) -> list[list[float]]:
    return [X[i % X.shape[0]].tolist() for i in range(n)]


def bodies(X: np.ndarray, n: int) -> dict[str, bytes]:
    """The same ``n`` rows as each app's request body."""
    rows = rows_of(X, n)
    return {"bare": orjson.dumps({"features": rows}), "ours": orjson.dumps({"model": MODEL_NAME, "features": rows})}


def check_answers(urls: dict[str, str], X: np.ndarray, sizes: tuple[int, ...]) -> float:
    """Both apps answer 200 with probabilities of the same shape and values; the largest difference."""
    worst = 0.0
    for n in sizes:
        proba = {}
        for app, body in bodies(X, n).items():
            r = httpx.post(urls[app] + "/predict_proba", content=body,
                           headers={"content-type": "application/json"}, timeout=30.0, trust_env=False)
            if r.status_code != 200:
                raise BenchError(f"{app} /predict_proba with {n} row(s) answered {r.status_code}: {r.text[:500]}")
            proba[app] = np.asarray(r.json()["probabilities"], dtype=np.float64)
        if proba["bare"].shape != (n, 2) or proba["ours"].shape != (n, 2):
            raise BenchError(f"probability shapes differ: bare {proba['bare'].shape}, ours {proba['ours'].shape}")
        diff = float(np.max(np.abs(proba["bare"] - proba["ours"])))
        if not diff <= 1e-9:
            raise BenchError(f"probabilities differ by up to {diff:g} for {n} row(s)")
        worst = max(worst, diff)
    return worst


# -- load generators ----------------------------------------------------------------------------------
class Generator(Protocol):
    description: str

    def run(self, url: str, body: bytes, connections: int, seconds: float) -> RunResult: ...


_WRK_SCRIPT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(%s, "rb"))
wrk.body = f:read("*a")
f:close()

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %%d, "duration_us": %%d, "errors": %%d, "p50_us": %%.1f, "p99_us": %%.1f}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


class WrkGenerator:
    """``wrk`` with one thread, a Lua script that POSTs the body and reports its latency percentiles."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        version = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
        first = (version.stdout or version.stderr).splitlines()[0] if (version.stdout or version.stderr) else "wrk"
        self.description = f"{' '.join(first.split()[:2])}, 1 thread, same machine as the server"
        self._scripts: dict[bytes, Path] = {}

    def _script(self, body: bytes) -> Path:
        if body not in self._scripts:
            i = len(self._scripts)
            body_path = self.workdir / f"body{i}.json"
            body_path.write_bytes(body)
            script = self.workdir / f"post{i}.lua"
            script.write_text(_WRK_SCRIPT % json.dumps(str(body_path)))
            self._scripts[body] = script
        return self._scripts[body]

    def run(self, url: str, body: bytes, connections: int, seconds: float) -> RunResult:
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
               "-s", str(self._script(body)), url]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
        if out.returncode != 0 or line is None:
            raise BenchError(f"wrk failed ({out.returncode}): {out.stdout[-500:]} {out.stderr[-500:]}")
        res = json.loads(line.removeprefix("BENCH_JSON "))
        return RunResult(
            requests=int(res["requests"]),
            seconds=res["duration_us"] / 1e6,
            errors=int(res["errors"]),
            p50_ms=res["p50_us"] / 1e3,
            p99_ms=res["p99_us"] / 1e3,
        )


class HttpxGenerator:
    """A bounded asyncio loop: ``connections`` workers sharing one ``httpx.AsyncClient``, each POSTing in turn."""

    def __init__(self, max_requests: int = 1_000_000) -> None:
        self.max_requests = max_requests
        self.description = (
            f"httpx {importlib.metadata.version('httpx')} asyncio loop in the benchmark process, "
            "same machine as the server"
        )

    def run(self, url: str, body: bytes, connections: int, seconds: float) -> RunResult:
        return asyncio.run(self._run(url, body, connections, seconds))

    async def _run(self, url: str, body: bytes, connections: int, seconds: float) -> RunResult:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        headers = {"content-type": "application/json"}
        latencies: list[float] = []
        errors = 0
        async with httpx.AsyncClient(limits=limits, timeout=30.0, trust_env=False) as client:
            start = time.perf_counter()
            deadline = start + seconds

            async def worker() -> None:
                nonlocal errors
                while time.perf_counter() < deadline and len(latencies) + errors < self.max_requests:
                    t0 = time.perf_counter()
                    try:
                        r = await client.post(url, content=body, headers=headers)
                        ok = r.status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    if ok:
                        latencies.append(time.perf_counter() - t0)
                    else:
                        errors += 1

            await asyncio.gather(*(worker() for _ in range(connections)))
            elapsed = time.perf_counter() - start
        p50, p99 = np.percentile(latencies, [50, 99]) * 1e3 if latencies else (float("nan"), float("nan"))
        return RunResult(requests=len(latencies), seconds=elapsed, errors=errors, p50_ms=float(p50), p99_ms=float(p99))


class SocketGenerator:
    """A bounded asyncio loop on raw keep-alive sockets: ``connections`` workers, each sending one prepared
    HTTP/1.1 POST after another and reading the ``Content-Length`` answer. Several times cheaper per request
    than httpx, so the generator steals less CPU from the server; used when wrk is missing."""

    def __init__(self, max_requests: int = 1_000_000) -> None:
        self.max_requests = max_requests
        self.description = "asyncio keep-alive socket loop in the benchmark process, same machine as the server"

    def run(self, url: str, body: bytes, connections: int, seconds: float) -> RunResult:
        return asyncio.run(self._run(url, body, connections, seconds))

    async def _run(self, url: str, body: bytes, connections: int, seconds: float) -> RunResult:
        parts = httpx.URL(url)
        host, port = parts.host, parts.port or 80
        request = (
            f"POST {parts.raw_path.decode()} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        latencies: list[float] = []
        errors = 0
        start = time.perf_counter()
        deadline = start + seconds

        async def worker() -> None:
            nonlocal errors
            reader, writer = await asyncio.open_connection(host, port)
            try:
                while time.perf_counter() < deadline and len(latencies) + errors < self.max_requests:
                    t0 = time.perf_counter()
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), None)
                    if length is None:
                        raise BenchError(f"answer without Content-Length from {url}: {head[:200]!r}")
                    await reader.readexactly(length)
                    if head.startswith((b"HTTP/1.1 200 ", b"HTTP/1.0 200 ")):
                        latencies.append(time.perf_counter() - t0)
                    else:
                        errors += 1
            finally:
                writer.close()

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - start
        p50, p99 = np.percentile(latencies, [50, 99]) * 1e3 if latencies else (float("nan"), float("nan"))
        return RunResult(requests=len(latencies), seconds=elapsed, errors=errors, p50_ms=float(p50), p99_ms=float(p99))


GENERATORS = ("auto", "wrk", "socket", "httpx")


def pick_generator(choice: str, workdir: Path) -> Generator:
    """wrk if asked or (auto) on PATH; else the raw-socket asyncio loop, or the httpx loop if asked."""
    if choice == "wrk" or (choice == "auto" and shutil.which("wrk")):
        if not shutil.which("wrk"):
            raise BenchError("--generator wrk but wrk is not on PATH (Debian: apt-get install wrk)")
        return WrkGenerator(workdir)
    return HttpxGenerator() if choice == "httpx" else SocketGenerator()


def check_explain(url: str, X: np.ndarray, sizes: tuple[int, ...]) -> None:
    """``?explain=true`` answers 200 with one explanation per row, each with a contribution per feature."""
    for n in sizes:
        r = httpx.post(url + "/predict_proba?explain=true", content=bodies(X, n)["ours"],
                       headers={"content-type": "application/json"}, timeout=30.0, trust_env=False)
        explanations = r.json().get("explanations") if r.status_code == 200 else None
        if not explanations or len(explanations) != n or len(explanations[0]["contributions"]) != X.shape[1]:
            raise BenchError(f"/predict_proba?explain=true with {n} row(s) answered {r.status_code}: {r.text[:300]}")


def explain_table(scenarios: list[Scenario], summary: dict[str, dict[str, AppSummary]],
                  explained: dict[str, AppSummary]) -> list[list[str]]:
    """Rows of the explain-cost table: ours without and with ``?explain=true``, per scenario."""
    rows = []
    for sc in scenarios:
        plain, expl = summary[sc.key]["ours"], explained[sc.key]
        per_round = [e.rps / p.rps if p.rps > 0 else float("nan") for e, p in zip(expl.runs, plain.runs, strict=True)]
        metric, a, b = ("requests/s", plain.rps, expl.rps) if sc.rows == 1 else ("rows/s", plain.rows_per_s,
                                                                                 expl.rows_per_s)
        rows.append([f"{sc.label} ({sc.connections} conn.)", metric, _num(a), _num(b),
                     f"{statistics.median(per_round):.2f}"])
        rows.append(["", "p50 latency (ms)", f"{plain.p50_ms:.1f}", f"{expl.p50_ms:.1f}",
                     f"{expl.p50_ms / plain.p50_ms:.2f}"])
        rows.append(["", "p99 latency (ms)", f"{plain.p99_ms:.1f}", f"{expl.p99_ms:.1f}",
                     f"{expl.p99_ms / plain.p99_ms:.2f}"])
    return rows


EXPLAIN_HEADER = ["scenario", "metric", "ours", "ours ?explain=true", "explain/plain"]


# -- report -------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    versions = {p: importlib.metadata.version(p) for p in ("fastapi", "pydantic", "uvicorn", "numpy", "orjson")}
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": versions,
        "load_average_1min_at_start": _loadavg(),
        "service_revision": service_revision(),
    }


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _num(x: float) -> str:
    return f"{x:,.0f}".replace(",", " ") if x >= 100 else f"{x:.1f}"


def table_rows(scenarios: list[Scenario], summary: dict[str, dict[str, AppSummary]]) -> list[list[str]]:
    rows = []
    for sc in scenarios:
        bare, ours = summary[sc.key]["bare"], summary[sc.key]["ours"]
        per_round = ratios(summary[sc.key])
        ratio = statistics.median(per_round)
        spread = f" ({min(per_round):.2f}-{max(per_round):.2f})" if len(per_round) > 1 else ""
        verdict = "PASS" if ratio >= sc.target else "MISS"
        metric, b, o = ("requests/s", bare.rps, ours.rps) if sc.rows == 1 else ("rows/s", bare.rows_per_s,
                                                                                 ours.rows_per_s)
        label = f"{sc.label} ({sc.connections} conn.)"
        rows.append([label, metric, _num(b), _num(o), f"{ratio:.2f}{spread}", f">= {sc.target:.1f} {verdict}"])
        rows.append(["", "p50 latency (ms)", f"{bare.p50_ms:.1f}", f"{ours.p50_ms:.1f}",
                     f"{ours.p50_ms / bare.p50_ms:.2f}", ""])
        rows.append(["", "p99 latency (ms)", f"{bare.p99_ms:.1f}", f"{ours.p99_ms:.1f}",
                     f"{ours.p99_ms / bare.p99_ms:.2f}", ""])
        rows.append(["", "server CPU (of one core)", _pct(bare.server_cpu), _pct(ours.server_cpu), "", ""])
    return rows


HEADER = ["scenario", "metric", "bare FastAPI", "logreg-service", "ours/bare", "target"]


def unsaturated(scenarios: list[Scenario], summary: dict[str, dict[str, AppSummary]]) -> list[str]:
    """Runs where a server kept less than SATURATED of a core busy: the generator, not the server, was the limit."""
    return [f"{sc.label}: {app}" for sc in scenarios for app in APPS
            if (cpu := summary[sc.key][app].server_cpu) is not None and cpu < SATURATED]


def text_table(rows: list[list[str]], header: list[str] = HEADER) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {2, 3, 4}

    def fmt(r: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths,
                                                                                                  strict=True)))

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)])


def markdown_table(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(HEADER) + " |", "|" + "|".join(["---", "---", "---:", "---:", "---:", "---"]) + "|"]
    out += ["| " + " | ".join(c.replace(">=", "≥") for c in r) + " |" for r in rows]
    return "\n".join(out)


# -- main ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=5.0, help="seconds of each timed run (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of the discarded warm-up before each run")
    p.add_argument("--rounds", type=int, default=3, help="rounds of (bare, ours) runs per scenario; medians")
    p.add_argument("--connections", type=int, default=16, help="concurrent connections, 1-row bodies (16)")
    p.add_argument("--batch-connections", type=int, default=4, help="concurrent connections, big bodies (4)")
    p.add_argument("--batch-rows", type=int, default=1000, help="rows per big body (default 1000)")
    p.add_argument("--generator", choices=GENERATORS, default="auto",
                   help="load generator: wrk if on PATH (auto), else an asyncio raw-socket loop; or an httpx loop")
    p.add_argument("--markdown", action="store_true", help="also print a README-ready markdown table")
    p.add_argument("--no-explain", dest="explain", action="store_false",
                   help="skip the runs of our /predict_proba?explain=true (the cost of explanations)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the raw numbers to PATH")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.warmup < 0 or args.rounds < 1:
        p.error("--duration must be > 0, --warmup >= 0 and --rounds >= 1")
    if min(args.connections, args.batch_connections, args.batch_rows) < 1:
        p.error("--connections, --batch-connections and --batch-rows must be >= 1")
    return args


def log(msg: str) -> None:
    print(f"[serve-bench] {msg}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    scenarios = [
        Scenario("one_row", "1-row bodies", 1, args.connections, 1.0),
        Scenario("batch", f"{args.batch_rows}-row bodies", args.batch_rows, args.batch_connections, 3.0),
    ]
    generator = pick_generator(args.generator, workdir)
    log(f"load generator: {generator.description}")
    X, _ = load_features()
    servers: dict[str, Server] = {}
    try:
        store = workdir / "model_store"
        servers["ours"] = start_server(
            "ours", ["service.app:create_app_from_env", "--factory"],
            # warning, like uvicorn's --log-level: no access-log line per request, as for the bare app
            server_env({"LOGREG_MODEL_STORE": str(store), "LOGREG_LOG_LEVEL": "warning"}), workdir, "/healthz",
        )
        card = train_model(servers["ours"].url)
        weights_path = workdir / "bare_weights.json"
        weights_path.write_text(json.dumps(bare_weights(card)))
        servers["bare"] = start_server(
            "bare", ["bare_app:app", "--app-dir", str(BENCH_DIR)],
            server_env({"BENCH_BARE_WEIGHTS": str(weights_path)}), workdir, "/openapi.json",
        )
        urls = {app: servers[app].url for app in APPS}
        diff = check_answers(urls, X, tuple(sc.rows for sc in scenarios))
        log(f"correctness: both apps answer 200, same shapes, probabilities within {diff:.1e}")
        if args.explain:
            check_explain(urls["ours"], X, tuple(sc.rows for sc in scenarios))

        runs: dict[str, dict[str, list[RunResult]]] = {sc.key: {app: [] for app in APPS} for sc in scenarios}
        explain_runs: dict[str, list[RunResult]] = {sc.key: [] for sc in scenarios}
        for rnd in range(args.rounds):
            order = APPS if rnd % 2 == 0 else APPS[::-1]
            for sc in scenarios:
                body = bodies(X, sc.rows)
                for label in order + (("explain",) if args.explain else ()):  # explain: ours, right after
                    app = "ours" if label == "explain" else label
                    url = urls[app] + ("/predict_proba?explain=true" if label == "explain" else "/predict_proba")
                    if args.warmup > 0:
                        generator.run(url, body[app], sc.connections, args.warmup)
                    cpu0, t0 = cpu_seconds(servers[app].proc.pid), time.perf_counter()
                    res = generator.run(url, body[app], sc.connections, args.duration)
                    cpu1, t1 = cpu_seconds(servers[app].proc.pid), time.perf_counter()
                    if cpu0 is not None and cpu1 is not None:
                        res = dataclasses.replace(res, server_cpu=(cpu1 - cpu0) / (t1 - t0))
                    if servers[app].proc.poll() is not None:
                        raise BenchError(f"{app} server died during the run:\n{servers[app].log_tail()}")
                    (explain_runs[sc.key] if label == "explain" else runs[sc.key][app]).append(res)
                    log(f"round {rnd + 1}/{args.rounds} {sc.label:<16} {label:<4}: {res.rps:8.1f} req/s "
                        f"({res.rps * sc.rows:10.0f} rows/s), p50 {res.p50_ms:6.1f} ms, p99 {res.p99_ms:6.1f} ms, "
                        f"server CPU {_pct(res.server_cpu)}"
                        + (f", {res.errors} ERRORS" if res.errors else ""))
    finally:
        for server in servers.values():
            stop_server(server)
    summary = {sc.key: {app: AppSummary.of(runs[sc.key][app], sc.rows) for app in APPS} for sc in scenarios}
    explained = {sc.key: AppSummary.of(explain_runs[sc.key], sc.rows) for sc in scenarios} if args.explain else None
    errors = sum(s.errors for per in summary.values() for s in per.values())
    errors += sum(s.errors for s in (explained or {}).values())
    if errors:
        raise BenchError(f"{errors} requests failed during the timed runs; the numbers are not comparable")
    return {"scenarios": scenarios, "summary": summary, "generator": generator.description, "max_diff": diff,
            "explained": explained}


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally that stops the servers


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    start = time.perf_counter()
    machine = machine_info()
    try:
        with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
            out = run(args, Path(tmp))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    total = time.perf_counter() - start
    machine["load_average_1min_at_end"] = _loadavg()
    scenarios: list[Scenario] = out["scenarios"]
    summary: dict[str, dict[str, AppSummary]] = out["summary"]
    rows = table_rows(scenarios, summary)
    m = machine
    print(f"POST /predict_proba, uvicorn --workers 1 on loopback, each app loaded for {args.duration:g} s "
          f"after a {args.warmup:g} s warm-up; medians of {args.rounds} interleaved rounds")
    print(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['date_utc']}; "
          + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    print(f"service: {m['service_revision']}")
    print(f"generator: {out['generator']} (it shares the {m['cores']} cores with the server)")
    print(f"1-min load average: {m['load_average_1min_at_start']} at start, {m['load_average_1min_at_end']} at end "
          "(the benchmark itself accounts for about 2: more means other processes competed for the cores)")
    print()
    print(text_table(rows))
    if starved := unsaturated(scenarios, summary):
        print(f"\nWARNING: the server kept less than {SATURATED:.0%} of a core busy in: {'; '.join(starved)}. "
              "The load generator (or other processes on the machine) was the limit there, not the server, so "
              "that ratio understates the difference" + ("; wrk loads harder (apt-get install wrk)."
                                                         if "wrk" not in out["generator"] else "."))
    explained: dict[str, AppSummary] | None = out["explained"]
    if explained is not None:
        print()
        print("The cost of explanations: our /predict_proba without and with ?explain=true (same rounds)")
        print(text_table(explain_table(scenarios, summary, explained), EXPLAIN_HEADER))
    if args.markdown:
        print()
        print(markdown_table(rows))
        print()
        print(f"_{m['cpu']}, {m['cores']} cores, {m['date_utc']}; load from {out['generator']}; "
              f"{args.rounds} rounds of {args.duration:g} s, medians (ratio: median of the per-round ratios, "
              "range in brackets). `.venv/bin/python benchmarks/serve.py`_")
    print()
    print(f"total runtime {total:.1f} s")
    if args.json is not None:
        payload = {
            "machine": machine,
            "generator": out["generator"],
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "max_probability_diff": out["max_diff"],
            "scenarios": [
                dataclasses.asdict(sc) | {
                    "ratio": statistics.median(ratios(summary[sc.key])),
                    "ratio_per_round": ratios(summary[sc.key]),
                    **{app: dataclasses.asdict(summary[sc.key][app]) for app in APPS},
                }
                for sc in scenarios
            ],
            "explain": None if explained is None else {
                sc.key: dataclasses.asdict(explained[sc.key]) for sc in scenarios
            },
            "total_runtime_s": total,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"raw numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
