"""A real uvicorn server on a free loopback port, started through the same entry point as `make run`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest


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


def start_server(store: Path, log: Path, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 60.0) -> Server:
    """Run ``python -m service serve`` on 127.0.0.1 and wait until /healthz answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--store", str(store), "--log-level", "warning", *args]
    with log.open("wb") as fh:
        process = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return Server(url, store, process, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_server(Server(url, store, process, log))
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


@pytest.fixture(scope="module")
def two_worker_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("e2e")
    server = start_server(root / "model_store", root / "server.log", "--workers", "2", "--demo")
    try:
        yield server
    finally:
        stop_server(server)
