"""Background training: 202 + Location, state and progress, the /train result, cancel, idempotency,
large training sets in the background by default, job state on disk (any worker, restarts)."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.store.jobs import JobStore

from ..support import TOY_TRAIN

REPORT_KEYS = {
    "model", "version", "classes", "feature_names", "n_samples", "n_train", "n_validation", "converged",
    "n_iter", "warnings", "train_metrics", "validation_metrics", "loss_history", "duration_seconds",
}
JOB_KEYS = {"id", "model", "state", "created_at", "started_at", "finished_at", "progress", "result", "error"}
STATES = {"queued", "running", "succeeded", "failed", "cancelled"}
FINISHED = {"succeeded", "failed", "cancelled"}


def slow_body(model: str = "slow", **params: Any) -> dict[str, Any]:
    """~0.1 s per epoch (2000 rows in one-row mini-batches), 500 epochs: it runs until stopped."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 4))
    y = (X[:, 0] + 0.5 * rng.normal(size=2000) > 0).astype(int)
    return {
        "model": model, "features": X.tolist(), "labels": y.tolist(), "validation_fraction": 0,
        "params": {"solver": "sgd", "batch_size": 1, "max_iter": 500, "tol": 0, "learning_rate": 0.001, **params},
    }


def submit(client: TestClient, body: dict[str, Any], headers: dict[str, str] | None = None,
           query: str = "?background=true") -> dict[str, Any]:
    resp = client.post(f"/train{query}", json=body, headers=headers)
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert resp.headers["location"] == f"/jobs/{job['id']}"
    assert set(job) >= JOB_KEYS, job
    assert job["state"] in ("queued", "running"), job
    return job


def wait_for(client: TestClient, job_id: str, done: Callable[[dict[str, Any]], bool] = lambda j: j["state"] in FINISHED,
             timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        resp = client.get(f"/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        job = resp.json()
        assert job["state"] in STATES, job
        if done(job):
            return job
        assert time.monotonic() < deadline, f"job did not get there in {timeout} s: {job}"
        time.sleep(0.03)


def store_of(client: TestClient) -> Path:
    return client.app.state.services.registry.root  # type: ignore[attr-defined]


@pytest.fixture
def jobs_client(make_client: Callable[..., TestClient]) -> TestClient:
    """A client whose slow trainings end by themselves within 20 s even if a test fails."""
    return make_client(train_timeout_seconds=20)


# -- the happy path -------------------------------------------------------------------------------------
def test_background_training_gives_the_train_result(jobs_client):
    client = jobs_client
    sync = client.post("/train", json=TOY_TRAIN)
    assert sync.status_code == 201
    job = submit(client, TOY_TRAIN)
    done = wait_for(client, job["id"])
    assert done["state"] == "succeeded", done
    assert done["error"] is None
    assert done["started_at"] and done["finished_at"] and done["created_at"] <= done["started_at"]
    result = done["result"]
    assert set(result) == set(sync.json()) == REPORT_KEYS
    assert result["version"] == 2
    ignore = {"version", "duration_seconds"}
    assert {k: v for k, v in result.items() if k not in ignore} == {
        k: v for k, v in sync.json().items() if k not in ignore
    }
    card = client.get("/models/toy/versions/2")
    assert card.status_code == 200
    assert card.json()["n_samples"] == 8
    # a finished job stays as it is
    assert client.get(f"/jobs/{job['id']}").json() == done


def test_progress_while_running_then_cancel_stores_nothing(jobs_client, api_error):
    client = jobs_client
    job = submit(client, slow_body())
    running = wait_for(client, job["id"], lambda j: j["state"] == "running" and (j["progress"] or {}).get("iteration"))
    assert running["progress"]["phase"] == "fitting" and running["progress"]["max_iter"] >= 1
    progress = running["progress"]
    assert progress["iteration"] >= 1
    assert np.isfinite(progress["loss"]) and progress["loss"] > 0
    later = wait_for(client, job["id"], lambda j: j["progress"]["iteration"] > progress["iteration"])
    assert later["state"] == "running"

    resp = client.delete(f"/jobs/{job['id']}")
    assert resp.status_code == 202, resp.text
    assert resp.json()["cancel_requested"] is True
    done = wait_for(client, job["id"], timeout=5)
    assert done["state"] == "cancelled", done
    assert done["error"]["type"] == "cancelled"
    assert done["result"] is None
    assert client.get("/models").json()["models"] == []
    api_error(client.get("/models/slow"), 404, "not_found")
    # cancelling again, or cancelling a finished job, is a conflict
    api_error(client.delete(f"/jobs/{job['id']}"), 409, "conflict", "cancelled")


def test_cancel_a_finished_job_is_409(jobs_client, api_error):
    client = jobs_client
    job = submit(client, TOY_TRAIN)
    assert wait_for(client, job["id"])["state"] == "succeeded"
    err = api_error(client.delete(f"/jobs/{job['id']}"), 409, "conflict")
    assert err["details"] == {"state": "succeeded"}
    assert client.get("/models/toy").json()["versions"][0]["version"] == 1  # still there


def test_cancel_a_queued_job(make_client):
    from service.store.jobs import SlotPool

    client = make_client(max_concurrent_trainings=1)
    held = SlotPool(store_of(client), 1).try_acquire()
    try:
        job = submit(client, TOY_TRAIN)
        assert client.get(f"/jobs/{job['id']}").json()["state"] == "queued"
        assert client.delete(f"/jobs/{job['id']}").status_code == 202
        done = wait_for(client, job["id"], timeout=5)
    finally:
        os.close(held)  # type: ignore[arg-type]
    assert done["state"] == "cancelled"
    assert done["started_at"] is None
    assert client.get("/models").json()["models"] == []


def test_unknown_and_malformed_job_ids(jobs_client, api_error):
    client = jobs_client
    err = api_error(client.get("/jobs/" + "0" * 32), 404, "not_found")
    assert err["details"] == {"job": "0" * 32}
    api_error(client.delete("/jobs/" + "f" * 32), 404, "not_found")
    api_error(client.get("/jobs/not-a-job"), 422, "validation_error")


def test_job_over_the_time_limit_fails_with_the_time_limit_error(make_client):
    client = make_client(train_timeout_seconds=0.05)
    job = submit(client, slow_body())
    done = wait_for(client, job["id"], timeout=10)
    assert done["state"] == "failed", done
    assert "time limit" in done["error"]["message"]
    assert "time" in done["error"]["type"].lower()
    assert done["result"] is None
    assert client.get("/models").json()["models"] == []


def test_job_error_types_match_the_api_error_types(make_client):
    client = make_client(train_timeout_seconds=0.05)
    sync = client.post("/train", json=slow_body())
    assert sync.status_code == 422
    done = wait_for(client, submit(client, slow_body())["id"], timeout=10)
    assert done["error"]["type"] == sync.json()["error"]["type"] == "time_limit_exceeded"


def test_job_with_bad_input_found_during_training_fails(jobs_client):
    client = jobs_client
    single_class = {**TOY_TRAIN, "labels": [1] * 8}
    done = wait_for(client, submit(client, single_class)["id"])
    assert done["state"] == "failed"
    assert "single class" in done["error"]["message"]


# -- idempotency ----------------------------------------------------------------------------------------
def test_idempotency_key_returns_the_first_job(jobs_client):
    client = jobs_client
    key = {"Idempotency-Key": "retry-me-123"}
    first = submit(client, TOY_TRAIN, key)
    again = submit(client, TOY_TRAIN, key)
    assert again["id"] == first["id"]
    done = wait_for(client, first["id"])
    assert done["state"] == "succeeded"
    third = client.post("/train?background=true", json=TOY_TRAIN, headers=key)  # even after it finished
    assert third.status_code == 202
    assert third.headers["location"] == f"/jobs/{first['id']}"
    assert third.json()["state"] == "succeeded" and third.json()["result"] == done["result"]
    assert [v["version"] for v in client.get("/models/toy").json()["versions"]] == [1]
    other = submit(client, TOY_TRAIN, {"Idempotency-Key": "another-key"})
    assert other["id"] != first["id"]
    assert wait_for(client, other["id"])["result"]["version"] == 2


def test_idempotency_key_across_workers(make_client, tmp_path):
    a = make_client(model_store=tmp_path / "shared")
    b = make_client(model_store=tmp_path / "shared")
    key = {"Idempotency-Key": "one-per-store"}
    first = submit(a, TOY_TRAIN, key)
    retry = b.post("/train?background=true", json=TOY_TRAIN, headers=key)  # the first job may have finished by now
    assert retry.status_code == 202, retry.text
    assert retry.json()["id"] == first["id"]
    assert retry.headers["location"] == f"/jobs/{first['id']}"
    wait_for(b, first["id"])
    assert [v["version"] for v in a.get("/models/toy").json()["versions"]] == [1]


def test_concurrent_retries_with_one_idempotency_key_all_get_the_job(tmp_path):
    errors: list[str] = []
    ids: dict[str, set[str]] = {}

    def create(key: str) -> None:
        try:
            job, _ = JobStore(tmp_path).create("m", key)
            ids.setdefault(key, set()).add(job.id)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    for k in range(10):
        threads = [threading.Thread(target=create, args=(f"key-{k}",)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert all(len(v) == 1 for v in ids.values())


# -- large training sets go to the background by default ------------------------------------------------
def test_large_training_sets_run_in_the_background_by_default(make_client):
    client = make_client(background_train_cells=12)
    # 6 x 2 = 12: not above
    small = {**TOY_TRAIN, "features": TOY_TRAIN["features"][:6], "labels": TOY_TRAIN["labels"][:6]}
    assert client.post("/train", json=small).status_code == 201
    job = submit(client, TOY_TRAIN, query="")  # 8 x 2 = 16 > 12
    assert wait_for(client, job["id"])["result"]["version"] == 2
    forced = client.post("/train?background=false", json=TOY_TRAIN)
    assert forced.status_code == 201, forced.text
    assert forced.json()["version"] == 3
    assert "location" not in forced.headers
    csv = b"a,b,y\n" + b"0,1,0\n1,0.5,0\n2,2.5,1\n3,3,1\n0.5,0.2,0\n2.5,2,1\n0.2,0.9,0\n2.8,2.6,1\n"
    resp = client.post("/train", files={"file": ("d.csv", csv)}, data={"model": "toy", "target": "y"})
    assert resp.status_code == 202, resp.text
    assert wait_for(client, resp.json()["id"])["state"] == "succeeded"
    small_bg = client.post("/train?background=true", json=small)
    assert small_bg.status_code == 202


# -- state on disk: any worker, restarts ----------------------------------------------------------------
def test_any_worker_answers_for_any_job(make_client, tmp_path):
    a = make_client(model_store=tmp_path / "shared", train_timeout_seconds=20)
    b = make_client(model_store=tmp_path / "shared", train_timeout_seconds=20)
    job = submit(a, slow_body())
    seen = wait_for(b, job["id"], lambda j: j["state"] == "running")  # b sees a's live job as running
    assert seen["error"] is None
    assert b.delete(f"/jobs/{job['id']}").status_code == 202  # and b can cancel it
    assert wait_for(a, job["id"], timeout=5)["state"] == "cancelled"
    done = wait_for(b, submit(a, TOY_TRAIN)["id"])
    assert done["state"] == "succeeded"


def _write_job(store: Path, **fields: Any) -> str:
    jobs = JobStore(store)
    job, _ = jobs.create("toy")
    jobs.update(job.id, **fields)
    return job.id


def _on_disk(store: Path, job_id: str) -> dict[str, Any]:
    return json.loads((store / ".jobs" / f"{job_id}.json").read_text())


def test_a_job_whose_runner_died_is_reported_failed(make_client, tmp_path, api_error):
    store = tmp_path / "store"
    job_id = _write_job(store, state="running", started_at="2020-01-01T00:00:00.000Z",
                        progress={"iteration": 3, "loss": 0.5})
    (store / ".jobs" / f"{job_id}.lock").touch()  # its runner held this lock; nobody does now
    client = make_client(model_store=store)
    job = client.get(f"/jobs/{job_id}").json()
    assert job["state"] == "failed", job
    assert job["error"]["type"] == "interrupted"
    assert job["finished_at"]
    assert job["progress"] == {"iteration": 3, "loss": 0.5}
    assert _on_disk(store, job_id)["state"] == "failed"  # saved, not just reported
    api_error(client.delete(f"/jobs/{job_id}"), 409, "conflict")


def test_a_live_runner_elsewhere_keeps_its_job_running(make_client, tmp_path):
    store = tmp_path / "store"
    job_id = _write_job(store, state="running", started_at="2020-01-01T00:00:00.000Z")
    fd = os.open(store / ".jobs" / f"{job_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another process is running it
        client = make_client(model_store=store)
        assert client.get(f"/jobs/{job_id}").json()["state"] == "running"
    finally:
        os.close(fd)
    assert client.get(f"/jobs/{job_id}").json()["state"] == "failed"  # and when it dies, it is failed


def test_a_fresh_queued_job_is_not_declared_dead(make_client, tmp_path):
    store = tmp_path / "store"
    job_id = _write_job(store)  # queued a moment ago, its runner not started yet
    client = make_client(model_store=store)
    assert client.get(f"/jobs/{job_id}").json()["state"] == "queued"


def test_restart_marks_interrupted_jobs_failed(tmp_path, logged):
    store = tmp_path / "store"
    running = _write_job(store, state="running", started_at="2020-01-01T00:00:00.000Z")
    (store / ".jobs" / f"{running}.lock").touch()
    stale_queued = _write_job(store, created_at="2020-01-01T00:00:00.000Z")  # never picked up, long ago
    fresh_queued = _write_job(store)
    finished = _write_job(store, state="succeeded", result={"version": 1})
    cancelled = _write_job(store, state="cancelled")

    client, handler = logged(model_store=store)
    warnings = handler.messages(logging.WARNING)
    assert any("2 background job(s) were interrupted" in m for m in warnings), warnings
    for job_id in (running, stale_queued):
        on_disk = _on_disk(store, job_id)  # marked at start-up, before anyone asked
        assert on_disk["state"] == "failed"
        assert on_disk["error"]["type"] == "interrupted"
    assert _on_disk(store, fresh_queued)["state"] == "queued"
    assert _on_disk(store, finished)["state"] == "succeeded"
    assert _on_disk(store, cancelled)["state"] == "cancelled"
    assert client.get(f"/jobs/{running}").json()["state"] == "failed"
    assert JobStore(store).recover() == 0  # nothing left to recover


def test_recover_skips_junk_in_the_jobs_directory(tmp_path):
    store = tmp_path / "store"
    jobs_dir = store / ".jobs"
    jobs_dir.mkdir(parents=True)
    (jobs_dir / "garbage.json").write_text("{not json")
    (jobs_dir / ".partial.json.tmp").write_text("")
    job_id = _write_job(store, state="running")
    (jobs_dir / f"{job_id}.lock").touch()
    assert JobStore(store).recover() == 1


# -- Idempotency-Key with a request hash, synchronous trains too, and job retention --------------------------
def _toy_body(**extra: Any) -> dict[str, Any]:
    return {"model": "idem", "features": [[0.0, 1.0], [1.0, 0.5], [2.0, 2.5], [3.0, 3.0]] * 3,
            "labels": [0, 0, 1, 1] * 3, "validation_fraction": 0, **extra}


def test_a_synchronous_retry_with_the_same_key_replays_the_first_report(make_client, api_error):
    client = make_client()
    key = {"Idempotency-Key": "sync-retry-1"}
    first = client.post("/train", json=_toy_body(), headers=key)
    assert first.status_code == 201, first.text
    # the same request with its keys in another order is the same request
    again = client.post("/train", json=dict(reversed(list(_toy_body().items()))), headers=key)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert [v["version"] for v in client.get("/models/idem").json()["versions"]] == [1]
    api_error(client.post("/train", json=_toy_body(description="another"), headers=key), 422,
              mentions="another request")
    api_error(client.post("/train?background=true", json=_toy_body(description="another"), headers=key), 422)
    assert client.post("/train", json=_toy_body(), headers={"Idempotency-Key": "sync-retry-2"}).json()["version"] == 2


def test_a_background_retry_with_another_body_is_refused(make_client, api_error):
    client = make_client()
    key = {"Idempotency-Key": "bg-retry"}
    first = client.post("/train?background=true", json=_toy_body(), headers=key)
    assert first.status_code == 202
    assert client.post("/train?background=true", json=_toy_body(), headers=key).json()["id"] == first.json()["id"]
    api_error(client.post("/train?background=true", json=_toy_body(params={"C": 2.0}), headers=key), 422)


def test_a_key_whose_first_training_failed_is_free_again(make_client, api_error):
    client = make_client()
    key = {"Idempotency-Key": "fails-first"}
    bad = _toy_body(labels=[0] * 12)  # a single class
    api_error(client.post("/train", json=bad, headers=key), 422, mentions="single class")
    api_error(client.post("/train", json=bad, headers=key), 422, mentions="single class")  # ran again


def test_finished_jobs_expire_by_age_and_count(tmp_path):
    import os
    import time

    from service.domain import JobState
    from service.store.jobs import JobStore

    store = JobStore(tmp_path, retention_seconds=3600, max_finished=2)
    ids = []
    for i in range(4):
        job, _ = store.create("m", idempotency_key=f"k{i}", request_digest="d")
        store.finish(job.id, JobState.SUCCEEDED, result={"i": i})
        ids.append(job.id)
        time.sleep(0.01)
    running, _ = store.create("m")
    old = store.dir / f"{ids[0]}.json"
    record = old.read_text().replace('"finished_at":"', '"finished_at":"2000-01-01T00:00:00.000Z","x":"', 1)
    old.write_text(record)
    assert store.expire() == 2  # the one finished in 2000, and one beyond the newest two
    left = sorted(p.stem for p in store.dir.glob("*.json"))
    assert left == sorted([ids[2], ids[3], running.id])
    markers = [p.read_text() for p in store.dir.glob("idem-*")]
    assert sorted(markers) == sorted([ids[2], ids[3]])
    assert not any(p.name.startswith(ids[0]) for p in store.dir.iterdir())
    assert os.path.exists(store.dir)


def test_a_retried_upload_is_the_same_request_whatever_its_multipart_boundary(make_client, breast_cancer_csv,
                                                                               api_error):
    client = make_client()
    key = {"Idempotency-Key": "upload-1"}
    form = {"model": "up", "target": "diagnosis"}
    first = client.post("/train", files={"file": ("d.csv", breast_cancer_csv, "text/csv")}, data=form, headers=key)
    again = client.post("/train", files={"file": ("d.csv", breast_cancer_csv, "text/csv")}, data=form, headers=key)
    assert first.status_code == again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    rows = breast_cancer_csv.splitlines(keepends=True)
    fewer = b"".join(rows[:-1])  # the same columns, one row less: another request
    api_error(client.post("/train", files={"file": ("d.csv", fewer, "text/csv")}, data=form, headers=key), 422,
              mentions="another request")
    api_error(client.post("/train", files={"file": ("d.csv", breast_cancer_csv, "text/csv")},
                          data={**form, "description": "changed"}, headers=key), 422, mentions="another request")
