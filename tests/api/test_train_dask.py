"""POST /train's `compute` without a cluster: what is refused, and how, before any work starts. (Trainings on a
real Dask cluster are in tests/e2e/test_dask.py.)

`"compute": "dask"` without LOGREG_DASK_SCHEDULER is a 422 naming the setting; without Dask installed a 503 says
how to install it; rows in the body and mini-batch solvers are 422s naming what to do instead; an unreachable
scheduler is a 503 within the connect timeout; `"compute": "local"` trains here as before."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.services import distributed

from .conftest import BREAST_CANCER_CSV

Check = Callable[..., dict[str, Any]]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    (path / "bc.csv").write_bytes(BREAST_CANCER_CSV.read_bytes())
    return path


def _body(root: Path, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "data": {"uri": str(root / "bc.csv"), "target": "diagnosis"}, **extra}


def _nobody_listens() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def test_compute_dask_without_a_scheduler_is_422_naming_the_setting(
        make_client: Callable[..., TestClient], root: Path, api_error: Check) -> None:
    client = make_client(data_roots=str(root))
    err = api_error(client.post("/train", json=_body(root, compute="dask")), 422, "invalid_input",
                    "LOGREG_DASK_SCHEDULER")
    assert err["details"] == {"field": "compute", "setting": "LOGREG_DASK_SCHEDULER"}
    assert client.get("/models/m").status_code == 404


def test_without_dask_installed_a_dask_training_is_503_saying_how_to_install_it(
        make_client: Callable[..., TestClient], root: Path, api_error: Check, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(distributed, "dask_available", lambda: False)
    client = make_client(data_roots=str(root), dask_scheduler=_nobody_listens())
    for body in (_body(root, compute="dask"), _body(root)):  # asked for, or by default with a scheduler set
        err = api_error(client.post("/train", json=body), 503, "cluster_unavailable",
                        "pip install 'logreg-service[dask]'")
        assert err["details"] == {"install": "pip install 'logreg-service[dask]'"}
    # ... and everything else works as without Dask: rows in the body, and a table with compute "local"
    assert client.post("/train", json={"model": "rows", "features": [[0.0], [1.0], [2.0], [3.0]],
                                       "labels": [0, 0, 1, 1], "validation_fraction": 0}).status_code == 201
    resp = client.post("/train", json=_body(root, compute="local"))
    assert resp.status_code == 201, resp.text
    assert "trained_on" not in resp.json()


def test_rows_in_the_body_do_not_go_to_dask(make_client: Callable[..., TestClient], api_error: Check) -> None:
    client = make_client(dask_scheduler=_nobody_listens())
    body = {"model": "m", "features": [[0.0], [1.0]], "labels": [0, 1], "compute": "dask"}
    api_error(client.post("/train", json=body), 422, "invalid_input", "`data` URI")
    del body["compute"]  # "auto": rows train here even with a scheduler configured
    body.update(features=[[0.0], [1.0], [2.0], [3.0]], labels=[0, 0, 1, 1], validation_fraction=0)
    assert client.post("/train", json=body).status_code == 201


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_mini_batch_solvers_on_dask_are_422_naming_the_full_batch_ones(
        make_client: Callable[..., TestClient], root: Path, api_error: Check, solver: str) -> None:
    client = make_client(data_roots=str(root), dask_scheduler=_nobody_listens())
    err = api_error(client.post("/train", json=_body(root, params={"solver": solver})), 422, "invalid_input",
                    ("full-batch solver: lbfgs, newton, proximal", repr(solver)))
    assert err["details"]["full_batch_solvers"] == ["lbfgs", "newton", "proximal"]


def test_an_encoding_on_dask_is_422(make_client: Callable[..., TestClient], root: Path, api_error: Check) -> None:
    client = make_client(data_roots=str(root), dask_scheduler=_nobody_listens())
    api_error(client.post("/train", json=_body(root, encoding={"impute": "median"})), 422, "invalid_input",
              '"compute": "local"')


@pytest.mark.skipif(not distributed.dask_available(), reason="needs the dask extra")
def test_an_unreachable_scheduler_is_503_within_the_connect_timeout(
        make_client: Callable[..., TestClient], root: Path, api_error: Check) -> None:
    address = _nobody_listens()
    client = make_client(data_roots=str(root), dask_scheduler=address, dask_connect_timeout_seconds=1)
    start = time.monotonic()
    err = api_error(client.post("/train", json=_body(root)), 503, "cluster_unavailable",
                    (f"cannot reach the Dask scheduler at '{address}' within 1 s", "LOGREG_DASK_SCHEDULER"))
    assert err["details"] == {"scheduler": address}
    assert time.monotonic() - start < 10
    assert client.get("/models/m").status_code == 404
