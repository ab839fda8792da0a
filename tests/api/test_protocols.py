"""The standard dialects beside our own API: the V2 / Open Inference Protocol over REST, MLflow's scoring
server (``/invocations``, ``/ping``, ``/health``, ``/version``), and ``text/csv`` on /predict and /predict_proba.

Bodies marked "as documented" are shaped exactly like the examples of:

* the Open Inference Protocol's REST specification (kserve/open-inference-protocol,
  ``specification/protocol/inference_rest.md``; the same text is KServe's page "Open Inference Protocol
  (V2 Inference Protocol)"): the inference request with ``"id": "42"`` and inputs ``input0`` / ``input1``;
* KServe's "Deploy Scikit-learn models with InferenceService" V2 example (``iris-input-v2.json``: one
  ``input-0`` tensor of shape ``[2, 4]``, FP32, nested rows);
* MLServer's "Content Types (and Codecs)" page: the pandas codec, one input per column with shape ``[rows]``
  and ``"parameters": {"content_type": "pd"}``;
* MLflow's "Deploy MLflow Model as a Local Inference Server" page: ``{"inputs": [[1, 2], [3, 4], [5, 6]]}``,
  and its scoring-server examples ``dataframe_split`` (``columns`` a, b, c), ``dataframe_records``,
  ``instances`` and columnar ``inputs``. Where an example sends strings or nested arrays to a model of those
  types, the numeric model here gets the same shape with numbers.

Every V2 error is ``{"error": "<message>"}`` (``v2_error``); MLflow-style and CSV errors keep the service's
own envelope (``api_error``).
"""

from __future__ import annotations

import random
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.api.dialects.v2.schemas import OUTPUTS

from ..support import TOY_TRAIN

#: A model with the features of MLflow's examples (a, b, c).
ABC_BODY = {
    "model": "abc",
    "features": [[1, 2, 3], [4, 5, 6], [7, 8, 9], [2, 1, 0], [5, 3, 1], [9, 7, 8], [0, 0, 1], [6, 6, 2]],
    "labels": ["no", "yes", "yes", "no", "no", "yes", "no", "yes"],
    "feature_names": ["a", "b", "c"],
    "validation_fraction": 0,
}
CSV = {"Content-Type": "text/csv"}


def v2_error(resp: httpx.Response, status: int, *mentions: str) -> str:
    """Assert ``resp`` is the V2 protocol's error answer ``{"error": "<message>"}``; return the message."""
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text[:500]}"
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.headers
    body = resp.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert isinstance(body["error"], str) and body["error"], body
    for fragment in mentions:
        assert fragment in body["error"], body
    return body["error"]


def tensor(X: Any, datatype: str = "FP64", name: str = "input-0", flat: bool = False) -> dict[str, Any]:
    arr = np.asarray(X)
    return {"name": name, "shape": list(arr.shape), "datatype": datatype,
            "data": arr.ravel().tolist() if flat else arr.tolist()}


def infer(client: TestClient, name: str, body: dict[str, Any], version: str | None = None,
          **kwargs: Any) -> httpx.Response:
    path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/infer"
    return client.post(path, json=body, **kwargs)


def outputs(resp: httpx.Response) -> dict[str, dict[str, Any]]:
    assert resp.status_code == 200, resp.text
    return {o["name"]: o for o in resp.json()["outputs"]}


def to_csv(names: list[str], X: Any, order: list[int] | None = None) -> bytes:
    """A CSV with a header; ``order`` permutes the columns (values written with repr: exact round trip)."""
    order = order if order is not None else list(range(len(names)))
    lines = [",".join(names[j] for j in order)]
    lines += [",".join(repr(float(row[j])) for j in order) for row in np.asarray(X)]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def abc(served):
    resp = served.client.post("/train", json=ABC_BODY)
    assert resp.status_code == 201, resp.text
    return served


# == V2 / Open Inference Protocol: server =============================================================
def test_server_metadata_live_and_ready(served):
    c = served.client
    meta = c.get("/v2")
    assert meta.status_code == 200
    assert meta.json() == {"name": "logreg-service", "version": meta.json()["version"],
                           "extensions": ["binary_tensor_data"]}
    assert isinstance(meta.json()["version"], str) and meta.json()["version"]
    assert c.get("/v2/health/live").json() == {"live": True}
    assert c.get("/v2/health/ready").json() == {"ready": True}


def test_server_not_ready_when_the_store_is_unusable(make_client, tmp_path):
    store = tmp_path / "not-a-dir"
    store.write_text("x")
    client = make_client(model_store=store)
    assert client.get("/v2/health/live").status_code == 200
    v2_error(client.get("/v2/health/ready"), 503, "not a directory")
    v2_error(infer(client, "m", {"inputs": [tensor([[1.0]])]}), 503)


# == V2: model metadata and readiness =================================================================
@pytest.mark.parametrize(("name", "datatype"), [("toy", "INT64"), ("bc", "BYTES"), ("iris", "BYTES")])
def test_model_metadata(served, name, datatype):
    report = served.reports[name]
    d, k = len(report["feature_names"]), len(report["classes"])
    for path in (f"/v2/models/{name}", f"/v2/models/{name}/versions/1"):
        resp = served.client.get(path)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {
            "name": name,
            "versions": ["1"],
            "platform": "logreg-service",
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, d]}],
            "outputs": [{"name": "predict", "datatype": datatype, "shape": [-1]},
                        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, k]}],
            "feature_names": report["feature_names"],
            "classes": report["classes"],
        }


def test_metadata_and_readiness_follow_versions_and_aliases(toy_client):
    c = toy_client()
    assert c.post("/train", json={**TOY_TRAIN, "feature_names": ["x", "y"]}).status_code == 201
    assert c.put("/models/toy/aliases/production", json={"version": 1}).status_code == 200
    everything = c.get("/v2/models/toy").json()
    assert everything["versions"] == ["1", "2"]
    assert everything["feature_names"] == ["a", "b"]  # the production version's
    assert c.get("/v2/models/toy/versions/2").json()["feature_names"] == ["x", "y"]
    assert c.get("/v2/models/toy/versions/2").json()["versions"] == ["2"]
    assert c.get("/v2/models/toy/versions/production").json()["versions"] == ["1"]
    assert c.get("/v2/models/toy/ready").json() == {"name": "toy", "ready": True}
    assert c.get("/v2/models/toy/versions/2/ready").json() == {"name": "toy", "ready": True}
    assert c.get("/v2/models/toy/versions/production/ready").status_code == 200
    for path in ("/v2/models/nope", "/v2/models/nope/ready", "/v2/models/toy/versions/9",
                 "/v2/models/toy/versions/9/ready", "/v2/models/toy/versions/staging"):
        v2_error(c.get(path), 404)
    v2_error(c.get("/v2/models/b@d"), 400, "name")


def test_a_tampered_version_is_not_ready(make_client, tmp_path):
    store = tmp_path / "store"
    assert make_client(model_store=store).post("/train", json=TOY_TRAIN).status_code == 201
    artefact = store / "toy" / "1" / "model.joblib"
    raw = bytearray(artefact.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    artefact.write_bytes(bytes(raw))
    fresh = make_client(model_store=store)  # nothing cached
    v2_error(fresh.get("/v2/models/toy/ready"), 503, "not ready")
    v2_error(infer(fresh, "toy", {"inputs": [tensor([[1.0, 2.0]])]}), 409)


# == V2: inference ======================================================================================
def test_kserve_sklearn_iris_example(served):
    # as documented: KServe "Deploy Scikit-learn models with InferenceService", iris-input-v2.json
    body = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [2, 4],
                "datatype": "FP32",
                "data": [
                    [6.8, 2.8, 4.8, 1.4],
                    [6.0, 3.4, 4.5, 1.6],
                ],
            }
        ]
    }
    resp = infer(served.client, "iris", body)
    out = outputs(resp)
    payload = resp.json()
    assert payload["model_name"] == "iris" and payload["model_version"] == "1"
    assert isinstance(payload["id"], str) and payload["id"]
    assert list(out) == list(OUTPUTS)  # both outputs when none are requested, in this order
    X = np.array(body["inputs"][0]["data"])
    model = served.load("iris").model
    assert out["predict"] == {"name": "predict", "shape": [2], "datatype": "BYTES",
                              "data": model.classes_[model.predict_proba(X).argmax(axis=1)].tolist()}
    assert out["predict_proba"]["shape"] == [2, 3] and out["predict_proba"]["datatype"] == "FP64"
    np.testing.assert_allclose(out["predict_proba"]["data"], model.predict_proba(X).ravel(), rtol=0, atol=1e-12)


def test_open_inference_protocol_spec_example(served):
    # as documented: the protocol's own inference request example, verbatim. Its second input is BOOL and it
    # asks for an output this model does not have: a 400 in the protocol's error shape.
    spec_example = {
        "id": "42",
        "inputs": [
            {"name": "input0", "shape": [2, 2], "datatype": "UINT32", "data": [1, 2, 3, 4]},
            {"name": "input1", "shape": [3], "datatype": "BOOL", "data": [True]},
        ],
        "outputs": [{"name": "output0"}],
    }
    v2_error(infer(served.client, "toy", spec_example), 400)
    # the same request with the inputs and outputs this model has: flat UINT32 data with its shape
    body = {"id": "42", "inputs": [spec_example["inputs"][0]], "outputs": [{"name": "predict_proba"}]}
    resp = infer(served.client, "toy", body)
    out = outputs(resp)
    assert resp.json()["id"] == "42"
    assert list(out) == ["predict_proba"]
    expected = served.load("toy").model.predict_proba(np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert out["predict_proba"]["shape"] == [2, 2]
    np.testing.assert_allclose(out["predict_proba"]["data"], expected.ravel(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["toy", "bc", "iris"])
@pytest.mark.parametrize("flat", [False, True], ids=["nested", "flat"])
def test_infer_equals_predict_and_predict_proba(served, name, flat):
    X = served.data[name].X
    proba = served.client.post("/predict_proba", json={"model": name, "features": X.tolist()}).json()
    labels = served.client.post("/predict", json={"model": name, "features": X.tolist()}).json()
    resp = infer(served.client, name, {"inputs": [tensor(X, flat=flat)]})
    out = outputs(resp)
    assert out["predict"]["data"] == labels["predictions"]
    assert out["predict"]["shape"] == [len(X)]
    assert out["predict_proba"]["shape"] == [len(X), len(proba["classes"])]
    np.testing.assert_array_equal(out["predict_proba"]["data"], np.asarray(proba["probabilities"]).ravel())
    assert resp.json().get("parameters") == ({"threshold": labels["threshold"]} if labels["threshold"] else None)


@pytest.mark.parametrize("datatype", ["FP32", "FP16", "INT64", "INT32", "INT8", "UINT16"])
def test_numeric_datatypes(served, datatype):
    X = [[0, 1], [3, 3], [2, 0]]
    out = outputs(infer(served.client, "toy", {"inputs": [tensor(X, datatype)]}))
    expected = served.load("toy").model.predict_proba(np.array(X, dtype=float))
    np.testing.assert_allclose(out["predict_proba"]["data"], expected.ravel(), rtol=0, atol=1e-12)


def test_one_input_per_feature_as_mlserver_pandas_codec(served):
    data = served.data["iris"]
    X = data.X[::10]
    # as documented: MLServer "Content Types (and Codecs)", pandas codec: one input per column, shape [rows]
    columns = [{"name": n, "datatype": "FP64", "shape": [len(X)], "data": X[:, j].tolist()}
               for j, n in enumerate(data.feature_names)]
    columns[1] = {**columns[1], "shape": [len(X), 1], "data": [[v] for v in X[:, 1]]}  # [rows, 1] works too
    random.Random(0).shuffle(columns)  # matched by name, not position
    by_column = outputs(infer(served.client, "iris", {"parameters": {"content_type": "pd"}, "inputs": columns}))
    by_matrix = outputs(infer(served.client, "iris", {"inputs": [tensor(X)]}))
    assert by_column == by_matrix


def test_a_single_feature_model_takes_rows_or_its_feature(make_client):
    c = make_client()
    body = {"model": "one", "features": [[0.0], [1.0], [2.0], [3.0]], "labels": [0, 0, 1, 1],
            "feature_names": ["x"], "validation_fraction": 0}
    assert c.post("/train", json=body).status_code == 201
    as_rows = outputs(infer(c, "one", {"inputs": [tensor([[0.5], [2.5]])]}))
    as_vector = outputs(infer(c, "one", {"inputs": [tensor([0.5, 2.5])]}))
    as_feature = outputs(infer(c, "one", {"inputs": [tensor([0.5, 2.5], name="x")]}))
    assert as_rows == as_vector == as_feature
    assert as_rows["predict"]["data"] == [0, 1]


def test_version_in_the_path(toy_client):
    c = toy_client()
    assert c.post("/train", json={**TOY_TRAIN, "labels": [1 - v for v in TOY_TRAIN["labels"]]}).status_code == 201
    assert c.put("/models/toy/aliases/production", json={"version": 1}).status_code == 200
    rows = [[0.0, 0.0], [3.0, 3.0]]
    default = infer(c, "toy", {"inputs": [tensor(rows)]})
    assert default.json()["model_version"] == "1"
    v2 = infer(c, "toy", {"inputs": [tensor(rows)]}, version="2")
    assert v2.json()["model_version"] == "2"
    assert outputs(v2)["predict"]["data"] == [1 - v for v in outputs(default)["predict"]["data"]]
    assert infer(c, "toy", {"inputs": [tensor(rows)]}, version="production").json()["model_version"] == "1"
    v2_error(infer(c, "toy", {"inputs": [tensor(rows)]}, version="7"), 404, "no version 7")
    v2_error(infer(c, "nope", {"inputs": [tensor(rows)]}), 404, "'nope'")


def test_threshold_stored_and_requested(toy_client):
    c = toy_client()
    rows = [[1.0, 1.0], [1.5, 1.6], [2.0, 2.0], [2.4, 2.2]]
    proba = np.asarray(c.post("/predict_proba", json={"model": "toy", "features": rows}).json()["probabilities"])
    t = float(np.median(proba[:, 1]))
    assert c.put("/models/toy/versions/1/threshold", json={"threshold": t}).status_code == 200
    stored = infer(c, "toy", {"inputs": [tensor(rows)], "outputs": [{"name": "predict"}]})
    assert outputs(stored)["predict"]["data"] == c.post("/predict", json={"model": "toy", "features": rows}).json()[
        "predictions"] == (proba[:, 1] >= t).astype(int).tolist()
    assert stored.json()["parameters"] == {"threshold": t}
    asked = infer(c, "toy", {"inputs": [tensor(rows)], "parameters": {"threshold": 0.0}})
    assert outputs(asked)["predict"]["data"] == [1, 1, 1, 1]
    assert asked.json()["parameters"] == {"threshold": 0.0}
    v2_error(infer(c, "toy", {"inputs": [tensor(rows)], "parameters": {"threshold": 1.5}}), 400, "threshold")
    v2_error(infer(c, "toy", {"inputs": [tensor(rows)], "parameters": {"threshold": True}}), 400, "threshold")
    v2_error(infer(c, "toy", {"inputs": [tensor(rows)], "parameters": {"threshold": 0.3},
                              "outputs": [{"name": "predict_proba"}]}), 400, "threshold")


def test_threshold_is_refused_for_multiclass(served):
    rows = served.data["iris"].X[:2]
    v2_error(infer(served.client, "iris", {"inputs": [tensor(rows)], "parameters": {"threshold": 0.5}}), 400,
             "binary")
    assert "parameters" not in infer(served.client, "iris", {"inputs": [tensor(rows)]}).json()


def test_requested_outputs_in_the_requested_order(served):
    rows = {"inputs": [tensor([[0.0, 1.0]])]}
    resp = infer(served.client, "toy", {**rows, "outputs": [{"name": "predict_proba"}, {"name": "predict"}]})
    assert [o["name"] for o in resp.json()["outputs"]] == ["predict_proba", "predict"]
    resp = infer(served.client, "toy", {**rows, "outputs": [{"name": "predict", "parameters": {"binary_data": False}}]})
    assert [o["name"] for o in resp.json()["outputs"]] == ["predict"]
    v2_error(infer(served.client, "toy", {**rows, "outputs": [{"name": "predict"}, {"name": "predict"}]}), 400, "twice")
    v2_error(infer(served.client, "toy", {**rows, "outputs": [{"name": "logits"}]}), 400, "outputs")


def test_the_request_id_is_echoed_else_the_x_request_id(served):
    body = {"inputs": [tensor([[0.0, 1.0]])]}
    assert infer(served.client, "toy", {**body, "id": "req-7"}).json()["id"] == "req-7"
    resp = infer(served.client, "toy", body, headers={"X-Request-ID": "trace-123"})
    assert resp.json()["id"] == "trace-123" == resp.headers["x-request-id"]


def _input(**overrides: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "input-0", "shape": [2, 2], "datatype": "FP64", "data": [[1, 2], [3, 4]],
                        **overrides}]}


BAD_V2_BODIES: list[tuple[str, Any, str]] = [
    ("not-json", b"{nope", "not valid JSON"),
    ("a-list", [1, 2], "JSON object"),
    ("empty", b"", "empty"),
    ("no-inputs", {"id": "1"}, "inputs"),
    ("empty-inputs", {"inputs": []}, "inputs"),
    ("input-not-object", {"inputs": [[1, 2]]}, "object"),
    ("no-data", {"inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP64"}]}, "`data` is required"),
    ("no-shape", {"inputs": [{"name": "input-0", "datatype": "FP64", "data": [1, 2]}]}, "shape"),
    ("negative-shape", _input(shape=[-1, 2]), "shape"),
    ("bool-datatype", _input(datatype="BOOL"), "datatype"),
    ("bytes-datatype", _input(datatype="BYTES", data=["a", "b", "c", "d"]), "datatype"),
    ("unknown-input-field", _input(contents={}), "contents"),
    ("too-few-values", _input(data=[1, 2, 3]), "needs 4"),
    ("nested-wrong-shape", _input(data=[[1, 2, 3, 4]]), "nested data has shape [1, 4]"),
    ("ragged", _input(data=[[1, 2], [3]]), "numbers only"),
    ("strings", _input(data=[["1", "2"], ["3", "4"]]), "numbers only"),
    ("nulls", _input(data=[[1, None], [3, 4]]), "numbers only"),
    ("data-not-list", _input(data="1,2,3,4"), "data"),
    ("int-with-fraction", _input(datatype="INT32", data=[1, 2, 3, 4.5]), "integers"),
    ("uint8-out-of-range", _input(datatype="UINT8", data=[1, 2, 3, 300]), "range of UINT8"),
    ("uint-negative", _input(datatype="UINT32", data=[1, 2, 3, -4]), "range of UINT32"),
    ("huge-int", _input(datatype="INT64", data=[1, 2, 3, 2**70]), "range of INT64"),
    ("wrong-width", _input(shape=[1, 3], data=[1, 2, 3]), "expects 2 features"),
    ("vector", _input(shape=[4], data=[1, 2, 3, 4]), "[rows, 2] tensor"),
    ("rank-3", _input(shape=[1, 2, 2], data=[1, 2, 3, 4]), "[rows, 2] tensor"),
    ("empty-shape", _input(shape=[], data=[]), "empty shape"),
    ("no-rows", _input(shape=[0, 2], data=[]), "no rows"),
    ("feature-missing-and-unknown",
     {"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1]},
                 {"name": "c", "shape": [1], "datatype": "FP64", "data": [1]}]}, "missing feature(s) 'b'"),
    ("feature-twice",
     {"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1]},
                 {"name": "a", "shape": [1], "datatype": "FP64", "data": [1]}]}, "repeats"),
    ("feature-lengths",
     {"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1]},
                 {"name": "b", "shape": [2], "datatype": "FP64", "data": [1, 2]}]}, "different numbers of rows"),
    ("feature-2d",
     {"inputs": [{"name": "a", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]},
                 {"name": "b", "shape": [1], "datatype": "FP64", "data": [1]}]}, "[rows] or [rows, 1]"),
    ("parameters-not-object", {**_input(), "parameters": [1]}, "parameters"),
    ("id-not-string", {**_input(), "id": 42}, "id"),
]


@pytest.mark.parametrize(("body", "mention"), [b[1:] for b in BAD_V2_BODIES], ids=[b[0] for b in BAD_V2_BODIES])
def test_invalid_requests_are_400_in_the_protocol_shape(served, body, mention):
    if isinstance(body, bytes):
        resp = served.client.post("/v2/models/toy/infer", content=body, headers={"Content-Type": "application/json"})
    else:
        resp = infer(served.client, "toy", body)
    v2_error(resp, 400, mention)


def test_row_limit_is_413_in_each_dialect(toy_client, api_error):
    c = toy_client(max_predict_rows=3)
    rows = [[0.0, 1.0]] * 4
    v2_error(infer(c, "toy", {"inputs": [tensor(rows)]}), 413, "limit of 3")
    columns = [{"name": n, "shape": [4], "datatype": "FP64", "data": [0.0] * 4} for n in ("a", "b")]
    v2_error(infer(c, "toy", {"inputs": columns}), 413, "limit of 3")
    api_error(c.post("/invocations?model=toy", json={"inputs": rows}), 413, "limit_exceeded")
    api_error(c.post("/invocations?model=toy", json={"inputs": {"a": [0.0] * 4, "b": [1.0] * 4}}), 413,
              "limit_exceeded")
    api_error(c.post("/predict?model=toy", content=to_csv(["a", "b"], rows), headers=CSV), 413, "limit_exceeded")
    assert outputs(infer(c, "toy", {"inputs": [tensor(rows[:3])]}))["predict"]["shape"] == [3]


def test_api_keys_cover_the_new_routes_and_leave_the_probes_open(toy_client, api_error):
    key = "k-0123456789abcdef"
    c = toy_client(api_keys=key, protect_reads=True)
    good = {"Authorization": f"Bearer {key}"}
    body = {"inputs": [tensor([[0.0, 1.0]])]}
    for path in ("/v2/health/live", "/v2/health/ready", "/ping", "/health"):
        assert c.get(path).status_code == 200, path
    for method, path, kwargs in [("GET", "/v2", {}), ("GET", "/v2/models/toy", {}),
                                 ("GET", "/v2/models/toy/versions/1", {}), ("GET", "/v2/models/toy/ready", {}),
                                 ("POST", "/v2/models/toy/infer", {"json": body}),
                                 ("POST", "/v2/models/toy/versions/1/infer", {"json": body})]:
        resp = c.request(method, path, **kwargs)
        v2_error(resp, 401, "API key")
        assert resp.headers["www-authenticate"] == "Bearer"
        v2_error(c.request(method, path, headers={"Authorization": "Bearer wrong"}, **kwargs), 403)
        assert c.request(method, path, headers=good, **kwargs).status_code == 200, path
    api_error(c.post("/invocations?model=toy", json={"inputs": [[0.0, 1.0]]}), 401, "unauthorized")
    assert c.post("/invocations?model=toy", json={"inputs": [[0.0, 1.0]]}, headers=good).status_code == 200
    api_error(c.post("/predict?model=toy", content=b"a,b\n0,1\n", headers=CSV), 401, "unauthorized")


def test_scoring_in_every_dialect_is_monitored(toy_client, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    c = toy_client()
    assert infer(c, "toy", {"inputs": [tensor([[0.0, 1.0], [3.0, 3.0]])]}).status_code == 200
    assert c.post("/invocations", json={"inputs": [[0.0, 1.0], [3.0, 3.0], [3.0, 3.0]]}).status_code == 200
    assert c.post("/predict?model=toy", content=b"a,b\n0,1\n", headers=CSV).status_code == 200
    for path in ("/v2/health/live", "/v2/health/ready", "/ping", "/health"):
        c.get(path)
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for family in text_string_to_metric_families(c.get("/monitoring/metrics").text)
               for s in family.samples}

    def total(name: str, **labels: str) -> float:
        return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls)

    assert total("logreg_request_rows_count", route="/v2/models/{name}/infer") == 1
    assert total("logreg_request_rows_sum", route="/v2/models/{name}/infer") == 2
    assert total("logreg_request_rows_sum", route="/invocations") == 3
    assert total("logreg_request_rows_sum", route="/predict") == 1
    assert total("logreg_predictions_total", model="toy", version="1") == 2 + 3 + 1
    routes = {dict(ls).get("route") for (n, ls) in samples if n == "logreg_http_requests_total"}
    assert {"/v2/models/{name}/infer", "/invocations"} <= routes
    assert not routes & {"/v2/health/live", "/v2/health/ready", "/ping", "/health"}  # probes are not traffic


# == MLflow scoring server =============================================================================
def _labels(client: TestClient, name: str, rows: Any, **params: Any) -> list[Any]:
    resp = client.post("/predict", json={"model": name, "features": np.asarray(rows, dtype=float).tolist()},
                       params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()["predictions"]


def test_mlflow_local_inference_server_example(served):
    # as documented: MLflow "Deploy MLflow Model as a Local Inference Server", the test request
    resp = served.client.post("/invocations?model=toy", json={"inputs": [[1, 2], [3, 4], [5, 6]]})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"predictions": _labels(served.client, "toy", [[1, 2], [3, 4], [5, 6]])}


def test_mlflow_scoring_server_examples(abc):
    c = abc.client
    rows = [[1, 2, 3], [4, 5, 6]]
    expected = {"predictions": _labels(c, "abc", rows)}
    # as documented: MLflow's /invocations examples, split- and record-oriented DataFrames
    split = {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3], [4, 5, 6]]}}
    records = {"dataframe_records": [{"a": 1, "b": 2, "c": 3}, {"a": 4, "b": 5, "c": 6}]}
    # ...and TF-serving's "instances" (row objects) and "inputs" (columns), with numbers for this numeric model
    instances = {"instances": [{"a": 1, "b": 2, "c": 3}, {"a": 4, "b": 5, "c": 6}]}
    inputs = {"inputs": {"a": [1, 4], "b": [2, 5], "c": [3, 6]}}
    for body in (split, records, instances, inputs, {"instances": rows}, {"inputs": rows}):
        resp = c.post("/invocations?model=abc", json=body)
        assert resp.status_code == 200, (body, resp.text)
        assert resp.headers["content-type"] == "application/json"
        assert resp.json() == expected, body


def test_mlflow_columns_are_matched_by_name(abc):
    c = abc.client
    expected = {"predictions": _labels(c, "abc", [[1, 2, 3], [4, 5, 6]])}
    shuffled = {"dataframe_split": {"columns": ["c", "a", "b"], "data": [[3, 1, 2], [6, 4, 5]], "index": [7, 8]}}
    assert c.post("/invocations?model=abc", json=shuffled).json() == expected
    unnamed = {"dataframe_split": {"data": [[1, 2, 3], [4, 5, 6]]}}  # no columns: the model's order
    assert c.post("/invocations?model=abc", json=unnamed).json() == expected
    columns = {"inputs": {"c": [3, 6], "b": [2, 5], "a": [1, 4]}}
    assert c.post("/invocations?model=abc", json=columns).json() == expected


def test_mlflow_csv(served):
    data = served.data["bc"]
    names = data.feature_names
    order = list(range(len(names)))[::-1]
    resp = served.client.post("/invocations?model=bc", content=to_csv(names, data.X[:20], order), headers=CSV)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"predictions": _labels(served.client, "bc", data.X[:20])}


def test_mlflow_probabilities_threshold_and_version(toy_client, api_error):
    c = toy_client()
    rows = [[0.0, 1.0], [1.5, 1.6], [3.0, 3.0]]
    proba = c.post("/predict_proba", json={"model": "toy", "features": rows}).json()["probabilities"]
    resp = c.post("/invocations?model=toy&output=predict_proba", json={"inputs": rows})
    assert resp.json() == {"predictions": proba}
    assert c.post("/invocations?model=toy&threshold=0", json={"inputs": rows}).json() == {"predictions": [1, 1, 1]}
    assert c.post("/invocations?model=toy&threshold=1", json={"inputs": rows}).json()["predictions"] == _labels(
        c, "toy", rows, threshold=1)
    api_error(c.post("/invocations?model=toy&threshold=0.5&output=predict_proba", json={"inputs": rows}), 422,
              mentions="threshold")
    assert c.put("/models/toy/versions/1/threshold", json={"threshold": 0.0}).status_code == 200
    assert c.post("/invocations?model=toy", json={"inputs": rows}).json() == {"predictions": [1, 1, 1]}
    assert c.post("/train", json={**TOY_TRAIN, "labels": [1 - v for v in TOY_TRAIN["labels"]]}).status_code == 201
    assert c.post("/invocations?model=toy&version=1", json={"inputs": rows}).json() == {"predictions": [1, 1, 1]}
    assert c.post("/invocations?model=toy&version=2", json={"inputs": rows}).json() == {
        "predictions": _labels(c, "toy", rows, threshold=0.5)} != {"predictions": [1, 1, 1]}
    api_error(c.post("/invocations?model=toy&version=9", json={"inputs": rows}), 404, "not_found")
    api_error(c.post("/invocations?model=nope", json={"inputs": rows}), 404, "not_found")


def test_mlflow_model_may_be_omitted_when_the_registry_holds_one(toy_client, api_error):
    c = toy_client()
    assert c.post("/invocations", json={"inputs": [[3.0, 3.0]]}).json() == {"predictions": [1]}
    assert c.post("/train", json={**TOY_TRAIN, "model": "other"}).status_code == 201
    api_error(c.post("/invocations", json={"inputs": [[3.0, 3.0]]}), 422, mentions="?model=NAME")


def test_mlflow_params_are_accepted_and_ignored(served):
    body = {"inputs": [[3.0, 3.0]], "params": {"temperature": 0.1}}
    assert served.client.post("/invocations?model=toy", json=body).json() == {
        "predictions": _labels(served.client, "toy", [[3.0, 3.0]])}


BAD_MLFLOW_BODIES: list[tuple[str, Any, str]] = [
    ("no-field", {"data": [[1, 2]]}, "exactly one of"),
    ("two-fields", {"inputs": [[1, 2]], "instances": [[1, 2]]}, "exactly one of"),
    ("unknown-extra-field", {"inputs": [[1, 2]], "columns": ["a", "b"]}, "exactly one of"),
    ("a-list", [[1, 2]], "JSON object"),
    ("mlflow-1-pandas-records", [{"a": 1, "b": 2}], "JSON object"),
    ("params-not-object", {"inputs": [[1, 2]], "params": [1]}, "params"),
    ("split-without-data", {"dataframe_split": {"columns": ["a", "b"]}}, "dataframe_split"),
    ("split-extra-key", {"dataframe_split": {"data": [[1, 2]], "dtypes": {}}}, "dataframe_split"),
    ("split-columns-mismatch", {"dataframe_split": {"columns": ["a", "z"], "data": [[1, 2]]}},
     "unknown feature(s) 'z'"),
    ("split-columns-count", {"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}, "names 1 columns"),
    ("split-columns-not-names", {"dataframe_split": {"columns": [1, 2], "data": [[1, 2]]}}, "list of names"),
    ("records-missing", {"dataframe_records": [{"a": 1}]}, "`dataframe_records` item 0: missing feature(s) 'b'"),
    ("instances-unknown", {"instances": [{"a": 1, "b": 2, "c": 3}]}, "`instances` item 0: unknown feature(s) 'c'"),
    ("rows-wrong-width", {"inputs": [[1, 2, 3]]}, "expects 2 features"),
    ("rows-strings", {"instances": [["1", "2"]]}, "must be a number"),
    ("scalar-rows", {"inputs": [1, 2]}, "list of rows"),
    ("empty", {"inputs": []}, "empty"),
    ("columns-ragged", {"inputs": {"a": [1, 2], "b": [1]}}, "same length"),
    ("columns-unknown", {"inputs": {"a": [1], "b": [2], "c": [3]}}, "unknown feature(s) 'c'"),
]


@pytest.mark.parametrize(("body", "mention"), [b[1:] for b in BAD_MLFLOW_BODIES],
                         ids=[b[0] for b in BAD_MLFLOW_BODIES])
def test_mlflow_invalid_bodies_are_422(served, api_error, body, mention):
    api_error(served.client.post("/invocations?model=toy", json=body), 422, "invalid_input", mention)


def test_mlflow_probes_and_version(served):
    for path in ("/ping", "/health"):
        resp = served.client.get(path)
        assert resp.status_code == 200 and resp.json() == {"status": "ok"}
    version = served.client.get("/version")
    assert version.status_code == 200 and version.text == served.client.get("/v2").json()["version"]


def test_mlflow_ping_is_503_when_the_store_is_unusable(make_client, tmp_path, api_error):
    store = tmp_path / "not-a-dir"
    store.write_text("x")
    api_error(make_client(model_store=store).get("/ping"), 503, "registry_unavailable")


# == text/csv on /predict and /predict_proba ===========================================================
@pytest.mark.parametrize("name", ["toy", "bc", "iris"])
def test_csv_scores_like_json(served, name):
    data = served.data[name]
    body = to_csv(data.feature_names, data.X, list(range(len(data.feature_names)))[::-1])  # columns by name
    for route in ("/predict_proba", "/predict"):
        as_json = served.client.post(route, json={"model": name, "features": data.X.tolist()})
        as_csv = served.client.post(f"{route}?model={name}", content=body, headers=CSV)
        assert as_csv.status_code == 200, as_csv.text
        assert as_csv.json() == as_json.json()


def test_csv_with_version_threshold_and_media_type_parameters(toy_client):
    c = toy_client()
    assert c.post("/train", json={**TOY_TRAIN, "labels": [1 - v for v in TOY_TRAIN["labels"]]}).status_code == 201
    body = b"b,a\n1.0,0.0\n3.0,3.0\n"
    rows = [[0.0, 1.0], [3.0, 3.0]]
    for version in ("1", "2"):
        resp = c.post(f"/predict?model=toy&version={version}&threshold=0.4", content=body,
                      headers={"Content-Type": "text/csv; charset=utf-8"})
        expected = c.post("/predict?threshold=0.4", json={"model": "toy", "version": int(version), "features": rows})
        assert resp.json() == expected.json()
    latest = c.post("/predict_proba?model=toy", content=body, headers={"Content-Type": "application/csv"})
    assert latest.json()["version"] == 2
    crlf = c.post("/predict_proba?model=toy", content=b"\xef\xbb\xbfb,a\r\n1.0,0.0\r\n\r\n3.0,3.0\r\n", headers=CSV)
    assert crlf.json() == latest.json()  # a BOM, CRLF line ends and blank lines are fine


def test_the_training_csv_with_its_target_column_is_refused_by_name(served, breast_cancer_csv, api_error):
    err = api_error(served.client.post("/predict?model=bc", content=breast_cancer_csv, headers=CSV), 422,
                    "invalid_input", "unknown feature(s) 'diagnosis'")
    assert err["details"]["unknown"] == ["diagnosis"]


BAD_CSV: list[tuple[str, str, bytes, int, str]] = [
    ("no-model", "/predict", b"a,b\n0,1\n", 422, "?model=NAME"),
    ("unknown-model", "/predict?model=nope", b"a,b\n0,1\n", 404, "'nope'"),
    ("unknown-version", "/predict?model=toy&version=5", b"a,b\n0,1\n", 404, "no version 5"),
    ("bad-model-name", "/predict?model=b@d", b"a,b\n0,1\n", 422, "model"),
    ("empty", "/predict?model=toy", b"", 422, "empty"),
    ("header-only", "/predict_proba?model=toy", b"a,b\n", 422, "no data rows"),
    ("missing-column", "/predict_proba?model=toy", b"a\n0\n", 422, "missing feature(s) 'b'"),
    ("extra-column", "/predict_proba?model=toy", b"a,b,c\n0,1,2\n", 422, "unknown feature(s) 'c'"),
    ("no-header", "/predict_proba?model=toy", b"0,1\n2,3\n", 422, "missing feature(s) 'a', 'b'"),
    ("repeated-column", "/predict_proba?model=toy", b"a,a,b\n0,1,2\n", 422, "repeats"),
    ("not-a-number", "/predict?model=toy", b"a,b\n0,x\n", 422, "line 2, column 'b': 'x' is not a number"),
    ("empty-cell", "/predict?model=toy", b"a,b\n0,\n", 422, "is not a number"),
    ("not-finite", "/predict?model=toy", b"a,b\n0,inf\n", 422, "not finite"),
    ("short-row", "/predict?model=toy", b"a,b\n0,1\n2\n", 422, "line 3 has 1 fields"),
    ("not-utf8", "/predict?model=toy", b"a,b\n0,\xff\n", 422, "UTF-8"),
]


@pytest.mark.parametrize(("path", "body", "status", "mention"), [b[1:] for b in BAD_CSV], ids=[b[0] for b in BAD_CSV])
def test_csv_errors(served, api_error, path, body, status, mention):
    api_error(served.client.post(path, content=body, headers=CSV), status, mentions=mention)


def test_model_in_the_query_goes_with_csv_only(served, api_error):
    body = {"model": "toy", "features": [[0.0, 1.0]]}
    api_error(served.client.post("/predict?model=toy", json=body), 422, "invalid_input", "text/csv")
    api_error(served.client.post("/predict_proba?version=1", json=body), 422, "invalid_input", "text/csv")
    assert served.client.post("/predict?threshold=0.3", json=body).status_code == 200  # the threshold still is


def test_metrics_does_not_take_csv(served, api_error):
    api_error(served.client.post("/metrics?model=toy", content=b"a,b\n0,1\n", headers=CSV), 422)


# == OpenAPI ===========================================================================================
def test_the_new_routes_are_documented(served):
    schema = served.client.get("/openapi.json").json()
    paths = schema["paths"]
    expected = {
        "/v2": ["get"], "/v2/health/live": ["get"], "/v2/health/ready": ["get"],
        "/v2/models/{name}": ["get"], "/v2/models/{name}/versions/{version}": ["get"],
        "/v2/models/{name}/ready": ["get"], "/v2/models/{name}/versions/{version}/ready": ["get"],
        "/v2/models/{name}/infer": ["post"], "/v2/models/{name}/versions/{version}/infer": ["post"],
        "/invocations": ["post"], "/ping": ["get"], "/health": ["get"], "/version": ["get"],
    }
    for path, methods in expected.items():
        for method in methods:
            op = paths[path][method]
            assert op.get("summary") and op.get("description"), (path, method)
    infer_op = paths["/v2/models/{name}/infer"]["post"]
    assert infer_op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/V2InferenceRequest")
    assert infer_op["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/V2Error")
    assert "V2InferenceRequest" in schema["components"]["schemas"]
    assert "MlflowRequest" in schema["components"]["schemas"]
    for path in ("/predict", "/predict_proba", "/invocations"):
        content = paths[path]["post"]["requestBody"]["content"]
        assert {"application/json", "text/csv"} <= set(content), path
    query = {p["name"] for p in paths["/predict"]["post"]["parameters"]}
    assert {"model", "version", "threshold"} <= query


@pytest.mark.parametrize(("data", "seen"), [([[1.5, True]], "True"), ([1.5, False], "False")], ids=["nested", "flat"])
def test_v2_booleans_among_numbers_are_400(served, data, seen):
    """As in every other dialect: true and false are not numbers."""
    body = {"inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP64", "data": data}]}
    resp = served.client.post("/v2/models/toy/infer", json=body)
    assert resp.status_code == 400, resp.text
    assert f"row 0, column 1 is {seen}" in resp.json()["error"]
