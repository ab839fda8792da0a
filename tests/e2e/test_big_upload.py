"""A multipart CSV upload larger than LOGREG_MAX_BODY_BYTES (50 MB) trains on a real uvicorn, and the server's
peak memory stays well below what holding the body would cost: the upload is spooled to disk and read from
there in record batches into the matrix.

The server runs one training at a time, and the test holds that slot (as another worker sharing the registry
would) while the big upload arrives: the upload is read, inside the request, before its 202, and its fit waits
for the slot, so the peak after the 202 is that of receiving and reading alone; the peak after the job is that
of the whole training."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from service.store.jobs import SlotPool

from .conftest import Server, start_server, stop_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MAX_BODY_BYTES = 50 * 1024 * 1024  # the default LOGREG_MAX_BODY_BYTES
FEATURES = 5
NAMES = [f"x{j}" for j in range(FEATURES)]
MIB = 2**20


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak resident set since the process started) of a process, in bytes."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def write_csv(path: Path, target_bytes: int, seed: int = 11) -> int:
    """Random rows (full-precision floats, about 100 bytes a row) until the file passes ``target_bytes``; written
    a chunk at a time, so the test never holds the text. Returns the number of rows."""
    rng = np.random.default_rng(seed)
    rows = 0
    with pa.OSFile(str(path), "wb") as sink:
        writer = None
        while sink.tell() < target_bytes:
            X = rng.normal(size=(50_000, FEATURES))
            y = (X[:, 0] - 0.5 * X[:, 1] + rng.normal(size=len(X)) > 0).astype(np.int64)
            chunk = pa.table({**{n: X[:, j] for j, n in enumerate(NAMES)}, "y": y})
            if writer is None:
                writer = pcsv.CSVWriter(sink, chunk.schema)
            writer.write_table(chunk)
            rows += len(X)
        assert writer is not None
        writer.close()
    return rows


def job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    resp = client.get(f"/jobs/{job_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait_for(client: httpx.Client, job_id: str, states: tuple[str, ...] = ("succeeded", "failed", "cancelled"),
             timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        current = job(client, job_id)
        if current["state"] in states:
            return current
        assert time.monotonic() < deadline, current
        time.sleep(0.05)


def upload(client: httpx.Client, path: Path, model: str, **form: str) -> httpx.Response:
    with path.open("rb") as fh:  # streamed from the file by httpx, never read whole here
        return client.post("/train?background=true", files={"file": (path.name, fh, "text/csv")},
                           data={"model": model, "target": "y", **form})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("big-upload")
    started = start_server(root / "model_store", root / "server.log",
                           env={"LOGREG_MAX_CONCURRENT_TRAININGS": "1", "LOGREG_TRAIN_TIMEOUT_SECONDS": "120"})
    try:
        yield started
    finally:
        stop_server(started)


def test_an_upload_over_the_body_limit_trains_without_holding_the_body(server: Server, tmp_path: Path) -> None:
    began = time.monotonic()
    pid = server.process.pid
    big = tmp_path / "big.csv"
    rows = write_csv(big, 60 * MIB)
    size = big.stat().st_size
    assert size > MAX_BODY_BYTES

    with httpx.Client(base_url=server.url, timeout=120) as client:
        # A small training through the same path first: the lazy imports, thread pools and allocator arenas of a
        # first training are paid then, so what follows measures what the big body costs.
        warm = tmp_path / "warm.csv"
        write_csv(warm, 100_000, seed=1)
        resp = upload(client, warm, "warm")
        assert resp.status_code == 202, resp.text
        assert wait_for(client, resp.json()["id"])["state"] == "succeeded"

        # The one training slot is taken, as another worker sharing the registry would take it: the big
        # upload is read in its request, and its job waits.
        with SlotPool(server.store, 1).acquire():
            before = memory(pid)
            resp = upload(client, big, "big", params='{"max_iter": 20}', validation_fraction="0.1")
            assert resp.status_code == 202, resp.text  # not 413: uploads have their own limit
            read = memory(pid)  # the upload is received and read into the matrix before the 202
            big_id = resp.json()["id"]
            time.sleep(0.3)
            assert job(client, big_id)["state"] == "queued"  # its fit waits for the slot: none of it counted yet
        done = wait_for(client, big_id)
        after = memory(pid)

    assert done["state"] == "succeeded", done
    report = done["result"]
    assert report["n_samples"] == rows and report["feature_names"] == NAMES
    matrix = rows * FEATURES * 8
    reading = read["VmHWM"] - before["VmRSS"]
    training = after["VmHWM"] - before["VmRSS"]
    print(f"\nbody {size / MIB:.1f} MiB ({rows} rows), matrix {matrix / MIB:.1f} MiB; server RSS before "
          f"{before['VmRSS'] / MIB:.1f} MiB (peak so far {before['VmHWM'] / MIB:.1f}); peak after the upload was read "
          f"{read['VmHWM'] / MIB:.1f} MiB (+{reading / MIB:.1f} = {reading / size:.2f} x the body); peak after "
          f"training {after['VmHWM'] / MIB:.1f} MiB (+{training / MIB:.1f} = {training / size:.2f} x the body); "
          f"{time.monotonic() - began:.1f} s")
    # Receiving and reading: the matrix, the labels and the allocators' first-use caches (about 0.8-1.1 x the
    # body here), not the body: holding it once would add 1 x to that.
    assert reading < 1.5 * size, "receiving and reading the upload cost 1.5 x the body: is it held in memory?"
    # The whole training, the fit's working copies included: well under three times the body.
    assert training < 3 * size
