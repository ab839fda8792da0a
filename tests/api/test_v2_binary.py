"""The V2 binary tensor data extension through the app (TestClient), requests and responses, with the bytes laid
out as the extension's text says (triton-inference-server/server, ``docs/protocol/extension_binary_data.md``):
little-endian, row-major, BOOL one byte, BYTES a 4-byte little-endian length before each element; the JSON's
length in ``Inference-Header-Content-Length``. The peers' own clients send theirs in
``tests/e2e/test_peer_clients.py``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from tests.mixed import make_table, records

from ..support import LOCAL_URL, TOY_TRAIN
from .test_protocols import outputs, tensor, v2_error

HEADER = "Inference-Header-Content-Length"
LE = {"BOOL": "u1", "INT8": "i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "UINT8": "u1", "UINT16": "<u2",
      "UINT32": "<u4", "UINT64": "<u8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}


def raw_tensor(datatype: str, values: Any) -> bytes:
    """Binary tensor data as the extension lays it out."""
    if datatype == "BYTES":
        items = [v if isinstance(v, bytes) else str(v).encode() for v in np.asarray(values, dtype=object).ravel()]
        return b"".join(struct.pack("<I", len(b)) + b for b in items)
    return np.asarray(values).astype(LE[datatype]).tobytes()


def binary_request(inputs: list[tuple[str, str, Any]], json_inputs: list[dict[str, Any]] = (),  # type: ignore[assignment]
                   **fields: Any) -> tuple[bytes, dict[str, str]]:
    """A request whose ``inputs`` (name, datatype, array) go as binary data after the JSON (plus ``json_inputs``
    sent in the JSON); the body and its headers."""
    blobs = [raw_tensor(dt, values) for _, dt, values in inputs]
    specs = [{"name": n, "shape": list(np.shape(v)), "datatype": dt, "parameters": {"binary_data_size": len(b)}}
             for (n, dt, v), b in zip(inputs, blobs, strict=True)]
    head = orjson.dumps({**fields, "inputs": [*specs, *json_inputs]})
    return head + b"".join(blobs), {HEADER: str(len(head)), "Content-Type": "application/octet-stream"}


def read_binary_answer(content: bytes, header: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A response with binary outputs: its JSON, and each binary output's bytes by name."""
    n = int(header)
    head, rest = orjson.loads(content[:n]), content[n:]
    blobs, offset = {}, 0
    for output in head["outputs"]:
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            blobs[output["name"]] = rest[offset : offset + size]
            offset += size
    assert offset == len(rest)
    return head, blobs


def bytes_elements(blob: bytes) -> list[bytes]:
    out, offset = [], 0
    while offset < len(blob):
        (n,) = struct.unpack_from("<I", blob, offset)
        out.append(blob[offset + 4 : offset + 4 + n])
        offset += 4 + n
    return out


def proba_of(client: TestClient, model: str, X: Any) -> list[list[float]]:
    resp = client.post("/predict_proba", json={"model": model, "features": np.asarray(X, dtype=float).tolist()})
    assert resp.status_code == 200, resp.text
    return resp.json()["probabilities"]


# == binary tensor data: requests =======================================================================
@pytest.mark.parametrize("datatype", ["FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32",
                                      "UINT16", "UINT8"])
def test_binary_input_of_every_numeric_datatype(served, datatype):
    X = np.array([[0, 1], [3, 3], [2, 0], [1, 2]])
    content, headers = binary_request([("input-0", datatype, X)])
    resp = served.client.post("/v2/models/toy/infer", content=content, headers=headers)
    out = outputs(resp)
    assert resp.headers["content-type"] == "application/json"  # no binary output was asked for
    assert out["predict_proba"]["data"] == np.ravel(proba_of(served.client, "toy", X)).tolist()


def test_binary_inputs_per_feature_mixed_with_json_inputs(served):
    data = served.data["iris"]
    X = data.X[::7]
    binary = [(n, "FP32", X[:, j].astype(np.float32)) for j, n in enumerate(data.feature_names[:2])]
    json_inputs = [{"name": n, "shape": [len(X)], "datatype": "FP64", "data": X[:, j + 2].tolist()}
                   for j, n in enumerate(data.feature_names[2:])]
    content, headers = binary_request(binary, json_inputs, outputs=[{"name": "predict_proba"}])
    out = outputs(served.client.post("/v2/models/iris/infer", content=content, headers=headers))
    as_float32 = np.column_stack([X[:, :2].astype(np.float32).astype(float), X[:, 2:]])
    assert out["predict_proba"]["data"] == np.ravel(proba_of(served.client, "iris", as_float32)).tolist()


def test_a_binary_body_on_the_versioned_path_with_kserves_fields(served):
    X = served.data["bc"].X[:3]
    content, headers = binary_request([("input-0", "FP64", X)], id="k-1", model_name="bc", model_version="1")
    resp = served.client.post("/v2/models/bc/versions/1/infer", content=content, headers=headers)
    assert resp.json()["id"] == "k-1"
    assert outputs(resp)["predict_proba"]["data"] == np.ravel(proba_of(served.client, "bc", X)).tolist()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, list[Any]]]]:
    table, y = make_table(600, seed=3)
    test, _ = make_table(40, seed=4)
    store = tmp_path_factory.mktemp("mixed-binary") / "store"
    app = create_app(Settings(model_store=store))
    with TestClient(app, raise_server_exceptions=False, base_url=LOCAL_URL) as client:
        resp = client.post("/train", json={"model": "mixed", "records": records(table), "labels": y.tolist(),
                                           "validation_fraction": 0})
        assert resp.status_code == 201, resp.text
        yield client, test


def test_a_mixed_type_model_takes_bool_bytes_and_numbers_as_binary_data(mixed):
    client, test = mixed
    want = client.post("/predict_proba", json={"model": "mixed", "records": records(test)}).json()["probabilities"]
    n = len(test["num1"])
    nums = [(c, "FP64", np.array([np.nan if v is None else v for v in test[c]])) for c in ("num1", "num2")]
    texts = [(c, "BYTES", np.array(["" if v is None else v for v in test[c]], dtype=object))
             for c in ("c0", "c1", "c2")]
    complete = [i for i, v in enumerate(test["flag"]) if v is not None]  # BOOL has no missing value: those rows only
    rows = np.array(complete)
    inputs = [(c, dt, v[rows]) for c, dt, v in [*nums, *texts]] + [("flag", "BOOL", np.array(test["flag"])[rows]
                                                                     .astype(bool))]
    content, headers = binary_request(inputs, outputs=[{"name": "predict_proba"}])
    resp = client.post("/v2/models/mixed/infer", content=content, headers=headers)
    assert resp.status_code == 200, resp.text
    assert np.array_equal(np.reshape(outputs(resp)["predict_proba"]["data"], (-1, 2)), np.asarray(want)[rows])
    # one [rows, columns] BYTES tensor of text, every cell (missing ones empty)
    names = list(test)
    text = np.array([["" if v is None else str(v).lower() if isinstance(v, bool) else repr(v) if isinstance(v, float)
                      else v for v in (test[c][i] for c in names)] for i in range(n)], dtype=object)
    content, headers = binary_request([("input-0", "BYTES", text)], outputs=[{"name": "predict_proba"}])
    resp = client.post("/v2/models/mixed/infer", content=content, headers=headers)
    assert resp.status_code == 200, resp.text
    assert np.array_equal(np.reshape(outputs(resp)["predict_proba"]["data"], (-1, 2)), want)


def _spec(**overrides: Any) -> dict[str, Any]:
    return {"name": "input-0", "shape": [2, 2], "datatype": "FP64", "parameters": {"binary_data_size": 32},
            **overrides}


FOUR = np.arange(4.0).astype("<f8").tobytes()
_S = struct.pack
#: (id, JSON object, bytes after it, Inference-Header-Content-Length ("json": the JSON's length), message)
BAD_BINARY: list[tuple[str, dict[str, Any], bytes, str | None, str]] = [
    ("header-not-a-number", {"inputs": [_spec()]}, FOUR, "many", HEADER),
    ("header-past-the-body", {"inputs": [_spec()]}, FOUR, "99999", HEADER),
    ("binary-without-header", {"inputs": [_spec()]}, FOUR, None, HEADER),
    ("size-without-header", {"inputs": [_spec()]}, b"", None, HEADER),
    ("data-and-size", {"inputs": [_spec(data=[1, 2, 3, 4])]}, FOUR, "json", "not both"),
    ("size-negative", {"inputs": [_spec(parameters={"binary_data_size": -1})]}, FOUR, "json", "binary_data_size"),
    ("size-not-a-number", {"inputs": [_spec(parameters={"binary_data_size": "32"})]}, FOUR, "json",
     "binary_data_size"),
    ("sizes-do-not-add-up", {"inputs": [_spec()]}, FOUR + b"\0", "json", "add up to 32"),
    ("size-wrong-for-shape", {"inputs": [_spec(shape=[1, 2])]}, FOUR, "json", "take 16"),
    ("bool-not-0-or-1", {"inputs": [_spec(datatype="BOOL", shape=[2], parameters={"binary_data_size": 2})]},
     b"\x01\x02", "json", "other than 0"),
    ("bytes-truncated", {"inputs": [_spec(datatype="BYTES", shape=[1, 1], parameters={"binary_data_size": 6})]},
     _S("<I", 5) + b"ab", "json", "ends sooner"),
    ("bytes-too-short-for-lengths", {"inputs": [_spec(datatype="BYTES", shape=[2, 1], parameters={
        "binary_data_size": 4})]}, _S("<I", 0), "json", "cannot hold 2"),
    ("bytes-left-over", {"inputs": [_spec(datatype="BYTES", shape=[1, 1], parameters={"binary_data_size": 7})]},
     _S("<I", 1) + b"abc", "json", "left after"),
    ("bytes-not-utf8", {"inputs": [_spec(datatype="BYTES", shape=[1, 1], parameters={"binary_data_size": 5})]},
     _S("<I", 1) + b"\xff", "json", "UTF-8"),
    ("shared-memory", {"inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP64",
                                   "parameters": {"shared_memory_region": "r"}, "data": [1, 2]}]}, b"", None,
     "shared-memory"),
    ("classification", {"inputs": [tensor([[1.0, 2.0]])], "outputs": [
        {"name": "predict_proba", "parameters": {"classification": 2}}]}, b"", None, "classification"),
    ("binary-data-not-bool", {"inputs": [tensor([[1.0, 2.0]])], "outputs": [
        {"name": "predict_proba", "parameters": {"binary_data": "yes"}}]}, b"", None, "true or false"),
    ("binary-data-output-not-bool", {"inputs": [tensor([[1.0, 2.0]])], "parameters": {"binary_data_output": 1}},
     b"", None, "true or false"),
]


@pytest.mark.parametrize(("obj", "tail", "header", "mention"), [b[1:] for b in BAD_BINARY],
                         ids=[b[0] for b in BAD_BINARY])
def test_invalid_binary_requests_are_400_in_the_protocol_shape(served, obj, tail, header, mention):
    head = orjson.dumps(obj)
    headers = {} if header is None else {HEADER: str(len(head)) if header == "json" else header}
    v2_error(served.client.post("/v2/models/toy/infer", content=head + tail, headers=headers), 400, mention)


# == binary tensor data: responses =====================================================================
@pytest.mark.parametrize(("name", "datatype"), [("toy", "INT64"), ("bc", "BYTES"), ("iris", "BYTES")])
def test_binary_outputs_are_laid_out_as_the_extension_says(served, name, datatype):
    X = served.data[name].X[:6]
    proba = proba_of(served.client, name, X)
    labels = served.client.post("/predict", json={"model": name, "features": X.tolist()}).json()["predictions"]
    body = {"inputs": [tensor(X)], "outputs": [{"name": "predict", "parameters": {"binary_data": True}},
                                               {"name": "predict_proba", "parameters": {"binary_data": True}}]}
    resp = served.client.post(f"/v2/models/{name}/infer", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/octet-stream"
    head, blobs = read_binary_answer(resp.content, resp.headers[HEADER])
    assert [o["name"] for o in head["outputs"]] == ["predict", "predict_proba"]
    for output in head["outputs"]:
        assert "data" not in output
        assert output["parameters"]["binary_data_size"] == len(blobs[output["name"]])
    assert head["outputs"][0]["datatype"] == datatype and head["outputs"][0]["shape"] == [6]
    if datatype == "BYTES":
        assert bytes_elements(blobs["predict"]) == [str(v).encode() for v in labels]
    else:
        assert np.frombuffer(blobs["predict"], "<i8").tolist() == labels
    assert head["outputs"][1]["shape"] == [6, len(proba[0])]
    assert np.frombuffer(blobs["predict_proba"], "<f8").reshape(6, -1).tolist() == proba


def test_bool_labels_are_one_byte_each(make_client):
    client = make_client()
    body = {**TOY_TRAIN, "model": "flags", "labels": [bool(v) for v in TOY_TRAIN["labels"]]}
    assert client.post("/train", json=body).status_code == 201
    X = [[0.0, 1.0], [3.0, 3.0], [0.1, 0.2]]
    labels = client.post("/predict", json={"model": "flags", "features": X}).json()["predictions"]
    resp = client.post("/v2/models/flags/infer", json={"inputs": [tensor(X)], "parameters": {
        "binary_data_output": True}, "outputs": [{"name": "predict"}]})
    head, blobs = read_binary_answer(resp.content, resp.headers[HEADER])
    assert head["outputs"][0]["datatype"] == "BOOL"
    assert list(blobs["predict"]) == [int(v) for v in labels] and labels == [False, True, False]


def test_binary_data_output_and_the_per_output_override(served):
    X = served.data["toy"].X[:3]
    every = served.client.post("/v2/models/toy/infer", json={"inputs": [tensor(X)], "parameters": {
        "binary_data_output": True}})
    head, blobs = read_binary_answer(every.content, every.headers[HEADER])
    assert [o["name"] for o in head["outputs"]] == ["predict", "predict_proba"] and set(blobs) == {"predict",
                                                                                                   "predict_proba"}
    mixed = served.client.post("/v2/models/toy/infer", json={"inputs": [tensor(X)], "parameters": {
        "binary_data_output": True}, "outputs": [{"name": "predict_proba"}, {"name": "predict", "parameters": {
            "binary_data": False}}]})
    head, blobs = read_binary_answer(mixed.content, mixed.headers[HEADER])
    assert set(blobs) == {"predict_proba"}
    assert head["outputs"][1]["data"] == served.client.post("/predict", json={
        "model": "toy", "features": X.tolist()}).json()["predictions"]
    plain = served.client.post("/v2/models/toy/infer", json={"inputs": [tensor(X)], "outputs": [
        {"name": "predict", "parameters": {"binary_data": False}}]})
    assert HEADER.lower() not in plain.headers and plain.headers["content-type"] == "application/json"
