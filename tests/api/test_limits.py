"""Limits that protect the process, one test (at least) each, with tiny settings.

Body size (413 before the body is read), rows per prediction, rows x features per training set, the
``max_iter`` cap, the training wall-clock limit (the run stops, nothing lands on disk) and the cap on
concurrent trainings (429 with ``Retry-After``). All of them are settings with documented defaults.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from service.app import create_app
from service.config import Settings
from service.store.jobs import SlotPool

from .conftest import asgi_post

TOY = {
    "model": "toy",
    "features": [[0.0, 1.0], [1.0, 0.5], [2.0, 2.5], [3.0, 3.0], [0.5, 0.2], [2.5, 2.0], [0.2, 0.9], [2.8, 2.6]],
    "labels": [0, 0, 1, 1, 0, 1, 0, 1],
    "validation_fraction": 0,
}
SMALL_CSV = b"a,b,y\n0,1,0\n1,0.5,0\n2,2.5,1\n3,3,1\n0.5,0.2,0\n2.5,2,1\n"


def slow_body(model: str = "slow", rows: int = 2000, **params: Any) -> dict[str, Any]:
    """A training that takes ~0.1 s per epoch (one-row mini-batches) and runs every one of its epochs."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 4))
    y = (X[:, 0] + 0.5 * rng.normal(size=rows) > 0).astype(int)
    return {
        "model": model, "features": X.tolist(), "labels": y.tolist(), "validation_fraction": 0,
        "params": {"solver": "sgd", "batch_size": 1, "max_iter": 500, "tol": 0, "learning_rate": 0.001, **params},
    }


def store_entries(store: Path) -> list[str]:
    """Every file and directory under the store except the slot and job bookkeeping."""
    return sorted(
        str(p.relative_to(store)) for p in store.rglob("*")
        if p.relative_to(store).parts[0] not in (".slots", ".jobs")
    )


# -- settings -------------------------------------------------------------------------------------------
LIMITS = {
    "max_body_bytes": 50 * 1024 * 1024,
    "max_predict_rows": 100_000,
    "max_iter_limit": 100_000,
    "train_timeout_seconds": 600.0,
    "max_concurrent_trainings": 2,
    "background_train_cells": 2_000_000,
}


@pytest.mark.parametrize(("field", "default"), LIMITS.items())
def test_every_limit_is_a_documented_setting(field, default, monkeypatch):
    info = Settings.model_fields[field]
    assert info.default == default
    assert info.description and len(info.description) > 10
    monkeypatch.setenv(f"LOGREG_{field.upper()}", "2048")
    assert getattr(Settings(), field) == 2048


@pytest.mark.parametrize("field", list(LIMITS))
def test_limits_must_be_positive(field):
    with pytest.raises(ValueError, match=field):
        Settings(**{field: 0})


# -- body size ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/train", "/predict_proba"])
def test_body_over_the_limit_is_refused_without_reading_it(tmp_path, path):
    app = create_app(Settings(model_store=tmp_path / "store", max_body_bytes=4096))
    body = json.dumps({**TOY, "features": TOY["features"] * 300, "labels": TOY["labels"] * 300}).encode()
    assert len(body) > 8 * 4096
    answer = asgi_post(app, path, body, content_length=True)
    assert answer.status == 413
    assert answer.json()["error"]["type"] == "limit_exceeded"
    assert answer.json()["error"]["details"] == {"limit": 4096}
    assert answer.pulled == 0  # Content-Length said it all: not one byte was read
    answer = asgi_post(app, path, body, content_length=False)
    assert answer.status == 413
    assert answer.json()["error"]["type"] == "limit_exceeded"
    assert answer.pulled <= 4096 // 512 + 1  # streamed: refused as soon as the limit was passed


def test_body_at_the_limit_is_accepted(make_client):
    raw = json.dumps(TOY).encode()
    client = make_client(max_body_bytes=max(1024, len(raw)))
    resp = client.post("/train", content=raw, headers={"content-type": "application/json"})
    assert resp.status_code == 201, resp.text


# -- rows per prediction --------------------------------------------------------------------------------
def test_rows_per_prediction(make_client, api_error):
    client = make_client(max_predict_rows=3)
    assert client.post("/train", json=TOY).status_code == 201
    rows = TOY["features"]
    for route, extra in (("/predict_proba", {}), ("/predict", {}), ("/metrics", {"labels": TOY["labels"][:4]})):
        ok_extra = {k: v[:3] for k, v in extra.items()}
        resp = client.post(route, json={"model": "toy", "features": rows[:3], **ok_extra})
        assert resp.status_code == 200, (route, resp.text)
        err = api_error(client.post(route, json={"model": "toy", "features": rows[:4], **extra}), 413,
                        "limit_exceeded", "4 rows")
        assert err["details"]["limit"] == 3
        records = [{"x0": r[0], "x1": r[1]} for r in rows[:4]]
        api_error(client.post(route, json={"model": "toy", "records": records, **extra}), 413, "limit_exceeded")


def test_training_limits_default_to_the_machines_memory(monkeypatch):
    """In memory up to a quarter of it; out of core (on disk) up to four times it; 413 beyond."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert Settings().train_memory_bytes == memory // 4
    assert Settings().max_train_bytes == memory * 4
    assert "bytes" in (Settings.model_fields["max_train_bytes"].description or "")
    monkeypatch.setenv("LOGREG_MAX_TRAIN_BYTES", "2048")
    assert Settings().max_train_bytes == 2048
    with pytest.raises(ValidationError):
        Settings(max_train_bytes=0)


# -- bytes of the training matrix -----------------------------------------------------------------------
def test_training_bytes(make_client, api_error):
    client = make_client(max_train_bytes=128)  # TOY is 8 x 2 float64 = 128 bytes
    assert client.post("/train", json=TOY).status_code == 201
    bigger = {**TOY, "features": [[*r, 1.0] for r in TOY["features"]]}  # 8 x 3 x 8 = 192 bytes
    err = api_error(client.post("/train", json=bigger), 413, "limit_exceeded", "8 x 3 values = 192 bytes")
    assert err["details"] == {"rows": 8, "features": 3, "bytes": 192, "limit": 128}
    # refused before any job is made, in the background too
    api_error(client.post("/train?background=true", json=bigger), 413, "limit_exceeded")
    csv = client.post("/train", files={"file": ("d.csv", b"a,b,c,y\n" + b"1,2,3,0\n3,2,1,1\n" * 3)},
                      data={"model": "csv", "target": "y"})
    api_error(csv, 413, "limit_exceeded", "6 x 3 values = 144 bytes")
    assert [m["name"] for m in client.get("/models").json()["models"]] == ["toy"]
    assert not (client.app.state.services.registry.root / ".jobs").exists()  # type: ignore[attr-defined]


# -- max_iter -------------------------------------------------------------------------------------------
def test_max_iter_cap(make_client, api_error):
    client = make_client(max_iter_limit=50)
    err = api_error(client.post("/train", json={**TOY, "params": {"max_iter": 51}}), 422, "invalid_input",
                    "max_iter")
    assert err["details"] == {"limit": 50}
    api_error(client.post("/train?background=true", json={**TOY, "params": {"max_iter": 51}}), 422,
              "invalid_input")
    csv = client.post("/train", files={"file": ("d.csv", SMALL_CSV)},
                      data={"model": "csv", "target": "y", "params": '{"max_iter": 500}'})
    api_error(csv, 422, "invalid_input", "max_iter")
    assert client.get("/models").json()["models"] == []
    resp = client.post("/train", json={**TOY, "params": {"max_iter": 50}})
    assert resp.status_code == 201, resp.text


# -- training wall-clock limit --------------------------------------------------------------------------
def test_training_over_the_time_limit_stops_and_stores_nothing(make_client, api_error):
    client = make_client(train_timeout_seconds=0.05)
    assert client.post("/train", json={**TOY, "model": "slow"}).status_code == 201  # fast ones still fit
    store: Path = client.app.state.services.registry.root  # type: ignore[attr-defined]
    listing = client.get("/models").json()
    on_disk = store_entries(store)

    start = time.monotonic()
    resp = client.post("/train", json=slow_body())  # 500 epochs of ~0.1 s: only a stop ends it this soon
    elapsed = time.monotonic() - start
    err = api_error(resp, 422, "time_limit_exceeded", "time limit")
    assert "nothing was stored" in err["message"]
    assert elapsed < 10

    assert client.get("/models").json() == listing
    assert client.get("/models/slow").json()["versions"][-1]["version"] == 1
    assert store_entries(store) == on_disk  # no new version, no half-written or temporary entry
    # the slot was given back: the next training runs
    assert client.post("/train", json={**TOY, "model": "slow"}).json()["version"] == 2


def test_time_limit_applies_to_csv_uploads(make_client, api_error):
    client = make_client(train_timeout_seconds=0.05)
    body = slow_body()
    lines = ["a,b,c,d,y", *(",".join([*map(repr, row), str(lab)])
                            for row, lab in zip(body["features"], body["labels"], strict=True))]
    resp = client.post("/train", files={"file": ("slow.csv", "\n".join(lines).encode())},
                       data={"model": "slow", "target": "y", "params": json.dumps(body["params"])})
    api_error(resp, 422, "time_limit_exceeded")
    assert client.get("/models").json()["models"] == []


# -- concurrent trainings -------------------------------------------------------------------------------
def test_training_beyond_the_concurrency_cap_is_429_with_retry_after(make_client, api_error):
    client = make_client(max_concurrent_trainings=1)
    store: Path = client.app.state.services.registry.root  # type: ignore[attr-defined]
    held = SlotPool(store, 1).try_acquire()  # another worker sharing the registry is training
    assert held is not None
    try:
        resp = client.post("/train", json=TOY)
        err = api_error(resp, 429, "too_many_trainings", "LOGREG_MAX_CONCURRENT_TRAININGS")
        assert err["details"] == {"limit": 1}
        assert int(resp.headers["retry-after"]) > 0
        csv = client.post("/train", files={"file": ("d.csv", SMALL_CSV)}, data={"model": "csv", "target": "y"})
        api_error(csv, 429, "too_many_trainings")
        assert client.get("/models").json()["models"] == []
    finally:
        os.close(held)
    resp = client.post("/train", json=TOY)
    assert resp.status_code == 201, resp.text
    resp = client.post("/train", json=TOY)  # the finished training gave its slot back
    assert resp.status_code == 201, resp.text


def test_the_cap_counts_slots_not_requests(make_client, api_error):
    client = make_client(max_concurrent_trainings=2)
    store: Path = client.app.state.services.registry.root  # type: ignore[attr-defined]
    pool = SlotPool(store, 2)
    first = pool.try_acquire()
    try:
        assert client.post("/train", json=TOY).status_code == 201  # one slot left
        second = pool.try_acquire()
        try:
            assert pool.try_acquire() is None
            api_error(client.post("/train", json=TOY), 429, "too_many_trainings")
        finally:
            os.close(second)  # type: ignore[arg-type]
        assert client.post("/train", json=TOY).status_code == 201
    finally:
        os.close(first)  # type: ignore[arg-type]


def test_background_jobs_wait_for_a_slot_instead_of_429(make_client):
    client = make_client(max_concurrent_trainings=1)
    store: Path = client.app.state.services.registry.root  # type: ignore[attr-defined]
    held = SlotPool(store, 1).try_acquire()
    assert held is not None
    try:
        resp = client.post("/train?background=true", json=TOY)
        assert resp.status_code == 202, resp.text
        location = resp.headers["location"]
        time.sleep(0.6)  # the runner polls for a slot every 0.25 s
        assert client.get(location).json()["state"] == "queued"
    finally:
        os.close(held)
    deadline = time.monotonic() + 10
    while (job := client.get(location).json())["state"] not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    assert job["state"] == "succeeded", job
