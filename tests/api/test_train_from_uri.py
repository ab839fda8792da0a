"""POST /train with `data`: a CSV or Parquet table at a path under LOGREG_DATA_ROOTS trains the model the same
rows in JSON train; paths outside are 403; the job's progress tells the phases and the rows read; the training
limit in bytes holds."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from .conftest import BREAST_CANCER_CSV, Dataset

#: What a model card must show alike for two trainings on the same data.
FITTED = ("classes", "feature_names", "n_samples", "n_train", "n_validation", "n_iter", "coefficients", "intercepts",
          "feature_means", "feature_stds", "train_metrics", "validation_metrics")
FINISHED = {"succeeded", "failed", "cancelled"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


def card(client: TestClient, name: str, version: int = 1) -> dict[str, Any]:
    resp = client.get(f"/models/{name}/versions/{version}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def from_uri(uri: Path | str, target: str, **data: Any) -> dict[str, Any]:
    return {"uri": str(uri), "target": target, **data}


def wait_for(client: TestClient, job_id: str, timeout: float = 60.0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Poll a job as fast as the app answers until it finishes; return it and every distinct progress seen."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        resp = client.get(f"/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        job = resp.json()
        if job["progress"] and (not seen or seen[-1] != job["progress"]):
            seen.append(job["progress"])
        if job["state"] in FINISHED:
            return job, seen
        assert time.monotonic() < deadline, job


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_training_from_a_path_gives_the_model_of_the_same_rows_in_json(
    make_client: Callable[..., TestClient], root: Path, breast_cancer: Dataset, fmt: str
) -> None:
    client = make_client(data_roots=str(root))
    if fmt == "csv":
        path = root / "bc.csv"
        path.write_bytes(BREAST_CANCER_CSV.read_bytes())
    else:
        path = root / "bc.parquet"
        columns = {n: breast_cancer.X[:, j] for j, n in enumerate(breast_cancer.feature_names)}
        pq.write_table(pa.table({**columns, "diagnosis": breast_cancer.y.tolist()}), path)
    resp = client.post("/train", json={"model": "by-json", "features": breast_cancer.X.tolist(),
                                       "labels": breast_cancer.y.tolist(),
                                       "feature_names": breast_cancer.feature_names})
    assert resp.status_code == 201, resp.text
    resp = client.post("/train", json={"model": "by-uri", "data": from_uri(path, "diagnosis")})
    assert resp.status_code == 201, resp.text
    assert resp.json()["n_samples"] == len(breast_cancer.y) == 569
    by_json, by_uri = card(client, "by-json"), card(client, "by-uri")
    for key in FITTED:
        assert by_uri[key] == by_json[key], key  # exactly: the same float64 matrix, the same fit
    assert by_uri["tags"]["source"] == str(path)


def test_a_path_outside_the_roots_is_403(make_client: Callable[..., TestClient], root: Path, tmp_path: Path,
                                          api_error: Callable[..., dict[str, Any]]) -> None:
    client = make_client(data_roots=str(root))
    outside = tmp_path / "outside.csv"
    outside.write_text("a,y\n1,0\n2,1\n")
    (root / "link.csv").symlink_to(outside)
    for uri in [outside, root / ".." / "outside.csv", root / "link.csv", tmp_path / "*.csv"]:
        resp = client.post("/train", json={"model": "m", "data": from_uri(uri, "y")})
        err = api_error(resp, 403, "data_access_denied", "LOGREG_DATA_ROOTS")
        assert err["details"] == {"setting": "LOGREG_DATA_ROOTS"}
    assert client.get("/models/m").status_code == 404


def test_without_roots_every_path_is_403_naming_the_setting(make_client: Callable[..., TestClient], root: Path,
                                                             api_error: Callable[..., dict[str, Any]]) -> None:
    (root / "t.csv").write_text("a,y\n1,0\n2,1\n")
    client = make_client()
    resp = client.post("/train", json={"model": "m", "data": from_uri(root / "t.csv", "y")})
    api_error(resp, 403, "data_access_denied", ("LOGREG_DATA_ROOTS", "turned off"))


@pytest.mark.parametrize("rows", [
    {"features": [[1.0, 2.0]]},
    {"features": [[1.0, 2.0]], "labels": [0]},
    {"records": [{"a": 1.0}], "labels": [0]},
    {"labels": [0]},
    {"feature_names": ["a"]},
])
def test_data_together_with_rows_is_422(make_client: Callable[..., TestClient], root: Path, rows: dict[str, Any],
                                        api_error: Callable[..., dict[str, Any]]) -> None:
    (root / "t.csv").write_text("a,y\n1,0\n2,1\n")
    client = make_client(data_roots=str(root))
    resp = client.post("/train", json={"model": "m", "data": from_uri(root / "t.csv", "y"), **rows})
    assert resp.status_code == 422, resp.text
    api_error(resp, 422)
    assert client.get("/models/m").status_code == 404


def test_data_uri_errors_are_the_services_errors(make_client: Callable[..., TestClient], root: Path,
                                                  api_error: Callable[..., dict[str, Any]]) -> None:
    (root / "t.csv").write_text("a,y\n1,0\n\n2,1\n")
    (root / "t.txt").write_text("a,y\n1,0\n")
    client = make_client(data_roots=str(root))
    cases = [
        (from_uri(root / "t.csv", "label"), "target column 'label' is not in"),
        (from_uri(root / "missing.csv", "y"), "no file or directory"),
        (from_uri(root / "t.txt", "y"), "give `format`"),
    ]
    for data, message in cases:
        api_error(client.post("/train", json={"model": "m", "data": data}), 422, "invalid_input", message)
    (root / "t.csv").write_text("a,y\n1,0\n\n2,1\n-Infinity,0\n")
    api_error(client.post("/train", json={"model": "m", "data": from_uri(root / "t.csv", "y")}), 422,
              "invalid_input", "CSV line 5, column 'a': '-Infinity' is not finite")


def test_a_background_uri_training_tells_its_phases_and_rows(make_client: Callable[..., TestClient],
                                                             root: Path) -> None:
    client = make_client(data_roots=str(root), train_timeout_seconds=60)
    n = 300_000  # ~24 MB of CSV: a few tenths of a second of reading, long enough to be seen
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 4))
    y = (X[:, 0] + rng.normal(size=n) > 0).astype(np.int64)
    path = root / "big.csv"
    pcsv.write_csv(pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "d": X[:, 3], "y": y}), path)
    resp = client.post("/train?background=true", json={"model": "big", "data": from_uri(path, "y"),
                                                       "params": {"tol": 0, "max_iter": 10}})
    assert resp.status_code == 202, resp.text
    assert resp.headers["location"] == f"/jobs/{resp.json()['id']}"
    job, seen = wait_for(client, resp.json()["id"])
    assert job["state"] == "succeeded", job
    phases = [p["phase"] for p in seen]
    phases = [p for i, p in enumerate(phases) if i == 0 or p != phases[i - 1]]
    assert "reading" in phases and "fitting" in phases, seen
    assert phases.index("reading") < phases.index("fitting")
    reading = next(p for p in seen if p["phase"] == "reading")
    assert reading["bytes_total"] == path.stat().st_size and reading["source"] == str(path)
    assert job["progress"]["rows_read"] == n
    assert job["progress"]["bytes_read"] == path.stat().st_size
    assert job["result"]["n_samples"] == n and job["result"]["feature_names"] == ["a", "b", "c", "d"]
    assert card(client, "big")["n_samples"] == n


def test_a_table_over_the_training_limit_is_413_naming_the_setting(
    make_client: Callable[..., TestClient], root: Path, api_error: Callable[..., dict[str, Any]]
) -> None:
    rows = 2_000
    rng = np.random.default_rng(1)
    X = rng.normal(size=(rows, 3))
    pcsv.write_csv(pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "y": (X[:, 0] > 0).astype(np.int64)}),
                   root / "t.csv")
    pq.write_table(pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "y": (X[:, 0] > 0).astype(np.int64)}),
                   root / "t.parquet")
    limit = rows * 3 * 8 - 1  # one byte short of the matrix
    client = make_client(data_roots=str(root), max_train_bytes=limit)
    for name in ["t.csv", "t.parquet"]:
        body = {"model": "m", "data": from_uri(root / name, "y")}
        err = api_error(client.post("/train?background=false", json=body), 413, "limit_exceeded",
                        "LOGREG_MAX_TRAIN_BYTES")
        assert err["details"]["limit"] == limit
        resp = client.post("/train?background=true", json=body)
        assert resp.status_code == 202, resp.text
        job, _ = wait_for(client, resp.json()["id"])
        assert job["state"] == "failed", job
        assert job["error"]["type"] == "limit_exceeded" and "LOGREG_MAX_TRAIN_BYTES" in job["error"]["message"]
    # the same upload, multipart: the same 413
    resp = client.post("/train", files={"file": ("t.csv", (root / "t.csv").read_bytes(), "text/csv")},
                       data={"model": "m", "target": "y"})
    api_error(resp, 413, "limit_exceeded", "LOGREG_MAX_TRAIN_BYTES")
    assert client.get("/models/m").status_code == 404
    # and one byte more fits
    roomy = make_client(data_roots=str(root), max_train_bytes=limit + 1, model_store=root.parent / "store2")
    resp = roomy.post("/train", json={"model": "m", "data": from_uri(root / "t.parquet", "y")})
    assert resp.status_code == 201, resp.text


def test_data_features_pick_and_order_the_columns(make_client: Callable[..., TestClient], root: Path) -> None:
    (root / "t.csv").write_text("a,b,c,y\n0,1,9,0\n1,0.5,9,0\n2,2.5,9,1\n3,3,9,1\n0.5,0.2,9,0\n2.5,2,9,1\n")
    client = make_client(data_roots=str(root))
    resp = client.post("/train", json={"model": "m", "data": from_uri(root / "t.csv", "y", features=["b", "a"]),
                                       "validation_fraction": 0})
    assert resp.status_code == 201, resp.text
    assert resp.json()["feature_names"] == ["b", "a"]


def test_data_features_reorder_the_columns(make_client: Callable[..., TestClient], root: Path) -> None:
    (root / "t.csv").write_text("a,b,y\n0,1,0\n1,0.5,0\n2,2.5,1\n3,3,1\n0.5,0.2,0\n2.5,2,1\n")
    client = make_client(data_roots=str(root))
    resp = client.post("/train", json={"model": "m", "data": from_uri(root / "t.csv", "y", features=["b", "a"]),
                                       "validation_fraction": 0})
    assert resp.status_code == 201, resp.text
    assert resp.json()["feature_names"] == ["b", "a"]
    rows = [[1, 0], [0.5, 1], [2.5, 2], [3, 3], [0.2, 0.5], [2, 2.5]]
    resp = client.post("/train", json={"model": "j", "features": rows, "labels": [0, 0, 1, 1, 0, 1],
                                       "feature_names": ["b", "a"], "validation_fraction": 0})
    assert resp.status_code == 201, resp.text
    by_uri, by_json = card(client, "m"), card(client, "j")
    assert by_uri["feature_names"] == by_json["feature_names"] == ["b", "a"]
    assert by_uri["coefficients"] == by_json["coefficients"] and by_uri["feature_means"] == by_json["feature_means"]


# -- found in review -------------------------------------------------------------------------------------------
def test_a_multipart_body_keeps_the_body_limit_outside_training(make_client: Callable[..., TestClient]) -> None:
    """Only POST /train takes uploads under the larger upload limit; a multipart body elsewhere is refused before
    it is read: it is not a body those routes take (415)."""
    client = make_client(max_body_bytes=1024, max_upload_bytes=10_000_000)
    body = b"x" * 30_000
    for path in ("/predict", "/predict_proba", "/invocations", "/v2/models/m/infer"):
        resp = client.post(path, content=body, headers={"content-type": "multipart/form-data; boundary=b"})
        assert resp.status_code == 415, (path, resp.status_code, resp.text)
        assert "multipart/form-data" in resp.text


def test_a_glob_outside_the_roots_is_refused_before_the_file_system_is_walked(
    make_client: Callable[..., TestClient], root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import glob

    walked: list[str] = []
    real_glob = glob.glob
    monkeypatch.setattr(glob, "glob", lambda pattern, **kw: walked.append(pattern) or real_glob(pattern, **kw))
    client = make_client(data_roots=str(root))
    resp = client.post("/train", json={"model": "m", "data": from_uri("/usr/**/*.csv", "y")})
    assert resp.status_code == 403, resp.text
    assert walked == []


@pytest.mark.parametrize("uri", ["{root}/x\u0000.csv", "{root}/" + "n" * 300 + ".csv"], ids=["nul", "too-long"])
def test_a_malformed_path_is_422(make_client: Callable[..., TestClient], root: Path, uri: str) -> None:
    client = make_client(data_roots=str(root))
    resp = client.post("/train", json={"model": "m", "data": from_uri(uri.format(root=root), "y")})
    assert resp.status_code == 422, resp.text


def test_parquet_parts_must_agree_on_their_types(make_client: Callable[..., TestClient], root: Path) -> None:
    parts = root / "parts"
    parts.mkdir()
    pq.write_table(pa.table({"a": [0.0, 1.0, 2.0, 3.0], "y": [0, 1, 0, 1]}), parts / "part-0.parquet")
    pq.write_table(pa.table({"a": ["0", "1", "2", "3"], "y": [0, 1, 0, 1]}), parts / "part-1.parquet")
    client = make_client(data_roots=str(root))
    resp = client.post("/train", json={"model": "m", "data": from_uri(parts, "y", format="parquet")})
    assert resp.status_code == 422, resp.text
    assert "part-1.parquet" in resp.json()["error"]["message"]


def test_a_file_removed_before_its_job_reads_it_fails_the_job_cleanly(
    make_client: Callable[..., TestClient], root: Path
) -> None:
    from service.data.sources import open_files
    from service.data.tables import read_table
    from service.errors import InvalidInputError

    path = root / "gone.csv"
    path.write_text("a,y\n1,0\n2,1\n")
    files = open_files(str(path), roots=[root])
    path.unlink()
    with pytest.raises(InvalidInputError, match="gone"):
        read_table(files, target="y")


def test_a_form_field_sent_as_a_file_is_422(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    resp = client.post("/train", files={"file": ("d.csv", b"a,y\n1,0\n2,1\n3,0\n4,1\n"),
                                        "validation_fraction": ("v.txt", b"0.2")}, data={"model": "m", "target": "y"})
    assert resp.status_code == 422, resp.text
    assert "validation_fraction" in resp.json()["error"]["message"]


def test_long_labels_count_in_the_training_size_limit(make_client: Callable[..., TestClient], root: Path) -> None:
    rows = 200
    text = "a,y\n" + "".join(f"{i},{'label-' + 'x' * 90 + str(i % 2)}\n" for i in range(rows))
    (root / "long.csv").write_text(text)
    matrix = rows * 8
    client = make_client(data_roots=str(root), max_train_bytes=matrix * 4)  # the matrix fits; the labels do not
    resp = client.post("/train", json={"model": "m", "data": from_uri(root / "long.csv", "y")})
    assert resp.status_code == 413, resp.text
    assert "bytes of labels" in resp.json()["error"]["message"]
