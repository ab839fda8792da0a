"""End to end: training from ``s3://`` URIs against moto's standalone S3 server and a real uvicorn.

Nothing is mocked: moto runs as its own process on a loopback port, with IAM authentication turned on
once the bucket is filled (``POST /moto-api/reset-auth`` with ``0``: every later request must be signed
with the keys of an IAM user that exists and is allowed ``s3:*``), and the service reads it through
fsspec/s3fs with the credentials of the standard AWS variables, as it would read AWS.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.engine import LogisticRegression

from .conftest import Server, free_port, start_server, stop_server

pytestmark = pytest.mark.e2e

BUCKET = "logreg-data"
FEATURES = ["f0", "f1", "f2", "f3"]
ROWS = 400
REGION = "us-east-1"
# moto answers a missing bucket, a missing key or a refused request in milliseconds; an endpoint that
# refuses connections costs botocore's retries (service.data.sources.S3_CONFIG: 2 attempts, a short backoff).
UNREACHABLE_LIMIT_SECONDS = 25.0


@dataclass(frozen=True)
class Moto:
    url: str
    key_id: str  # an IAM user's access key, allowed s3:* once authentication is on
    secret: str
    X: np.ndarray
    y: np.ndarray

    def env(self, **changes: str) -> dict[str, str]:
        """The environment a service process reads S3 with (no profile or config file of the host's)."""
        env = {
            "LOGREG_S3_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": self.key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": "127.0.0.1,localhost",  # a proxy of the host's must not carry loopback requests
        }
        return {**env, **changes}


def _table() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20240611)
    X = rng.normal(size=(ROWS, len(FEATURES))) * np.array([1.0, 2.0, 0.5, 3.0]) + np.array([0.0, 1.0, -1.0, 0.5])
    logits = X @ np.array([1.2, -0.8, 2.0, 0.1]) - 0.3 + 0.7 * rng.normal(size=ROWS)
    return X, (logits > 0).astype(np.int64)


def _csv(X: np.ndarray, y: np.ndarray) -> bytes:
    lines = [",".join([*FEATURES, "y"])]
    lines += [",".join([*map(repr, row), str(label)]) for row, label in zip(X.tolist(), y.tolist(), strict=True)]
    return ("\n".join(lines) + "\n").encode()


def _parquet(X: np.ndarray, y: np.ndarray) -> bytes:
    table = pa.table({**{name: X[:, j] for j, name in enumerate(FEATURES)}, "y": y})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _wait_for_moto(process: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/moto-api/", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"moto did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process started in its own session, by its PID (its group), and reap it."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    """moto's S3 server with the table (CSV, Parquet, two Parquet parts) and IAM authentication on."""
    root = tmp_path_factory.mktemp("moto")
    log = root / "moto.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as fh:
        process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                   stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_moto(process, url, log)
        # Authentication is off until reset-auth below: any keys may set things up.
        admin = {"endpoint_url": url, "region_name": REGION, "aws_access_key_id": "setup",
                 "aws_secret_access_key": "setup"}
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="reader")
        iam.put_user_policy(UserName="reader", PolicyName="read-s3", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        X, y = _table()
        s3 = boto3.client("s3", **admin)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="table.csv", Body=_csv(X, y))
        s3.put_object(Bucket=BUCKET, Key="table.parquet", Body=_parquet(X, y))
        half = ROWS // 2
        s3.put_object(Bucket=BUCKET, Key="parts/part-0.parquet", Body=_parquet(X[:half], y[:half]))
        s3.put_object(Bucket=BUCKET, Key="parts/part-1.parquet", Body=_parquet(X[half:], y[half:]))
        # From now on every request is authenticated and authorised against moto's IAM.
        resp = httpx.post(f"{url}/moto-api/reset-auth", content=b"0", timeout=5)
        assert resp.status_code == 200, resp.text
        yield Moto(url, key["AccessKeyId"], key["SecretAccessKey"], X, y)
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def server(moto: Moto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("s3-e2e")
    server = start_server(root / "model_store", root / "server.log", env=moto.env())
    try:
        yield server
    finally:
        stop_server(server)


def _post_train(server: Server, body: dict[str, Any], **params: str) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        return client.post("/train", json=body, params=params)


def _train(server: Server, model: str, uri: str, **data: Any) -> dict[str, Any]:
    resp = _post_train(server, {"model": model, "data": {"uri": uri, "target": "y", **data}})
    assert resp.status_code == 201, resp.text
    return resp.json()


def _card(server: Server, model: str, version: int) -> dict[str, Any]:
    resp = httpx.get(f"{server.url}/models/{model}/versions/{version}", timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _proba(server: Server, model: str, version: int, rows: np.ndarray) -> list[list[float]]:
    resp = httpx.post(f"{server.url}/predict_proba", json={"model": model, "version": version,
                                                          "features": rows.tolist()}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()["probabilities"]


def _error(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    return resp.json()["error"]


# -- training from S3 --------------------------------------------------------------------------------------------
def test_csv_and_parquet_twins_train_the_same_model(server: Server, moto: Moto) -> None:
    from_csv = _train(server, "twins", f"s3://{BUCKET}/table.csv")
    from_parquet = _train(server, "twins", f"s3://{BUCKET}/table.parquet")
    assert (from_csv["version"], from_parquet["version"]) == (1, 2)
    for report in (from_csv, from_parquet):
        assert report["n_samples"] == ROWS
        assert report["feature_names"] == FEATURES
        assert report["classes"] == [0, 1]
        assert report["converged"]
        assert report["validation_metrics"]["accuracy"] > 0.8

    csv_card, parquet_card = _card(server, "twins", 1), _card(server, "twins", 2)
    assert csv_card["tags"]["source"] == f"s3://{BUCKET}/table.csv"
    assert parquet_card["tags"]["source"] == f"s3://{BUCKET}/table.parquet"
    # The same numbers read from text and from Parquet: the same fit, to the last bit.
    assert csv_card["coefficients"] == parquet_card["coefficients"]
    assert csv_card["intercepts"] == parquet_card["intercepts"]
    assert set(csv_card["coefficients"]["1"]) == set(FEATURES)

    rows = moto.X[:25]
    assert _proba(server, "twins", 1, rows) == _proba(server, "twins", 2, rows)


@pytest.mark.parametrize(("uri", "data"), [
    (f"s3://{BUCKET}/parts/", {"format": "parquet"}),  # a prefix: every Parquet object under it
    (f"s3://{BUCKET}/parts/part-*.parquet", {}),  # a glob: the format from the suffix
])
def test_parquet_parts_train_like_the_whole_table(server: Server, moto: Moto, uri: str, data: dict[str, Any]) -> None:
    whole = _train(server, "whole", f"s3://{BUCKET}/table.parquet")
    parts = _train(server, "parts", uri, **data)
    assert parts["n_samples"] == ROWS
    # part-0 then part-1 is the table in its order: the same rows, the same split, the same model.
    whole_card, parts_card = _card(server, "whole", whole["version"]), _card(server, "parts", parts["version"])
    assert parts_card["coefficients"] == whole_card["coefficients"]
    assert parts_card["intercepts"] == whole_card["intercepts"]


def test_background_training_reports_reading_progress(server: Server) -> None:
    uri = f"s3://{BUCKET}/table.parquet"
    resp = _post_train(server, {"model": "job", "data": {"uri": uri, "target": "y"}}, background="true")
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    assert resp.headers["location"] == f"/jobs/{job_id}"

    deadline = time.monotonic() + 30
    while True:
        job = httpx.get(f"{server.url}/jobs/{job_id}", timeout=10).json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            break
        assert time.monotonic() < deadline, f"job still {job['state']} after 30 s: {job}"
        time.sleep(0.1)
    assert job["state"] == "succeeded", job
    assert job["result"]["n_samples"] == ROWS
    progress = job["progress"]
    assert progress["phase"] == "storing"  # the last phase; what reading found stays in the record
    assert progress["source"] == uri
    assert progress["rows_read"] == ROWS
    assert progress["bytes_total"] > 0
    assert progress["bytes_read"] == progress["bytes_total"]


# -- what goes wrong -------------------------------------------------------------------------------------------
def test_missing_key_is_422_naming_the_uri(server: Server) -> None:
    uri = f"s3://{BUCKET}/no-such-table.parquet"
    error = _error(_post_train(server, {"model": "m", "data": {"uri": uri, "target": "y"}}), 422)
    assert error["type"] == "invalid_input"
    assert uri in error["message"]


def test_missing_bucket_is_422(server: Server) -> None:
    uri = "s3://no-such-bucket/table.parquet"
    error = _error(_post_train(server, {"model": "m", "data": {"uri": uri, "target": "y"}}), 422)
    assert error["type"] == "invalid_input"
    assert uri in error["message"]


def test_empty_prefix_is_422(server: Server) -> None:
    uri = f"s3://{BUCKET}/parts/nothing-*.parquet"
    error = _error(_post_train(server, {"model": "m", "data": {"uri": uri, "target": "y"}}), 422)
    assert uri in error["message"]


@pytest.mark.parametrize("wrong", ["unknown key", "wrong secret"])
def test_wrong_credentials_are_403_naming_the_aws_variables(
    moto: Moto, tmp_path: Path, wrong: str
) -> None:
    env = (moto.env(AWS_ACCESS_KEY_ID="AKIAWRONGWRONGWRONG0") if wrong == "unknown key"
           else moto.env(AWS_SECRET_ACCESS_KEY="not-the-secret"))
    server = start_server(tmp_path / "model_store", tmp_path / "server.log", env=env)
    try:
        uri = f"s3://{BUCKET}/table.parquet"
        error = _error(_post_train(server, {"model": "m", "data": {"uri": uri, "target": "y"}}), 403)
        assert error["type"] == "data_access_denied"
        assert uri in error["message"]
        assert "AWS_ACCESS_KEY_ID" in error["message"] and "AWS_SECRET_ACCESS_KEY" in error["message"]
        assert httpx.get(f"{server.url}/models", timeout=10).json()["models"] == []
    finally:
        stop_server(server)


def test_unreachable_endpoint_is_503_in_bounded_time(moto: Moto, tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    server = start_server(tmp_path / "model_store", tmp_path / "server.log",
                          env=moto.env(LOGREG_S3_ENDPOINT_URL=closed))
    try:
        uri = f"s3://{BUCKET}/table.parquet"
        start = time.monotonic()
        resp = _post_train(server, {"model": "m", "data": {"uri": uri, "target": "y"}})
        took = time.monotonic() - start
        error = _error(resp, 503)
        assert error["type"] == "source_unavailable"
        assert uri in error["message"] and closed in error["message"]
        assert took < UNREACHABLE_LIMIT_SECONDS
    finally:
        stop_server(server)


# -- the CLI ---------------------------------------------------------------------------------------------------------
def _logreg(moto: Moto, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **moto.env()}, cwd=Path(__file__).resolve().parents[2])


def test_cli_trains_from_s3_and_the_model_predicts(moto: Moto, tmp_path: Path) -> None:
    store = str(tmp_path / "model_store")
    trained = _logreg(moto, "train", f"s3://{BUCKET}/table.parquet", "--target", "y", "--model", "cli",
                      "--store", store, "--quiet")
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout)
    assert (summary["model"], summary["version"], summary["n_samples"]) == ("cli", 1, ROWS)

    # Predicting the CSV twin from S3: the label column is skipped, the features matched by name.
    predicted = _logreg(moto, "predict", f"s3://{BUCKET}/table.csv", "--model", "cli", "--store", store)
    assert predicted.returncode == 0, predicted.stderr
    lines = predicted.stdout.splitlines()
    assert lines[0] == "prediction,p_0,p_1"
    labels = np.array([int(line.split(",")[0]) for line in lines[1:]])
    assert labels.shape == (ROWS,)
    assert (labels == moto.y).mean() > 0.8


def test_cli_missing_key_exits_4_with_one_line(moto: Moto, tmp_path: Path) -> None:
    uri = f"s3://{BUCKET}/missing.parquet"
    result = _logreg(moto, "train", uri, "--target", "y", "--model", "cli", "--store", str(tmp_path / "store"),
                     "--quiet")
    assert result.returncode == 4  # invalid input, as the service's 422
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("logreg: error: ") and uri in lines[0]
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").iterdir())


# -- on a Dask cluster ---------------------------------------------------------------------------------------
def test_dask_workers_read_s3_themselves_and_train_the_model_of_the_one_process_fit(
        moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers read the Parquet parts from S3 with their own credentials (their environment) and the
    endpoint the service passes on; the model is the one the service fits itself on the same rows."""
    distributed = pytest.importorskip("distributed")
    from service.data.sources import open_files
    from service.services.distributed import train_on_cluster
    from service.store.registry import ModelRegistry

    for name, value in moto.env().items():  # the service lists the parts with them too
        monkeypatch.setenv(name, value)
    uri = f"s3://{BUCKET}/parts/part-*.parquet"
    files = open_files(uri, None, roots=None, s3_endpoint_url=moto.url)
    registry = ModelRegistry(tmp_path / "store")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None, worker_dashboard_address=None, env=moto.env()) as cluster:
        report = train_on_cluster(registry, "on-dask", files, "y", scheduler=cluster.scheduler_address,
                                  s3_endpoint_url=moto.url, validation_fraction=0.0, params={"random_state": 0})
    assert report["trained_on"] == {"compute": "dask", "workers": 2, "partitions": 2, "rows": ROWS}
    local = LogisticRegression(random_state=0).fit(moto.X, moto.y)
    assert abs(report["loss_history"][-1] - local.loss_history_[-1]) <= 1e-6
    np.testing.assert_allclose(registry.load("on-dask").model.predict_proba(moto.X), local.predict_proba(moto.X),
                               atol=1e-5)
