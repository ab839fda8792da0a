"""Probes, the one error shape for everything (unknown routes, wrong methods, big bodies) and OpenAPI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from service.app import create_app
from service.config import Settings

from ..support import LOCAL_URL
from .conftest import asgi_post

JSON = {"content-type": "application/json"}
ROUTES = [  # (method, path) of every route
    ("POST", "/train"),
    ("POST", "/predict_proba"),
    ("POST", "/predict"),
    ("POST", "/metrics"),
    ("GET", "/metrics"),
    ("GET", "/models"),
    ("GET", "/models/{name}"),
    ("GET", "/models/{name}/versions/{version}"),
    ("DELETE", "/models/{name}/versions/{version}"),
    ("PUT", "/models/{name}/aliases/{alias}"),
    ("DELETE", "/models/{name}/aliases/{alias}"),
    ("PUT", "/models/{name}/versions/{version}/threshold"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
]


# -- probes ---------------------------------------------------------------------------------------------
def test_healthz(make_client):
    resp = make_client().get("/healthz")
    assert resp.status_code == 200
    assert resp.json()["status"] == "ok"


def test_readyz(make_client, tmp_path):
    resp = make_client(model_store=tmp_path / "fresh" / "store").get("/readyz")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "ready"
    assert (tmp_path / "fresh" / "store").is_dir()


def test_readyz_is_503_when_the_store_is_a_file(make_client, tmp_path, api_error):
    store = tmp_path / "not-a-dir"
    store.write_text("x")
    client = make_client(model_store=store)  # the app still starts
    err = api_error(client.get("/readyz"), 503, "registry_unavailable")
    assert str(store) in err["message"]
    assert "not a directory" in err["message"]
    assert client.get("/healthz").status_code == 200  # alive, just not ready
    api_error(client.get("/models"), 503, "registry_unavailable")
    api_error(client.post("/train", json={"model": "m", "features": [[0.0], [1.0]], "labels": [0, 1],
                                          "validation_fraction": 0}), 503, "registry_unavailable")
    api_error(client.post("/predict_proba", json={"model": "m", "features": [[0.0]]}), 503, "registry_unavailable")
    assert store.read_text() == "x"


def test_readyz_recovers_when_the_store_becomes_usable(make_client, tmp_path, api_error):
    store = tmp_path / "later"
    store.write_text("x")
    client = make_client(model_store=store)
    api_error(client.get("/readyz"), 503, "registry_unavailable")
    store.unlink()
    assert client.get("/readyz").status_code == 200


# -- unknown routes and wrong methods -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("POST", "/predictions"), ("GET", "/models/toy/versions"),
     ("GET", "/models/toy/versions/1/extra"), ("DELETE", "/models/toy/aliases"),
     ("GET", "/%00"), ("GET", "/models/a/b/c/d/e/f")],
)
def test_unknown_route_is_404_in_the_error_shape(make_client, api_error, method, path):
    api_error(make_client().request(method, path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/train", "POST"),
        ("PUT", "/predict", "POST"),
        ("GET", "/predict_proba", "POST"),
        ("DELETE", "/metrics", "GET POST"),  # Starlette names the methods of the first matching route
        ("POST", "/models", "GET"),
        ("POST", "/models/toy", "GET"),
        ("PATCH", "/models/toy/versions/1", "GET"),
        ("GET", "/models/toy/aliases/production", "PUT"),
        ("GET", "/models/toy/versions/1/threshold", "PUT"),
        ("POST", "/healthz", "GET"),
        ("DELETE", "/readyz", "GET"),
    ],
)
def test_wrong_method_is_405_in_the_error_shape(make_client, api_error, method, path, allowed):
    resp = make_client().request(method, path)
    api_error(resp, 405, "method_not_allowed")
    assert set(allowed.split()) & set(resp.headers.get("allow", "").replace(",", " ").split())


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/train"), ("POST", "/predict_proba"), ("POST", "/predict"), ("POST", "/metrics"),
     ("PUT", "/models/toy/aliases/production"), ("PUT", "/models/toy/versions/1/threshold")],
)
@pytest.mark.parametrize("raw", [b"", b"{", b'{"a": 1', b"[]", b"[{}]", b'"x"', b"0", b"null", b"\x00\x01",
                                 b'{"model": "m", "features": [[1e400]]}'])
def test_every_json_route_answers_bad_json_with_422(make_client, api_error, method, path, raw):
    resp = make_client().request(method, path, content=raw, headers=JSON)
    api_error(resp, 422)


def test_no_body_type_confusion(make_client, api_error):
    """Plain text, forms and multipart are never read as JSON: 415 (the types a page may post anywhere)."""
    client = make_client()
    api_error(client.post("/predict_proba", content=b"model=toy", headers={"content-type": "text/plain"}), 415)
    api_error(client.post("/predict_proba", data={"model": "toy"}), 415)
    api_error(client.post("/metrics", files={"file": ("a.csv", b"a,b\n1,2\n")}), 415)


# -- body size ------------------------------------------------------------------------------------------
def big_body(n_rows: int = 400, labels: bool = True) -> bytes:
    body: dict[str, Any] = {"model": "toy", "features": [[0.123456789, 1.0]] * n_rows}
    if labels:
        body["labels"] = [0] * n_rows
    return json.dumps(body).encode()


@pytest.mark.parametrize("path", ["/train", "/predict_proba", "/predict", "/metrics"])
def test_body_over_max_body_bytes_with_content_length_is_413(make_client, api_error, path):
    client = make_client(max_body_bytes=2048)
    raw = big_body()
    resp = client.post(path, content=raw, headers=JSON)
    assert resp.request.headers["content-length"] == str(len(raw))
    err = api_error(resp, 413, "limit_exceeded", "2048")
    assert err["details"] == {"limit": 2048}


@pytest.mark.parametrize("path", ["/train", "/predict_proba", "/metrics"])
def test_chunked_body_over_max_body_bytes_is_413(make_client, api_error, path):
    client = make_client(max_body_bytes=2048)
    raw = big_body()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(raw), 256):
            yield raw[i : i + 256]

    resp = client.post(path, content=chunks(), headers=JSON)
    assert "content-length" not in resp.request.headers
    assert resp.request.headers.get("transfer-encoding") == "chunked"
    api_error(resp, 413, "limit_exceeded")


def test_multipart_upload_over_max_upload_bytes_is_413(make_client, api_error, breast_cancer_csv):
    client = make_client(max_upload_bytes=4096)
    resp = client.post("/train", files={"file": ("bc.csv", breast_cancer_csv)}, data={"model": "bc",
                                                                                      "target": "diagnosis"})
    api_error(resp, 413, "limit_exceeded", "LOGREG_MAX_UPLOAD_BYTES")


def test_uploads_have_their_own_limit_and_json_bodies_keep_theirs(make_client, api_error, breast_cancer_csv):
    client = make_client(max_body_bytes=4096)  # the upload is ~120 kB: over the body limit, under the upload one
    resp = client.post("/train", files={"file": ("bc.csv", breast_cancer_csv)}, data={"model": "bc",
                                                                                      "target": "diagnosis"})
    assert resp.status_code == 201, resp.text
    raw = b'{"model": "bc", "features": [' + b",".join([b"[" + b",".join([b"1.0"] * 30) + b"]"] * 40) + b"]}"
    api_error(client.post("/predict", content=raw, headers=JSON), 413, "limit_exceeded", "LOGREG_MAX_BODY_BYTES")


def test_body_under_the_limit_is_served(make_client, trainer, toy):
    client = make_client(max_body_bytes=2048)
    trainer.json(client, "toy", toy, validation_fraction=0)
    raw = big_body(80, labels=False)
    assert 1024 < len(raw) < 2048
    resp = client.post("/predict_proba", content=raw, headers=JSON)
    assert resp.status_code == 200, resp.text
    raw = big_body(70)
    assert 1024 < len(raw) < 2048
    metrics = client.post("/metrics", content=raw, headers=JSON)
    assert metrics.status_code == 200, metrics.text


def test_streamed_body_is_refused_before_it_is_read_whole(tmp_path):
    """Raw ASGI: no Content-Length, 500-byte chunks; the app stops receiving soon after the limit."""
    app = create_app(Settings(model_store=tmp_path / "store", max_body_bytes=2048))
    raw = big_body(800)
    answer = asgi_post(app, "/predict_proba", raw, chunk=500)
    assert len(raw) > 30 * 500
    assert answer.pulled <= 2048 // 500 + 2  # refused as soon as the limit was passed
    assert answer.status == 413
    body = answer.json()
    assert body["error"]["type"] == "limit_exceeded"
    assert set(body["error"]) == {"type", "message", "details"}


# -- OpenAPI --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def openapi(tmp_path_factory) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    store = tmp_path_factory.mktemp("openapi") / "store"
    with TestClient(create_app(Settings(model_store=store)), base_url=LOCAL_URL) as client:
        resp = client.get("/openapi.json")
        assert resp.status_code == 200
        assert client.get("/docs").status_code == 200
        return resp.json()


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolvable $ref {ref}"
        node = node[part]
    return node


def test_openapi_document_is_valid(openapi):
    assert openapi["openapi"].startswith("3.")
    assert openapi["info"]["title"] == "logreg-service"
    assert openapi["info"]["version"]
    assert isinstance(openapi["paths"], dict) and openapi["paths"]
    refs = set(_refs(openapi))
    assert refs, "expected schema references"
    for ref in refs:
        assert isinstance(_resolve(openapi, ref), dict)
    operation_ids = [op["operationId"] for ops in openapi["paths"].values() for op in ops.values()]
    assert len(operation_ids) == len(set(operation_ids))
    json.dumps(openapi, allow_nan=False)  # strictly JSON


def test_every_route_is_documented_with_a_summary(openapi):
    documented = {(m.upper(), p) for p, ops in openapi["paths"].items() for m in ops}
    assert set(ROUTES) <= documented
    for path, ops in openapi["paths"].items():
        for method, op in ops.items():
            assert op.get("summary", "").strip(), f"{method.upper()} {path} has no summary"
            assert op.get("responses"), f"{method.upper()} {path} documents no responses"


@pytest.mark.parametrize(
    ("path", "schema"),
    [("/train", "TrainRequest"), ("/predict_proba", "PredictRequest"), ("/predict", "PredictRequest"),
     ("/metrics", "MetricsRequest")],
)
def test_parsed_bodies_reference_existing_schemas(openapi, path, schema):
    body = openapi["paths"][path]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{schema}"}
    component = openapi["components"]["schemas"][schema]
    assert component["type"] == "object"
    assert "model" in component["properties"]
    assert "model" in component.get("required", [])


def test_train_documents_the_csv_upload(openapi):
    multipart = openapi["paths"]["/train"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(multipart["required"]) == {"file", "target", "model"}
    assert multipart["properties"]["file"]["format"] == "binary"


def test_request_schemas_list_their_fields(openapi):
    schemas = openapi["components"]["schemas"]
    assert {"features", "records", "labels", "feature_names", "params", "validation_fraction", "description",
            "tags"} <= set(schemas["TrainRequest"]["properties"])
    assert {"version", "features", "records"} <= set(schemas["PredictRequest"]["properties"])
    assert {"labels", "threshold"} <= set(schemas["MetricsRequest"]["properties"])
    assert "TrainParams" in schemas
    assert {"C", "alpha", "penalty", "solver", "max_iter"} <= set(schemas["TrainParams"]["properties"])


def test_every_json_body_documents_named_examples(openapi):
    """Each JSON request body shows named examples (sent to a real server by tests/e2e/test_openapi_examples.py);
    the body schemas carry none of their own, so there is one place to keep them (service.api.examples)."""
    for path, ops in openapi["paths"].items():
        for method, op in ops.items():
            media = op.get("requestBody", {}).get("content", {}).get("application/json")
            if media is None:
                continue
            assert media.get("examples"), f"{method.upper()} {path} shows no example body"
            schema = _resolve(openapi, media["schema"]["$ref"])
            assert "examples" not in schema, f"{media['schema']['$ref']} has examples of its own"
