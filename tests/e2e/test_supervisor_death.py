"""`logreg serve --workers 2` killed outright (``kill -9`` of the supervisor): its workers stop on their own,
the port is free for the next start, and the next start removes the Prometheus directory left behind."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from .conftest import start_server, stop_server

pytestmark = pytest.mark.e2e


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie waiting for its reaper is gone too
        return fh.read().split(")")[-1].split()[0] != "Z"


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    server = start_server(tmp_path / "store", tmp_path / "server.log", "--workers", "2")
    try:
        workers = set()
        deadline = time.monotonic() + 20
        while len(workers) < 2 and time.monotonic() < deadline:
            workers.add(httpx.get(f"{server.url}/healthz", timeout=5).json()["pid"])
        assert len(workers) == 2
        prometheus = Path(tempfile.gettempdir()) / f"logreg-prometheus-{server.process.pid}"
        assert prometheus.is_dir()
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in workers), "workers outlived their supervisor"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{server.url}/healthz", timeout=2)
        assert prometheus.is_dir()  # left behind by the kill ...
        again = start_server(tmp_path / "store", tmp_path / "again.log", "--workers", "2")
        try:
            assert not prometheus.exists()  # ... and removed by the next start
        finally:
            stop_server(again)
    finally:
        if server.process.poll() is None:
            stop_server(server)
