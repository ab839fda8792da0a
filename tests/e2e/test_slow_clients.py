"""Slow and abandoned requests against a real uvicorn: headers that never finish are cut off, a body that
stalls is a 408, and beyond LOGREG_MAX_OPEN_BODIES bodies in flight a worker answers 503 instead of holding
more of them."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import Server, start_server, stop_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("slow")
    srv = start_server(root / "store", root / "server.log", env={
        "LOGREG_HEADER_TIMEOUT_SECONDS": "1", "LOGREG_BODY_IDLE_SECONDS": "1", "LOGREG_MAX_OPEN_BODIES": "2"})
    try:
        yield srv
    finally:
        stop_server(srv)


def _connect(server: Server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _read_all(sock: socket.socket, limit: float = 8.0) -> bytes:
    """What the server sends until it closes the connection (bounded in time)."""
    sock.settimeout(limit)
    data = b""
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def _partial_body(server: Server) -> socket.socket:
    sock = _connect(server)
    host = server.url.removeprefix("http://")
    sock.sendall(f"POST /predict_proba HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                 "Content-Length: 1000\r\n\r\n".encode() + b'{"model": "m", "features": [[1.0')
    return sock


def test_headers_that_never_finish_are_cut_off(server: Server) -> None:
    sock = _connect(server)
    start = time.monotonic()
    sock.sendall(b"POST /predict_proba HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
    assert _read_all(sock) == b""  # closed without an answer
    assert 0.5 < time.monotonic() - start < 6
    sock.close()


def test_a_body_that_stalls_is_a_408(server: Server) -> None:
    sock = _partial_body(server)
    start = time.monotonic()
    answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"LOGREG_BODY_IDLE_SECONDS" in answer
    assert 0.5 < time.monotonic() - start < 6
    sock.close()


def test_beyond_the_open_bodies_cap_a_worker_answers_503(server: Server, tmp_path: Path) -> None:
    held = [_partial_body(server) for _ in range(2)]
    try:
        time.sleep(0.2)
        third = _partial_body(server)
        answer = _read_all(third, 3.0)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        assert b"retry-after: 1" in answer.lower() and b"LOGREG_MAX_OPEN_BODIES" in answer
        third.close()
    finally:
        for sock in held:
            sock.close()
    time.sleep(1.5)  # the held bodies time out; the worker is free again
    sock = _connect(server)
    host = server.url.removeprefix("http://")
    sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    assert _read_all(sock).startswith(b"HTTP/1.1 200")
    sock.close()


def test_bodies_in_flight_are_bounded_in_bytes(tmp_path: Path) -> None:
    """Ten senders each sending 40 kB of a declared 50 kB body and stopping: past the bytes cap (100 kB here) the
    next body is refused with 503 at once, not held."""
    srv = start_server(tmp_path / "store", tmp_path / "server.log", env={
        "LOGREG_BODY_IDLE_SECONDS": "5", "LOGREG_MAX_BODY_BYTES_IN_FLIGHT": "100000"})
    host = srv.url.removeprefix("http://")
    socks = []
    try:
        answers = []
        for _ in range(4):
            sock = _connect(srv)
            sock.sendall(f"POST /predict_proba HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                         "Content-Length: 50000\r\n\r\n".encode() + b"[" * 40_000)
            socks.append(sock)
            time.sleep(0.3)
        for sock in socks:
            sock.settimeout(0.5)
            with contextlib.suppress(TimeoutError):
                answers.append(sock.recv(200))
        refused = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
        assert len(refused) >= 2, answers  # the third and fourth pass 100 kB together with the first two
    finally:
        for sock in socks:
            sock.close()
        stop_server(srv)


def test_a_body_trickling_in_is_a_408_and_a_long_answer_is_never_cut(tmp_path: Path) -> None:
    """A byte every half second keeps each pause short but the rate far too low: 408 once the idle time has
    passed. And the header timer starts after an answer, not while one is being computed."""
    srv = start_server(tmp_path / "store", tmp_path / "server.log", env={
        "LOGREG_BODY_IDLE_SECONDS": "1", "LOGREG_HEADER_TIMEOUT_SECONDS": "1"})
    host = srv.url.removeprefix("http://")
    try:
        sock = _connect(srv)
        sock.sendall(f"POST /predict_proba HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     "Content-Length: 100\r\n\r\n".encode())
        answer = b""
        sock.settimeout(0.5)
        for _ in range(12):  # bounded: at most 6 s of trickling
            with contextlib.suppress(OSError):
                sock.sendall(b" ")
            with contextlib.suppress(TimeoutError):
                answer += sock.recv(4096)
            if answer:
                break
        answer += _read_all(sock, 3.0)  # the rest of the answer, until the server closes
        assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
        # the rate limit, or on a starved machine a pause over the idle limit: a 408 either way
        assert b"LOGREG_BODY_MIN_BYTES_PER_SECOND" in answer or b"LOGREG_BODY_IDLE_SECONDS" in answer, answer
        sock.close()
        # a training that takes longer than the header timeout is answered, not cut
        rows = [[float(i % 7), float(i % 5)] for i in range(1000)]
        body = {"model": "slow", "features": rows, "labels": [i % 2 for i in range(1000)],
                "params": {"solver": "sgd", "batch_size": 1, "max_iter": 120, "tol": 0, "n_iter_no_change": 10000}}
        resp = httpx.post(f"{srv.url}/train", json=body, timeout=60)
        assert resp.status_code == 201, resp.text
        assert resp.json()["duration_seconds"] > 2.0  # twice the header timeout
    finally:
        stop_server(srv)
