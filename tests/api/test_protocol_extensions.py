"""What other model servers' clients send beyond plain JSON, through the app (TestClient), binary tensor data
aside (``test_v2_binary.py``):

* ``Content-Encoding: gzip`` / ``deflate`` request bodies, the decoded size held to the body limit (a gzip
  bomb is a 413), and ``Accept-Encoding`` answered;
* every answer under ``/v2`` in the protocol's ``{"error": "<message>"}``, routing 404s and 405s included;
* ``model_name`` / ``model_version`` in a V2 body, other unknown top-level fields ignored;
* ``LOGREG_INVOCATIONS_MODEL``, the model a bare MLflow ``/invocations`` serves.
"""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings

from ..support import TOY_TRAIN, sample_total, scrape
from .test_protocols import outputs, tensor, v2_error
from .test_v2_binary import HEADER, binary_request, proba_of, read_binary_answer


# == request bodies: content codings ===================================================================
def _codings(raw: bytes) -> dict[str, bytes]:
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return {"gzip": gzip.compress(raw), "x-gzip": gzip.compress(raw), "deflate": zlib.compress(raw),
            "deflate-raw": deflater.compress(raw) + deflater.flush(),
            "gzip-two-members": gzip.compress(raw[:10]) + gzip.compress(raw[10:])}


@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "deflate", "deflate-raw", "gzip-two-members"])
def test_compressed_request_bodies_in_every_dialect(served, coding):
    X = served.data["bc"].X[:40]
    want = proba_of(served.client, "bc", X)
    header = {"Content-Encoding": coding.split("-")[0] if coding != "x-gzip" else coding}
    v2 = orjson.dumps({"inputs": [tensor(X)], "outputs": [{"name": "predict_proba"}]})
    resp = served.client.post("/v2/models/bc/infer", content=_codings(v2)[coding], headers=header)
    assert np.reshape(outputs(resp)["predict_proba"]["data"], (40, 2)).tolist() == want
    content, headers = binary_request([("input-0", "FP64", X)], outputs=[{"name": "predict_proba"}])
    resp = served.client.post("/v2/models/bc/infer", content=_codings(content)[coding], headers={**headers, **header})
    assert np.reshape(outputs(resp)["predict_proba"]["data"], (40, 2)).tolist() == want
    own = orjson.dumps({"model": "bc", "features": X.tolist()})  # the scoring fast path
    resp = served.client.post("/predict_proba", content=_codings(own)[coding],
                              headers={**header, "Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["probabilities"] == want
    mlflow = orjson.dumps({"inputs": X.tolist()})
    resp = served.client.post("/invocations?model=bc&output=predict_proba", content=_codings(mlflow)[coding],
                              headers={**header, "Content-Type": "application/json"})
    assert resp.json() == {"predictions": want}


def test_compressed_requests_are_logged_and_counted_under_their_route(toy_client, monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    client = toy_client()
    raw = orjson.dumps({"inputs": [tensor([[1.0, 2.0], [3.0, 3.0]])]})
    resp = client.post("/v2/models/toy/infer", content=gzip.compress(raw), headers={"Content-Encoding": "gzip"})
    assert resp.status_code == 200, resp.text
    own = client.post("/predict", content=gzip.compress(orjson.dumps({"model": "toy", "features": [[1.0, 2.0]]})),
                      headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert own.status_code == 200, own.text
    samples = scrape(client)
    assert sample_total(samples, "logreg_http_requests_total", route="/v2/models/{name}/infer", status="200") == 1
    assert sample_total(samples, "logreg_http_requests_total", route="/predict", status="200") == 1
    assert sample_total(samples, "logreg_request_rows_sum", route="/v2/models/{name}/infer") == 2


def _bomb(decoded_bytes: int) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = b"0" * (1 << 20)
    return b"".join(z.compress(zeros) for _ in range(decoded_bytes >> 20)) + z.flush()


def test_a_gzip_bomb_is_413_without_being_inflated(toy_client, api_error):
    client = toy_client(max_body_bytes=1 << 20)
    bomb = _bomb(512 << 20)  # 512 MiB of "0" in about half a megabyte
    assert len(bomb) < 1 << 20
    tracemalloc.start()
    try:
        v2 = client.post("/v2/models/toy/infer", content=bomb, headers={"Content-Encoding": "gzip"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    v2_error(v2, 413, "once decoded (gzip)", "LOGREG_MAX_BODY_BYTES")
    assert peak < 64 << 20  # far from the 512 MiB it would take inflated
    for path in ("/predict_proba", "/invocations?model=toy", "/train"):
        api_error(client.post(path, content=bomb, headers={"Content-Encoding": "gzip",
                                                          "Content-Type": "application/json"}),
                  413, "limit_exceeded", "once decoded (gzip)")


def test_bad_compressed_bodies(toy_client, api_error):
    client = toy_client()
    raw = orjson.dumps({"inputs": [tensor([[1.0, 2.0]])]})
    for body, mention in [(b"not gzip at all", "not valid gzip"), (gzip.compress(raw)[:-12], "ends before"),
                          (gzip.compress(raw) + b"junk", "not valid gzip")]:
        v2_error(client.post("/v2/models/toy/infer", content=body, headers={"Content-Encoding": "gzip"}), 400, mention)
        api_error(client.post("/predict_proba", content=body, headers={"Content-Encoding": "gzip"}), 422,
                  "invalid_input", mention)
    v2_error(client.post("/v2/models/toy/infer", content=zlib.compress(raw) + b"x",
                         headers={"Content-Encoding": "deflate"}), 400, "after the end")
    v2_error(client.post("/v2/models/toy/infer", content=raw, headers={"Content-Encoding": "br"}), 415, "'br'")
    api_error(client.post("/predict_proba", content=raw, headers={"Content-Encoding": "zstd"}), 415,
              "unsupported_media_type", "gzip or deflate")
    assert client.post("/v2/models/toy/infer", content=raw, headers={"Content-Encoding": "identity"}).status_code == 200


def test_compressed_uploads_keep_the_upload_limit(make_client, breast_cancer_csv, api_error):
    client = make_client(max_body_bytes=4096, max_upload_bytes=64 << 10)
    boundary = "b0undary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nbc\r\n--{boundary}\r\n"
            f"Content-Disposition: form-data; name=\"target\"\r\n\r\ndiagnosis\r\n--{boundary}\r\n"
            "Content-Disposition: form-data; name=\"file\"; filename=\"bc.csv\"\r\nContent-Type: text/csv\r\n\r\n"
            ).encode() + breast_cancer_csv + f"\r\n--{boundary}--\r\n".encode()
    assert len(gzip.compress(form)) < 64 << 10 < len(form)
    resp = client.post("/train", content=gzip.compress(form), headers={
        "Content-Encoding": "gzip", "Content-Type": f"multipart/form-data; boundary={boundary}"})
    api_error(resp, 413, "limit_exceeded", "LOGREG_MAX_UPLOAD_BYTES")


# == responses: Accept-Encoding ===========================================================================
def _raw(client: TestClient, method: str, path: str, **kwargs: Any) -> tuple[Any, bytes]:
    """The response and its body as sent (not decoded)."""
    with client.stream(method, path, **kwargs) as resp:
        return resp, b"".join(resp.iter_raw())


@pytest.mark.parametrize(("accept", "coding"), [("gzip", "gzip"), ("deflate", "deflate"), ("gzip, deflate", "gzip"),
                                                ("gzip;q=0.5, deflate", "deflate"), ("*", "gzip"),
                                                ("gzip;q=0, deflate;q=0", None), ("identity", None), ("br", None)])
def test_responses_are_compressed_as_the_client_accepts(served, accept, coding):
    X = served.data["bc"].X
    resp, raw = _raw(served.client, "POST", "/predict_proba", json={"model": "bc", "features": X.tolist()},
                     headers={"Accept-Encoding": accept})
    assert resp.headers.get("content-encoding") == coding
    decoded = {"gzip": gzip.decompress, "deflate": zlib.decompress, None: bytes}[coding](raw)
    assert orjson.loads(decoded)["probabilities"] == proba_of(served.client, "bc", X)
    if coding is not None:
        assert len(raw) < len(decoded) and resp.headers["vary"] == "Accept-Encoding"


def test_a_compressed_binary_answer_keeps_the_length_of_its_json(served):
    X = served.data["bc"].X
    body = {"inputs": [tensor(X)], "parameters": {"binary_data_output": True}}
    resp, raw = _raw(served.client, "POST", "/v2/models/bc/infer", json=body, headers={"Accept-Encoding": "deflate"})
    assert resp.headers["content-encoding"] == "deflate"
    _, blobs = read_binary_answer(zlib.decompress(raw), resp.headers[HEADER])
    assert np.frombuffer(blobs["predict_proba"], "<f8").reshape(-1, 2).tolist() == proba_of(served.client, "bc", X)


def test_small_answers_and_compress_min_bytes_zero_are_not_compressed(toy_client):
    small, _ = _raw(toy_client(), "POST", "/predict_proba", json={"model": "toy", "features": [[1.0, 2.0]]},
                    headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers
    off = toy_client(compress_min_bytes=0)
    big, _ = _raw(off, "POST", "/predict_proba", json={"model": "toy", "features": [[1.0, 2.0]] * 500},
                  headers={"Accept-Encoding": "gzip"})
    assert big.status_code == 200 and "content-encoding" not in big.headers


# == every answer under /v2 in the protocol's shape ======================================================
@pytest.mark.parametrize(("method", "path", "status", "mention"), [
    ("GET", "/v2/nope", 404, "no route /v2/nope"),
    ("POST", "/v2/models/toy/explain", 404, "no route"),
    ("GET", "/v2/models/toy/versions/1/stats", 404, "no route"),
    ("GET", "/v2/repository/index", 404, "no route"),
    ("DELETE", "/v2/models/toy", 405, "DELETE is not allowed"),
    ("GET", "/v2/models/toy/infer", 405, "allowed: POST"),
    ("POST", "/v2/health/live", 405, "allowed: GET"),
    ("PUT", "/v2", 405, "allowed: GET"),
])
def test_routing_errors_under_v2_are_in_the_protocol_shape(served, method, path, status, mention):
    resp = served.client.request(method, path)
    v2_error(resp, status, mention)
    if status == 405:
        assert "GET" in resp.headers["allow"] or "POST" in resp.headers["allow"]


def test_routing_errors_elsewhere_keep_the_services_shape(served, api_error):
    api_error(served.client.get("/v2x"), 404, "not_found", "no route /v2x")
    api_error(served.client.delete("/predict"), 405, "method_not_allowed", "allowed: POST")


def test_body_limits_and_failures_under_v2_are_in_the_protocol_shape(toy_client, monkeypatch):
    client = toy_client(max_body_bytes=2048)
    big = orjson.dumps({"inputs": [tensor([[1.0, 2.0]] * 200)]})
    v2_error(client.post("/v2/models/toy/infer", content=big), 413, "limit of 2048", "LOGREG_MAX_BODY_BYTES")
    v2_error(client.post("/v2/models/toy/infer", content=iter([big[:1000], big[1000:]])), 413, "LOGREG_MAX_BODY_BYTES")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("service.api.dialects.v2.routes.score", broken)
    v2_error(client.post("/v2/models/toy/infer", json={"inputs": [tensor([[1.0, 2.0]])]}), 500, "internal server error")


# == model_name and model_version in the body; unknown fields ===========================================
def test_model_name_and_version_in_the_body_must_match_the_path(toy_client):
    c = toy_client()
    assert c.post("/train", json=TOY_TRAIN).status_code == 201  # version 2, the latest
    assert c.put("/models/toy/aliases/production", json={"version": 1}).status_code == 200
    rows = {"inputs": [tensor([[1.0, 2.0]])]}
    for path, version in [("/v2/models/toy/infer", "1"), ("/v2/models/toy/versions/2/infer", "2"),
                          ("/v2/models/toy/versions/production/infer", "production"),
                          ("/v2/models/toy/versions/production/infer", "1"), ("/v2/models/toy/infer", "production"),
                          ("/v2/models/toy/versions/1/infer", "production")]:
        resp = c.post(path, json={**rows, "model_name": "toy", "model_version": version})
        assert resp.status_code == 200, (path, resp.text)
    v2_error(c.post("/v2/models/toy/infer", json={**rows, "model_name": "other"}), 400,
             "`model_name` 'other' in the body does not match the model of the path, 'toy'")
    v2_error(c.post("/v2/models/toy/versions/2/infer", json={**rows, "model_version": "1"}), 400,
             "`model_version` '1' in the body does not match")
    msg = v2_error(c.post("/v2/models/toy/infer", json={**rows, "model_version": "2"}), 400, "which is version 1")
    assert "/v2/models/toy/versions/2/infer" in msg
    for other in ("staging", "7", "x y"):  # no such alias or version: still a mismatch, not a 404
        v2_error(c.post("/v2/models/toy/infer", json={**rows, "model_version": other}), 400, f"{other!r} in the body")


def test_unknown_top_level_fields_are_ignored_and_unknown_tensor_fields_refused(served):
    body = {"inputs": [tensor([[1.0, 2.0]])], "model_name": "toy", "sequence_id": 3, "request_context": {"a": 1}}
    assert served.client.post("/v2/models/toy/infer", json=body).status_code == 200
    bad = {"inputs": [{**tensor([[1.0, 2.0]]), "contents": {"fp64_contents": [1.0, 2.0]}}]}
    v2_error(served.client.post("/v2/models/toy/infer", json=bad), 400, "inputs.0.contents")
    bad_output = {"inputs": [tensor([[1.0, 2.0]])], "outputs": [{"name": "predict", "class_count": 2}]}
    v2_error(served.client.post("/v2/models/toy/infer", json=bad_output), 400, "outputs.0.class_count")


# == LOGREG_INVOCATIONS_MODEL ===========================================================================
@pytest.fixture
def two_models(make_client: Callable[..., TestClient]) -> Callable[..., TestClient]:
    """``two_models(**settings)``: toy (versions 1 and 2, labels flipped in 2; production -> 1) and other."""

    def make(**settings: Any) -> TestClient:
        client = make_client(**settings)
        for body in (TOY_TRAIN, {**TOY_TRAIN, "labels": [1 - v for v in TOY_TRAIN["labels"]]},
                     {**TOY_TRAIN, "model": "other"}):
            assert client.post("/train", json=body).status_code == 201
        assert client.put("/models/toy/aliases/production", json={"version": 1}).status_code == 200
        return client

    return make


def test_a_bare_invocations_with_several_models_names_the_setting(two_models, api_error):
    api_error(two_models().post("/invocations", json={"inputs": [[3.0, 3.0]]}), 422, "invalid_input",
              ("?model=NAME", "LOGREG_INVOCATIONS_MODEL", "2 models"))


@pytest.mark.parametrize(("setting", "version"), [("toy", 1), ("toy@production", 1), ("toy/2", 2)])
def test_the_invocations_model_setting(two_models, setting, version):
    c = two_models(invocations_model=setting)
    rows = [[3.0, 3.0], [0.0, 1.0]]

    def labels(**params: Any) -> list[Any]:
        return c.post("/predict", json={"model": params.get("model", "toy"), "version": params.get("version"),
                                        "features": rows}).json()["predictions"]

    assert c.post("/invocations", json={"inputs": rows}).json() == {"predictions": labels(version=version)}
    # the query still wins: another version of that model, or another model
    assert c.post("/invocations?version=2", json={"inputs": rows}).json() == {"predictions": labels(version=2)}
    assert c.post("/invocations?version=1", json={"inputs": rows}).json() == {"predictions": labels(version=1)}
    assert c.post("/invocations?model=other", json={"inputs": rows}).json() == {"predictions": labels(model="other")}


def test_an_unknown_invocations_model_is_404_and_a_malformed_one_fails_at_start(two_models, api_error, tmp_path):
    api_error(two_models(invocations_model="nope").post("/invocations", json={"inputs": [[1.0, 2.0]]}), 404,
              "not_found", "'nope'")
    for bad in ("toy/", "toy/x", "toy@1a", "b@d@x", "../x", "toy/0"):
        with pytest.raises(ValueError, match="LOGREG_INVOCATIONS_MODEL"):
            create_app(Settings(model_store=tmp_path / "s", invocations_model=bad))
