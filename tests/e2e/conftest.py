"""A real uvicorn server on a free loopback port, started through the same entry point as `make run`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..support import Samples, parse_samples


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    store: Path
    process: subprocess.Popen[bytes]
    log: Path


#: ``PYTHONPATH`` entry whose ``sitecustomize`` pauses every save before it is published, by
#: ``LOGREG_TEST_WRITE_DELAY`` seconds (see ``slow_publish/sitecustomize.py``).
SLOW_PUBLISH = Path(__file__).resolve().parent / "slow_publish"


def slow_publish_env(delay: float) -> dict[str, str]:
    """The environment that makes a server's saves pause ``delay`` seconds before publishing (crash tests)."""
    path = os.pathsep.join(p for p in (str(SLOW_PUBLISH), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "LOGREG_TEST_WRITE_DELAY": str(delay)}


def start_server(store: Path, log: Path, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 60.0) -> Server:
    """Run ``python -m service serve`` on 127.0.0.1 and wait until /healthz answers."""
    return wait_until_healthy(spawn_server(store, log, *args, env=env), timeout)


# ``python -m service serve`` with the imports (most of a start-up) done first, then parked on stdin
# until release_server(): a crash test restarts the server many times and keeps the next one ready.
_PARKED = "import sys, uvicorn, service.app, service.cli\nif sys.stdin.readline():\n    sys.exit(service.cli.main())\n"


def spawn_server(store: Path, log: Path, *args: str, env: dict[str, str] | None = None,
                 parked: bool = False) -> Server:
    """Start ``python -m service serve`` on a free loopback port in its own session; do not wait for it.

    ``parked``: run the same ``logreg serve`` entry point after importing everything, but only once
    :func:`release_server` is called (closing stdin without releasing makes it exit).
    """
    port = free_port()
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port), "--store", str(store), "--log-level", "warning",
             *args]
    cmd = [sys.executable, "-c", _PARKED, *serve] if parked else [sys.executable, "-m", "service", *serve]
    with log.open("wb") as fh:
        process = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, **(env or {})},
                                   stdin=subprocess.PIPE if parked else None)
    return Server(f"http://127.0.0.1:{port}", store, process, log)


def release_server(server: Server) -> Server:
    """Let a server spawned with ``parked=True`` start serving (then wait_until_healthy)."""
    stdin = server.process.stdin
    if stdin is not None and not stdin.closed:
        with contextlib.suppress(BrokenPipeError):
            stdin.write(b"go\n")
            stdin.close()
    return server


def wait_until_healthy(server: Server, timeout: float = 60.0, poll: float = 0.1) -> Server:
    """Wait until a spawned server's /healthz answers 200; stop it and raise if it exits or never does."""
    process, log = server.process, server.log
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(poll)
    stop_server(server)
    raise RuntimeError(f"server did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def stop_server(server: Server) -> None:
    """Stop the server by its PID (its session holds the workers), then make sure it is gone."""
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=5)


def kill_server(server: Server) -> None:
    """``kill -9`` the server's whole process group (the server and any uvicorn workers), then reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=30)


def fresh(server: Server, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request on a new connection, so the kernel may hand it to any worker."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        return client.request(method, path, **kwargs)


def scrape(server: Server) -> Samples:
    """``GET /monitoring/metrics`` on a new connection (whichever worker answers), parsed."""
    resp = fresh(server, "GET", "/monitoring/metrics")
    assert resp.status_code == 200
    return parse_samples(resp.text)


def temp_entries(store: Path) -> list[Path]:
    """Every ``.tmp-*`` entry in the registry root or directly inside a model directory."""
    if not store.is_dir():
        return []
    found = [p for p in store.iterdir() if p.name.startswith(".tmp-")]
    for model_dir in store.iterdir():
        if model_dir.is_dir() and not model_dir.name.startswith("."):
            found += [p for p in model_dir.iterdir() if p.name.startswith(".tmp-")]
    return sorted(found)


@pytest.fixture(scope="module")
def two_worker_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("e2e")
    server = start_server(root / "model_store", root / "server.log", "--workers", "2", "--demo")
    try:
        yield server
    finally:
        stop_server(server)
