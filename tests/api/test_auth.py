"""Access control: API keys as Bearer tokens on mutating routes (and on reads with ``protect_reads``).

401 without a key (with ``WWW-Authenticate: Bearer``), 403 with a wrong one, keys from a comma list or a
file, compared in constant time and never logged; the start-up warning when no key is configured; the
security scheme on the OpenAPI page.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api import security
from service.app import create_app
from service.config import Settings
from service.observability.logging import JsonFormatter
from service.store.jobs import JobStore

from ..support import LOCAL_URL, TOY_TRAIN

KEYS = ("alpha-key-0123-4567", "beta-key-4567-89ab", "gamma-key-89ab-cdef")
SMALL_CSV = b"a,b,y\n0,1,0\n1,0.5,0\n2,2.5,1\n3,3,1\n0.5,0.2,0\n2.5,2,1\n"
ROWS = {"model": "toy", "features": [[0.0, 1.0], [3.0, 3.0]]}
#: Routes that stay open even with ``protect_reads``: probes (ours, the V2 protocol's and MLflow's), the scrape
#: and the API documentation.
ALWAYS_OPEN = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect",
               "/redoc", "/v2/health/live", "/v2/health/ready", "/ping", "/health"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


GOOD = bearer(KEYS[0])
WRONG = bearer("not-a-key")


@pytest.fixture
def keyed(make_client: Callable[..., TestClient]) -> Callable[..., TestClient]:
    """A client with ``KEYS`` configured and the ``toy`` model trained twice (versions 1 and 2)."""

    def make(**settings: Any) -> TestClient:
        client = make_client(api_keys=",".join(KEYS), **settings)
        for _ in range(2):
            assert client.post("/train", json=TOY_TRAIN, headers=GOOD).status_code == 201
        return client

    return make


def check_denied(resp: Any, status: int, api_error: Callable[..., dict[str, Any]]) -> None:
    kind = {401: "unauthorized", 403: "forbidden"}[status]
    api_error(resp, status, kind)
    assert resp.headers.get("www-authenticate") == "Bearer"
    assert "x-request-id" in resp.headers


def queued_job(client: TestClient) -> str:
    """A job record on the client's store that nobody runs yet (queued, so it can be cancelled)."""
    store: Path = client.app.state.services.registry.root  # type: ignore[attr-defined]
    job, created = JobStore(store).create("toy")
    assert created
    return job.id


# (name, method, path, request kwargs, success status, setup)
def _setup_alias(client: TestClient) -> None:
    assert client.put("/models/toy/aliases/staging", json={"version": 1}, headers=GOOD).status_code == 200


MUTATING: list[tuple[str, str, str, dict[str, Any], int]] = [
    ("train-json", "POST", "/train", {"json": TOY_TRAIN}, 201),
    ("train-csv", "POST", "/train",
     {"files": {"file": ("d.csv", SMALL_CSV, "text/csv")}, "data": {"model": "toy", "target": "y"}}, 201),
    ("train-background", "POST", "/train?background=true", {"json": TOY_TRAIN}, 202),
    ("delete-version", "DELETE", "/models/toy/versions/2", {}, 204),
    ("put-alias", "PUT", "/models/toy/aliases/staging", {"json": {"version": 1}}, 200),
    ("delete-alias", "DELETE", "/models/toy/aliases/staging", {}, 204),
    ("put-threshold", "PUT", "/models/toy/versions/1/threshold", {"json": {"threshold": 0.3}}, 200),
    ("cancel-job", "DELETE", "/jobs/{job}", {}, 202),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "ok"), [m[1:] for m in MUTATING], ids=[m[0] for m in MUTATING])
def test_mutating_routes_need_a_valid_key(keyed, api_error, method, path, kwargs, ok):
    client = keyed()
    if "aliases/staging" in path and method == "DELETE":
        _setup_alias(client)
    if "{job}" in path:
        path = path.format(job=queued_job(client))
    before = client.get("/models/toy", headers=GOOD).json()

    check_denied(client.request(method, path, **kwargs), 401, api_error)
    check_denied(client.request(method, path, headers=WRONG, **kwargs), 403, api_error)
    check_denied(client.request(method, path, headers={"Authorization": "Bearer "}, **kwargs), 401, api_error)
    check_denied(client.request(method, path, headers={"Authorization": f"Basic {KEYS[0]}"}, **kwargs), 401,
                 api_error)
    # refused requests changed nothing
    assert client.get("/models/toy", headers=GOOD).json() == before

    resp = client.request(method, path, headers=GOOD, **kwargs)
    assert resp.status_code == ok, resp.text


def test_each_configured_key_works_and_keys_are_trimmed(make_client, tmp_path):
    key_file = tmp_path / "keys.txt"
    key_file.write_text("\ufeff# API keys for logreg\n#\n\n  file-key-one-0123  \n\nfile-key-two-4567\n")
    client = make_client(api_keys=f" {KEYS[0]} , {KEYS[1]},,{KEYS[2]} ", api_keys_file=key_file)
    keys = [*KEYS, "file-key-one-0123", "file-key-two-4567"]
    for i, key in enumerate(keys, start=1):
        resp = client.post("/train", json=TOY_TRAIN, headers=bearer(key))
        assert resp.status_code == 201, (key, resp.text)
        assert resp.json()["version"] == i
    # the scheme is case-insensitive (RFC 7235); the key is not
    assert client.post("/train", json=TOY_TRAIN, headers={"Authorization": f"bearer {KEYS[1]}"}).status_code == 201
    assert client.post("/train", json=TOY_TRAIN, headers=bearer(KEYS[1].upper())).status_code == 403
    # a prefix or an extension of a key is not the key
    assert client.post("/train", json=TOY_TRAIN, headers=bearer(KEYS[1][:-1])).status_code == 403
    assert client.post("/train", json=TOY_TRAIN, headers=bearer(KEYS[1] + "x")).status_code == 403
    # the separator and blank lines are never keys
    assert client.post("/train", json=TOY_TRAIN, headers=bearer(",")).status_code == 403


def test_keys_from_a_file_alone(make_client, tmp_path, api_error):
    key_file = tmp_path / "keys"
    key_file.write_text("only-from-file-0123\n")
    client = make_client(api_keys_file=key_file)
    check_denied(client.post("/train", json=TOY_TRAIN), 401, api_error)
    assert client.post("/train", json=TOY_TRAIN, headers=bearer("only-from-file-0123")).status_code == 201


def test_keys_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LOGREG_API_KEYS", "env-one-0123456789,env-two-0123456789")
    monkeypatch.setenv("LOGREG_PROTECT_READS", "true")
    settings = Settings(model_store=tmp_path / "store")
    assert settings.keys() == ["env-one-0123456789", "env-two-0123456789"]
    assert settings.protect_reads is True


def read_requests(job: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("POST", "/predict_proba", {"json": ROWS}),
        ("POST", "/predict", {"json": ROWS}),
        ("POST", "/metrics", {"json": {**ROWS, "labels": [0, 1]}}),
        ("GET", "/metrics?model=toy", {}),
        ("GET", "/models", {}),
        ("GET", "/models/toy", {}),
        ("GET", "/models/toy/versions/1", {}),
        ("GET", f"/jobs/{job}", {}),
    ]


def test_reads_are_open_only_when_opened_explicitly(keyed):
    client = keyed(protect_reads=False)
    for method, path, kwargs in read_requests(queued_job(client)):
        resp = client.request(method, path, **kwargs)
        assert resp.status_code == 200, (method, path, resp.text)
        # a wrong key on an open route is ignored, not punished
        assert client.request(method, path, headers=WRONG, **kwargs).status_code == 200, (method, path)


@pytest.mark.parametrize("protect_reads", [None, True], ids=["default", "explicit"])
def test_with_keys_reads_are_guarded(keyed, api_error, protect_reads):
    client = keyed(protect_reads=protect_reads)
    for method, path, kwargs in read_requests(queued_job(client)):
        check_denied(client.request(method, path, **kwargs), 401, api_error)
        check_denied(client.request(method, path, headers=WRONG, **kwargs), 403, api_error)
        for key in KEYS:
            resp = client.request(method, path, headers=bearer(key), **kwargs)
            assert resp.status_code == 200, (method, path, resp.text)


def test_probes_and_docs_stay_open_and_the_scrape_has_its_own_setting(keyed):
    client = keyed()
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs", "/"):
        assert client.get(path).status_code == 200, path
    assert client.get("/monitoring/metrics").status_code == 401
    assert client.get("/monitoring/metrics", headers=bearer(KEYS[0])).status_code == 200
    assert keyed(protect_monitoring=False).get("/monitoring/metrics").status_code == 200
    opened = keyed(protect_reads=False)
    assert opened.get("/monitoring/metrics").status_code == 200  # follows reads unless set
    assert keyed(protect_reads=False, protect_monitoring=True).get("/monitoring/metrics").status_code == 401


@pytest.mark.parametrize("text", ["short-key\n", "# comment\n\ngood-key-0123456789\nabc\n"])
def test_short_keys_are_refused_at_start(make_client, tmp_path, text):
    from service.config import ConfigurationError, Settings

    key_file = tmp_path / "keys"
    key_file.write_text(text)
    with pytest.raises(ConfigurationError, match="shorter than 16 characters"):
        Settings(api_keys_file=key_file).keys()
    with pytest.raises(ConfigurationError, match="shorter than 16"):
        Settings(api_keys="tiny").keys()


def test_comment_lines_and_a_byte_order_mark_are_not_keys(make_client, tmp_path):
    key_file = tmp_path / "keys"
    key_file.write_text("\ufeffreal-key-0123456789\n# API keys for logreg\n#\n   # indented comment\n")
    client = make_client(api_keys_file=key_file)
    for token in ("#", "# API keys for logreg", "real-key-0123456789"[1:]):
        assert client.post("/train", json=TOY_TRAIN, headers=bearer(token)).status_code == 403, token
    assert client.post("/train", json=TOY_TRAIN, headers=bearer("real-key-0123456789")).status_code == 201


def _concrete(path: str, job: str) -> str:
    values = {"name": "toy", "version": "1", "alias": "staging", "job_id": job}
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def test_no_route_is_left_open_by_mistake(keyed):
    """Every documented route: writes always need a key, reads with protect_reads (except probes and docs)."""
    client = keyed(protect_reads=True)
    job = queued_job(client)
    paths = client.get("/openapi.json").json()["paths"]
    assert len(paths) >= 10
    checked = 0
    for path, operations in paths.items():
        for method in operations:
            if path in ALWAYS_OPEN:
                continue
            resp = client.request(method.upper(), _concrete(path, job))
            assert resp.status_code == 401, (method, path, resp.status_code, resp.text[:200])
            checked += 1
    assert checked >= 14


def test_without_keys_every_route_is_open(make_client):
    client = make_client(protect_reads=True)  # protecting reads means nothing without keys
    assert client.post("/train", json=TOY_TRAIN).status_code == 201
    assert client.post("/train", json=TOY_TRAIN, headers=WRONG).status_code == 201
    assert client.post("/predict_proba", json=ROWS).status_code == 200
    assert client.put("/models/toy/aliases/staging", json={"version": 1}).status_code == 200
    assert client.delete("/models/toy/versions/2").status_code == 204


# -- logs -----------------------------------------------------------------------------------------------
class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.stream = io.StringIO()
        self.json = JsonFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.stream.write(self.json.format(record) + "\n")


@pytest.fixture
def service_log() -> Iterator[Callable[..., tuple[TestClient, Records]]]:
    """``start(**settings)``: build the app, listen on the ``service`` logger, then run its start-up."""
    handlers: list[Records] = []
    clients: list[TestClient] = []

    def start(**settings: Any) -> tuple[TestClient, Records]:
        app = create_app(Settings(**settings))  # configure_logging replaces the handlers: attach after
        handler = Records()
        logging.getLogger("service").addHandler(handler)
        handlers.append(handler)
        client = TestClient(app, raise_server_exceptions=False, base_url=LOCAL_URL)
        client.__enter__()
        clients.append(client)
        return client, handler

    yield start
    for client in clients:
        client.__exit__(None, None, None)
    for handler in handlers:
        logging.getLogger("service").removeHandler(handler)


def _open_warnings(handler: Records) -> list[logging.LogRecord]:
    return [r for r in handler.records
            if r.levelno == logging.WARNING and r.name.startswith("service") and "LOGREG_API_KEYS" in r.getMessage()]


def test_startup_warns_when_no_key_is_configured(service_log, tmp_path):
    _, handler = service_log(model_store=tmp_path / "open")
    warnings = _open_warnings(handler)
    assert len(warnings) == 1
    assert "open" in warnings[0].getMessage()


def test_no_open_warning_with_keys(service_log, tmp_path):
    _, handler = service_log(model_store=tmp_path / "closed", api_keys=KEYS[0])
    assert _open_warnings(handler) == []


def test_keys_and_authorization_header_never_reach_the_logs(service_log, tmp_path, capsys):
    client, handler = service_log(model_store=tmp_path / "s", api_keys=",".join(KEYS), protect_reads=True,
                                  log_level="debug")
    wrong = "wrong-secret-zzz"
    assert client.post("/train", json=TOY_TRAIN, headers=bearer(KEYS[0])).status_code == 201
    assert client.post("/train", json=TOY_TRAIN, headers=bearer(wrong)).status_code == 403
    assert client.post("/train", json=TOY_TRAIN).status_code == 401
    assert client.post("/predict_proba", json=ROWS, headers=bearer(KEYS[1])).status_code == 200
    assert client.get("/models/nope", headers=bearer(KEYS[2])).status_code == 404
    assert client.post("/predict_proba", content=b"{not json", headers={**bearer(KEYS[2]),
                                                                         "content-type": "application/json"}
                       ).status_code == 422
    logged = handler.stream.getvalue()
    assert len(logged.splitlines()) >= 6  # the requests were logged ...
    everything = logged + "".join(capsys.readouterr())
    for secret in (*KEYS, wrong):
        assert secret not in everything  # ... without any key
    assert "Bearer" not in everything
    assert "authorization" not in everything.lower()


def test_error_answers_do_not_echo_the_key(keyed):
    client = keyed()
    secret = "a-leaked-secret-42"
    resp = client.post("/train", json=TOY_TRAIN, headers=bearer(secret))
    assert resp.status_code == 403
    assert secret not in resp.text
    assert secret not in str(resp.headers)


def test_keys_are_compared_in_constant_time_against_every_key(keyed, monkeypatch):
    """Every configured key goes through ``hmac.compare_digest``: no early exit that timing could reveal."""
    client = keyed()
    calls: list[tuple[bytes, bytes]] = []
    real = security.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    for given in (KEYS[0], KEYS[2], "not-a-key"):
        calls.clear()
        client.put("/models/toy/versions/1/threshold", json={"threshold": 0.4}, headers=bearer(given))
        digest = hashlib.sha256
        assert sorted(b for _, b in calls) == sorted(digest(k.encode()).digest() for k in KEYS), given
        assert {a for a, _ in calls} == {digest(given.encode()).digest()}


# -- OpenAPI --------------------------------------------------------------------------------------------
def test_openapi_declares_the_bearer_scheme_on_protected_routes(keyed):
    client = keyed()
    doc = client.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    bearer_names = [n for n, s in schemes.items() if s.get("type") == "http" and s.get("scheme") == "bearer"]
    assert len(bearer_names) == 1
    name = bearer_names[0]
    paths = doc["paths"]
    protected = [("post", "/train"), ("delete", "/models/{name}/versions/{version}"),
                 ("put", "/models/{name}/aliases/{alias}"), ("delete", "/models/{name}/aliases/{alias}"),
                 ("put", "/models/{name}/versions/{version}/threshold"), ("delete", "/jobs/{job_id}"),
                 ("post", "/predict_proba"), ("post", "/predict"), ("get", "/models"), ("get", "/jobs/{job_id}")]
    for method, path in protected:
        assert {name: []} in paths[path][method].get("security", []), (method, path)
        if method != "get":  # the write routes document their 401 and 403 answers
            assert {"401", "403"} <= set(paths[path][method]["responses"]), (method, path)
    for path in ("/healthz", "/readyz"):
        assert "security" not in paths[path]["get"], path
    # the docs page carries the Authorize button (swagger-ui reads the scheme from the document)
    assert client.get("/docs").status_code == 200
