"""Schemathesis against the app's own OpenAPI schema: no 5xx, and answers that match the schema.

The app runs in-process (ASGI) on a temporary registry that already holds trained models, ``demo``
(binary, features ``a``/``b``), ``multi`` (three classes), both with a validation split, ``breast-cancer``
(the demo model of ``make run``, which the documented examples use) and ``scratch`` (three versions, the only
target of generated deletes). About two thirds of the generated requests are steered at ``demo`` and ``multi``
(see ``steer``), so the scoring, registry and metrics routes run real code rather than answering 404 to every
random name. (That every documented example works as it is: ``tests/e2e/test_openapi_examples.py``.)

Every operation of the live schema is tested (new routes are picked up without editing this file), each
in a subtest, with three bounded, derandomized Hypothesis runs: the schema's documented examples, then
``MAX_EXAMPLES`` positive (schema-valid) and ``MAX_EXAMPLES`` negative (schema-violating) generated
cases; no deadline, slow-data health checks off.

Checks, on every answer:

* ``not_a_server_error``: never a 5xx;
* ``response_schema_conformance``: bodies match the documented response model;
* ``status_code_conformance``: the status is one the operation documents (each operation lists only the
  error statuses it can give: ``tests/api/test_openapi.py``);
* ``content_type_conformance``: the documented media type;
* ``error_shape`` (ours): every 4xx is ``{"error": {"type", "message", "details"}}``. The OpenAPI page
  documents error statuses without a body schema, so schemathesis alone would not look at them.

Left off on purpose: ``negative_data_rejection`` / ``positive_data_acceptance`` (routes that parse their
own body are deliberately stricter than the documented schema: rows of the wrong width for a model are
schema-valid but 422, and 404 is the right answer to a schema-valid body naming an unknown model),
``use_after_free`` / ``ensure_resource_availability`` (stateful), ``response_headers_conformance`` and
``max_response_time`` (nothing documented to compare against).

Why not ``schemathesis.pytest.from_fixture``: with pytest 9 its lazy loader fails before running any
case (``AttributeError: 'Function' object has no attribute '_nodeid'``, schemathesis 4.32), and an
eagerly loaded schema would need the app (and its registry directory) at import time. Driving the
operations' Hypothesis strategies directly keeps the app inside a fixture.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hypothesis
import numpy as np
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation.meta import TestPhase
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import create_app
from service.config import Settings
from service.store.registry import ModelRegistry
from tests.support import LOCAL_URL

BREAST_CANCER_CSV = Path(__file__).resolve().parents[2] / "examples" / "breast_cancer.csv"
MAX_EXAMPLES = 25
MAX_DOCUMENTED_EXAMPLES = 10

DEMO_FEATURES = [[0.0, 1.0], [1.0, 0.5], [2.0, 2.5], [3.0, 3.0], [0.5, 0.2], [2.5, 2.0], [0.2, 0.9], [2.8, 2.6]]
DEMO_LABELS = [0, 0, 1, 1, 0, 1, 0, 1]
MULTI_FEATURES = [[0.0, 0.1], [0.2, 0.0], [0.1, 0.3], [3.0, 3.1], [3.2, 2.9], [2.9, 3.3], [6.0, 0.1], [6.2, 0.3],
                  [5.9, 0.0]]
MULTI_LABELS = ["x", "x", "x", "y", "y", "y", "z", "z", "z"]
#: name -> number of features, for steering generated requests at models that exist.
KNOWN_MODELS = {"demo": 2, "multi": 2}
#: A model only deletes are steered at: three versions, `production` on the third (deleting it is a 409).
SCRATCH = "scratch"

SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=False,
    suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.data_too_large,
                           hypothesis.HealthCheck.filter_too_much, hypothesis.HealthCheck.large_base_example],
)


def error_shape(ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case) -> bool:
    """Every 4xx answer is JSON in the service's one error shape (V2-protocol routes: the protocol's own
    ``{"error": "<message>"}``)."""
    if not 400 <= response.status_code < 500:
        return True
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.startswith("application/json"), f"{response.status_code} answered as {content_type!r}"
    body = response.json()
    if case.operation.path.startswith("/v2"):
        assert isinstance(body, dict) and set(body) == {"error"}, f"not the V2 error shape: {response.text[:300]}"
        assert isinstance(body["error"], str) and body["error"], body
        return True
    assert isinstance(body, dict) and set(body) == {"error"}, f"not the error shape: {response.text[:300]}"
    err = body["error"]
    assert isinstance(err, dict) and set(err) == {"type", "message", "details"}, f"not the error shape: {err}"
    assert isinstance(err["type"], str) and err["type"], err
    assert isinstance(err["message"], str) and err["message"], err
    return True


CHECKS: list[Callable[..., Any]] = [
    not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance, error_shape,
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("schemathesis") / "store"


@pytest.fixture(scope="module")
def app_schema(store: Path) -> Iterator[schemathesis.BaseSchema]:
    # Small limits keep any training a generated body asks for short; they do not change the schema.
    # Schemathesis's ASGI transport sends `Host: testserver`, a name the service refuses (421) when bound to
    # loopback unless it is listed.
    app = create_app(Settings(model_store=store, max_iter_limit=300, train_timeout_seconds=10.0,
                              max_predict_rows=1000, max_train_bytes=400_000, allowed_hosts="localhost,testserver"))
    with TestClient(app, base_url=LOCAL_URL) as client:
        for name, X, y, held_out in (("demo", DEMO_FEATURES, DEMO_LABELS, 0.25),
                                     ("multi", MULTI_FEATURES, MULTI_LABELS, 0.34),
                                     *[(SCRATCH, DEMO_FEATURES, DEMO_LABELS, 0.0)] * 3):
            resp = client.post("/train", json={"model": name, "features": X, "labels": y,
                                               "feature_names": ["a", "b"], "validation_fraction": held_out})
            assert resp.status_code == 201, resp.text
        with BREAST_CANCER_CSV.open("rb") as fh:
            resp = client.post("/train", files={"file": ("breast_cancer.csv", fh, "text/csv")},
                               data={"target": "diagnosis", "model": "breast-cancer"})
        assert resp.status_code == 201, resp.text
        assert client.put("/models/demo/aliases/production", json={"version": 1}).status_code == 200
        assert client.put(f"/models/{SCRATCH}/aliases/production", json={"version": 3}).status_code == 200
    yield schemathesis.openapi.from_asgi("/openapi.json", app)


def _pick(seed_text: str, options: list[Any]) -> Any:
    return options[zlib.crc32(seed_text.encode()) % len(options)]


def steer(case: schemathesis.Case) -> None:
    """Point about two thirds of the generated model names at models that exist (deterministically).

    A random model name gets a 404 before any real work happens; with ``demo``/``multi`` the request
    reaches version resolution, the row checks and the engine. Rows are cut or padded to the model's
    width so some of them are scored. Deletes go to ``scratch`` only, so the two models (and the
    ``production`` alias the documented examples rely on) survive the run.
    """
    key = case.operation.label + repr(case.body) + repr(case.path_parameters) + repr(case.query)
    if case.method.upper() == "DELETE":
        if case.path_parameters and "name" in case.path_parameters and _pick(key, [True, False]):
            case.path_parameters["name"] = SCRATCH
            if "version" in case.path_parameters:
                case.path_parameters["version"] = _pick(key + "v", ["1", "2", "3", case.path_parameters["version"]])
            if "alias" in case.path_parameters:
                case.path_parameters["alias"] = _pick(key + "a", ["production", case.path_parameters["alias"]])
        return
    choice = _pick(key, [None, "demo", "multi"])
    if choice is None:
        return
    width = KNOWN_MODELS[choice]
    if isinstance(case.body, dict) and isinstance(case.body.get("model"), str) and case.operation.path != "/train":
        case.body["model"] = choice
        rows = case.body.get("features")
        if isinstance(rows, list) and all(isinstance(r, list) for r in rows):
            case.body["features"] = [(r + [0.5] * width)[:width] for r in rows]
    if case.path_parameters and "name" in case.path_parameters:
        case.path_parameters["name"] = choice
        if "version" in case.path_parameters and _pick(key + "v", [True, False]):
            case.path_parameters["version"] = "1"
    if case.query and isinstance(case.query.get("model"), str):
        case.query["model"] = choice


def _run(strategy: Any, max_examples: int) -> None:
    @hypothesis.settings(SETTINGS, max_examples=max_examples)
    @hypothesis.given(case=strategy)
    def check(case: schemathesis.Case) -> None:
        steer(case)
        case.call_and_validate(checks=CHECKS)

    check()


def test_api_conforms_to_its_schema(app_schema: schemathesis.BaseSchema, subtests: pytest.Subtests) -> None:
    operations = [result.ok() for result in app_schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) >= 15, [op.label for op in operations]
    assert not [r for r in app_schema.get_all_operations() if not isinstance(r, Ok)], "schema has invalid operations"
    for operation in operations:
        with subtests.test(msg=operation.label):
            _run(operation.as_strategy(phase=TestPhase.EXAMPLES), MAX_DOCUMENTED_EXAMPLES)
            _run(operation.as_strategy(GenerationMode.POSITIVE), MAX_EXAMPLES)
            try:
                _run(operation.as_strategy(GenerationMode.NEGATIVE), MAX_EXAMPLES)
            except Unsatisfiable:  # nothing to violate: no parameters and no body (e.g. GET /healthz)
                assert not operation.body and not any(True for _ in operation.iter_parameters()), operation.label


def test_the_registry_survives_the_run(app_schema: schemathesis.BaseSchema, store: Path) -> None:
    """After the generated traffic, the two seeded models still load and predict."""
    registry = ModelRegistry(store, cache_size=0)
    assert {"demo", "multi"} <= {m["name"] for m in registry.list_models()}
    for name, X in (("demo", DEMO_FEATURES), ("multi", MULTI_FEATURES)):
        proba = registry.load(name, 1).model.predict_proba(np.asarray(X))
        assert proba.shape[0] == len(X)
