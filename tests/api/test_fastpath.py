"""The scoring fast path: plain JSON requests get the routes' exact answers without reaching the routes,
and every other request reaches the routes with its body intact."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from service.api.middleware.fastpath import ScoringFastPath
from service.api.routes import prediction
from service.services.scoring import Scorer

from ..support import LOCAL_URL, sample_total, scrape
from .conftest import asgi_post

JSON = {"content-type": "application/json"}
#: A query the fast path leaves to the route and that changes nothing in the answer.
ROUTED = "explain=false"
KEY = "fastpath-test-key-0123456789"
ONE_ROW = b'{"model": "toy", "features": [[0, 1]]}'


class Routes:
    """Stands in for the app behind the fast path: records each request that reaches it, answers 418."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bytes, bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.seen.append((scope["method"], scope["path"], scope["query_string"], body))
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"routed"})


def fast_path_over(client: TestClient) -> tuple[TestClient, Routes]:
    """A client of the fast path alone, on ``client``'s app state, with a recorder in place of the routes."""
    routes = Routes()
    middleware = ScoringFastPath(routes, services=client.app.state.services, routes=prediction.router.routes)  # type: ignore[attr-defined]
    return TestClient(middleware, raise_server_exceptions=True, base_url=LOCAL_URL), routes


def plain_requests(served: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """(path, query, body) of requests the fast path answers itself: every model kind and body shape."""
    toy, bc, iris = served.data["toy"], served.data["bc"], served.data["iris"]
    out: list[tuple[str, str, dict[str, Any]]] = []
    for path in ("/predict_proba", "/predict"):
        out += [
            (path, "", {"model": "toy", "features": toy.X[:1].tolist()}),
            (path, "", {"model": "toy", "version": 1, "features": toy.X.tolist()}),
            (path, "", {"model": "bc", "version": "1", "records": bc.records()[:7]}),
            (path, "", {"model": "bc", "features": (bc.X[:3] * 100).tolist()}),  # out of the training range
            (path, "", {"model": "iris", "features": iris.X[::10].tolist()}),
        ]
    out += [("/predict", f"threshold={t}", {"model": "bc", "features": bc.X[:20].tolist()})
            for t in ("0", "0.3", "0.999", "1", "1.0")]
    return out


def test_plain_requests_are_answered_without_the_routes_and_as_the_routes_answer(served):
    fast, routes = fast_path_over(served.client)
    for path, query, body in plain_requests(served):
        content = orjson.dumps(body)
        mine = fast.post(f"{path}?{query}" if query else path, content=content, headers=JSON)
        theirs = served.client.post(f"{path}?{query}&{ROUTED}" if query else f"{path}?{ROUTED}", content=content,
                                    headers={**JSON, "Accept-Encoding": "identity"})  # the app compresses, else
        assert theirs.status_code == 200, theirs.text
        assert mine.status_code == 200, (path, query, mine.text)
        assert mine.content == theirs.content, (path, query)
        assert mine.headers["content-type"] == theirs.headers["content-type"] == "application/json"
        assert mine.headers["content-length"] == theirs.headers["content-length"]
    assert routes.seen == []


def test_the_app_answers_plain_and_routed_requests_alike(served):
    """The whole app: the same answer with and without a routed query, and the drift header on both."""
    bc = served.data["bc"]
    content = orjson.dumps({"model": "bc", "features": (bc.X[:4] * [[1], [1], [100], [1]]).tolist()})
    mine = served.client.post("/predict", content=content, headers=JSON)
    theirs = served.client.post(f"/predict?{ROUTED}", content=content, headers=JSON)
    assert mine.status_code == theirs.status_code == 200
    assert mine.content == theirs.content
    assert mine.headers["x-out-of-range-rows"] == theirs.headers["x-out-of-range-rows"] == "1"
    assert mine.headers["x-request-id"] != theirs.headers["x-request-id"]


@pytest.mark.parametrize(
    ("method", "target", "headers", "body"),
    [
        ("POST", f"/predict_proba?{ROUTED}", JSON, ONE_ROW),
        ("POST", "/predict_proba?explain=true", JSON, ONE_ROW),
        ("POST", "/predict_proba?threshold=0.5", JSON, ONE_ROW),
        ("POST", "/predict?threshold=2", JSON, ONE_ROW),
        ("POST", "/predict?threshold=abc", JSON, ONE_ROW),
        ("POST", "/predict?threshold=.5", JSON, ONE_ROW),
        ("POST", "/predict?threshold=0.5&threshold=0.6", JSON, ONE_ROW),
        ("POST", "/predict?model=toy", {"content-type": "text/csv"}, b"a,b\n0,1\n"),
        ("POST", "/predict_proba", {"content-type": "text/csv; charset=utf-8"}, b"a,b\n0,1\n"),
        ("POST", "/metrics", JSON, b'{"model": "toy", "features": [[0, 1]], "labels": [0]}'),
        ("GET", "/predict_proba", {}, b""),
        ("PUT", "/predict", JSON, ONE_ROW),
    ],
)
def test_every_other_request_reaches_the_routes_with_its_body(served, method, target, headers, body):
    fast, routes = fast_path_over(served.client)
    resp = fast.request(method, target, content=body, headers=headers)
    assert resp.status_code == 418 and resp.content == b"routed"
    path, _, query = target.partition("?")
    assert routes.seen == [(method, path, query.encode(), body)]


@pytest.mark.parametrize(
    ("path", "content", "status"),
    [
        ("/predict_proba", b'{"model": "nope", "features": [[0, 1]]}', 404),
        ("/predict_proba", b'{"model": "toy", "version": 7, "features": [[0, 1]]}', 404),
        ("/predict_proba", b'{"model": "toy", "features": [[0, 1, 2]]}', 422),
        ("/predict_proba", b'{"model": "toy", "features": [[0, "x"]]}', 422),
        ("/predict_proba", b'{"model": "toy", "features": [[0, 1]], "extra": 1}', 422),
        ("/predict_proba", b'{"model": "Not A Name!", "features": [[0, 1]]}', 422),
        ("/predict_proba", b'{"model": "toy", "features": [[0, 1]], "records": [{"a": 0, "b": 1}]}', 422),
        ("/predict_proba", b'{"model": "toy"', 422),
        ("/predict_proba", b"[1, 2]", 422),
        ("/predict_proba", b"", 422),
        ("/predict", b'{"model": "iris", "features": [[1, 2, 3, 4]], "x": 0}', 422),
        ("/predict", b'{"model": "toy", "records": [{"a": 1}]}', 422),
        ("/predict?threshold=0.5", b'{"model": "iris", "features": [[1, 2, 3, 4]]}', 422),
    ],
)
def test_failures_get_the_routes_answer_without_reaching_them(served, api_error, path, content, status):
    fast, routes = fast_path_over(served.client)
    mine = fast.post(path, content=content, headers=JSON)
    separator = "&" if "?" in path else "?"
    theirs = served.client.post(f"{path}{separator}{ROUTED}", content=content, headers=JSON)
    api_error(theirs, status)
    assert (mine.status_code, mine.content) == (theirs.status_code, theirs.content)
    assert mine.headers["content-type"] == theirs.headers["content-type"]
    assert routes.seen == []
    api_error(served.client.post(path, content=content, headers=JSON), status)  # and through the whole app


def test_a_body_in_several_chunks(served):
    """Bodies that arrive in pieces are read whole before scoring."""
    routes = Routes()
    middleware = ScoringFastPath(routes, services=served.client.app.state.services, routes=prediction.router.routes)
    content = orjson.dumps({"model": "bc", "features": served.data["bc"].X[:50].tolist()})
    assert len(content) > 3 * 1000
    answer = asgi_post(middleware, "/predict_proba", content, chunk=1000)
    assert routes.seen == []
    assert answer.status == 200
    whole = served.client.post(f"/predict_proba?{ROUTED}", content=content, headers=JSON)
    assert answer.body == whole.content


def test_each_request_is_counted_once(make_client: Callable[..., TestClient], monkeypatch):
    """Requests, rows and predictions: once for a fast answer, once for an error the route answers."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    client = make_client(log_level="warning")
    body = {"model": "toy", "features": [[0.0, 1.0], [1.0, 0.5], [2.0, 2.5], [3.0, 3.0]], "labels": [0, 0, 1, 1],
            "validation_fraction": 0}
    assert client.post("/train", json=body).status_code == 201
    for _ in range(3):
        assert client.post("/predict_proba", json={"model": "toy", "features": [[0.0, 1.0], [3.0, 3.0]]}
                           ).status_code == 200
    assert client.post("/predict?threshold=0.5", json={"model": "toy", "features": [[3.0, 3.0]]}).status_code == 200
    assert client.post("/predict_proba", json={"model": "toy", "features": [[0.0, 1.0, 2.0]]}).status_code == 422
    assert client.post("/predict_proba", json={"model": "nope", "features": [[0.0, 1.0]]}).status_code == 404
    s = scrape(client)
    requests = "logreg_http_requests_total"
    assert sample_total(s, requests, route="/predict_proba", status="200") == 3
    assert sample_total(s, requests, route="/predict", status="200") == 1
    assert sample_total(s, requests, route="/predict_proba", status="422") == 1
    assert sample_total(s, requests, route="/predict_proba", status="404") == 1
    assert sample_total(s, "logreg_request_rows_count", route="/predict_proba") == 3  # failed requests scored nothing
    assert sample_total(s, "logreg_request_rows_sum", route="/predict_proba") == 6
    assert sample_total(s, "logreg_predictions_total", model="toy") == 7
    assert sample_total(s, "logreg_predictions_total", model="toy", predicted_class="1") == 4


def test_api_keys_with_protected_reads(make_client: Callable[..., TestClient], api_error):
    """Only a valid key is answered fast; missing or wrong keys get the route's 401 or 403."""
    client = make_client(api_keys=KEY, protect_reads=True)
    good = {**JSON, "authorization": f"Bearer {KEY}"}
    train = {"model": "toy", "features": [[0.0, 1.0], [3.0, 3.0]], "labels": [0, 1], "validation_fraction": 0}
    assert client.post("/train", json=train, headers=good).status_code == 201
    content = ONE_ROW
    fast, routes = fast_path_over(client)
    assert fast.post("/predict_proba", content=content, headers=good).status_code == 200
    assert fast.post("/predict_proba", content=content, headers={**good, "authorization": f"bearer {KEY}"}
                     ).status_code == 200  # the scheme is case-insensitive, as the routes read it
    assert routes.seen == []
    for headers in (JSON, {**JSON, "authorization": "Bearer wrong"}, {**JSON, "authorization": f"Basic {KEY}"},
                    {**JSON, "authorization": KEY}):
        assert fast.post("/predict_proba", content=content, headers=headers).status_code == 418
    assert len(routes.seen) == 4
    api_error(client.post("/predict_proba", content=content, headers=JSON), 401)
    api_error(client.post("/predict_proba", content=content, headers={**JSON, "authorization": "Bearer wrong"}), 403)
    assert client.post("/predict_proba", content=content, headers=good).status_code == 200


def test_a_streamed_body_over_the_limit_is_counted_on_its_route(make_client: Callable[..., TestClient], monkeypatch):
    """The 413 of a body without Content-Length, refused while the fast path reads it, is labelled by route."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    client = make_client(max_body_bytes=4096, log_level="warning")
    content = orjson.dumps({"model": "toy", "features": [[0.5, 0.25]] * 1000})
    assert asgi_post(client.app, "/predict_proba", content, chunk=1024).status == 413
    s = scrape(client)
    assert sample_total(s, "logreg_http_requests_total", route="/predict_proba", status="413") == 1
    assert sample_total(s, "logreg_http_requests_total", route="unmatched") == 0


def test_an_unexpected_failure_is_left_to_the_routes_with_its_body(served, monkeypatch):
    """A failure that is not one of the service's errors (a bug) replays the request to the routes."""

    def broken(*args: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(Scorer, "proba_answer", broken)
    fast, routes = fast_path_over(served.client)
    resp = fast.post("/predict_proba", content=ONE_ROW, headers=JSON)
    assert resp.status_code == 418
    assert routes.seen == [("POST", "/predict_proba", b"", ONE_ROW)]
