"""What the OpenAPI document says about answers: every success answer has a schema, and each operation lists the
error statuses it can give, not every one the service knows. (Whether the answers match those schemas is the
schemathesis test's; whether the examples work, ``tests/e2e/test_openapi_examples.py``'s.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api.schemas import ModelCard
from service.app import create_app
from service.config import Settings
from service.domain import VersionMetadata

from ..support import LOCAL_URL

#: Error statuses of the service's error shape and of the V2 protocol's.
ERROR_SCHEMAS = {"#/components/schemas/ErrorResponse", "#/components/schemas/V2Error"}


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    store: Path = tmp_path_factory.mktemp("openapi") / "store"
    with TestClient(create_app(Settings(model_store=store)), base_url=LOCAL_URL) as client:
        return client.get("/openapi.json").raise_for_status().json()


def operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in openapi["paths"].items() for method, op in ops.items()]


def test_no_success_answer_has_an_empty_schema(openapi: dict[str, Any]) -> None:
    empty = []
    for method, path, op in operations(openapi):
        for status, answer in op["responses"].items():
            if not status.startswith("2") or status == "204":  # 204: no body at all
                continue
            content = answer.get("content") or {}
            if not content or any(not media.get("schema") for media in content.values()):
                empty.append(f"{method} {path} {status}")
    assert empty == []


def test_no_content_on_a_204(openapi: dict[str, Any]) -> None:
    for method, path, op in operations(openapi):
        if "204" in op["responses"]:
            assert not op["responses"]["204"].get("content"), f"{method} {path}"


def test_json_answers_name_a_model(openapi: dict[str, Any]) -> None:
    """JSON success answers reference a component schema (a pydantic model), not an inline `{}` or `object`."""
    for method, path, op in operations(openapi):
        for status, answer in op["responses"].items():
            media = (answer.get("content") or {}).get("application/json")
            if status.startswith("2") and media is not None:
                assert "$ref" in media["schema"], f"{method} {path} {status}: {media['schema']}"


def test_error_answers_have_the_error_shape(openapi: dict[str, Any]) -> None:
    for method, path, op in operations(openapi):
        for status, answer in op["responses"].items():
            if status[0] in "45":
                schema = answer["content"]["application/json"]["schema"]
                assert schema.get("$ref") in ERROR_SCHEMAS, f"{method} {path} {status}: {schema}"
                wanted = "V2Error" if path.startswith("/v2") else "ErrorResponse"
                assert schema["$ref"].endswith(wanted), f"{method} {path} {status}"


def test_each_operation_lists_only_the_errors_it_can_give(openapi: dict[str, Any]) -> None:
    errors = {(method, path): {s for s in op["responses"] if s[0] in "45"} for method, path, op in operations(openapi)}
    assert errors[("GET", "/healthz")] == set()
    assert errors[("GET", "/v2/health/live")] == set()
    assert errors[("GET", "/readyz")] == {"503"}
    assert errors[("GET", "/monitoring/metrics")] == {"401", "403"}
    assert errors[("GET", "/models")] == {"401", "403", "503"}  # no model named: no 404, no parameter: no 422
    assert errors[("GET", "/models/{name}/versions/{version}")] == {"401", "403", "404", "409", "422", "503"}
    assert errors[("POST", "/predict_proba")] == {"401", "403", "404", "409", "413", "415", "422", "503"}
    assert errors[("POST", "/train")] == {"401", "403", "409", "413", "415", "422", "429", "503"}
    assert "429" in errors[("POST", "/train")]
    assert sum("429" in found for found in errors.values()) == 1  # only a training waits for a slot
    # Reads without a body give no 413 or 415.
    for (method, path), found in errors.items():
        if method == "GET":
            assert not found & {"413", "415"}, f"{method} {path}: {found}"
    # The V2 protocol answers 400 where the service answers 422: no 422 under /v2 (not even FastAPI's own).
    for (method, path), found in errors.items():
        if path.startswith("/v2"):
            assert "422" not in found, f"{method} {path}"
    assert len({frozenset(found) for found in errors.values()}) >= 6


def test_the_framework_validation_error_is_gone(openapi: dict[str, Any]) -> None:
    """FastAPI's own 422 body (``HTTPValidationError``) is not what the service answers; it is not documented."""
    assert "HTTPValidationError" not in openapi["components"]["schemas"]


def test_training_documents_the_background_job(openapi: dict[str, Any]) -> None:
    accepted = openapi["paths"]["/train"]["post"]["responses"]["202"]
    assert accepted["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/JobResponse"}
    assert "Location" in accepted["headers"]
    assert "Retry-After" in openapi["paths"]["/train"]["post"]["responses"]["429"]["headers"]


def test_model_card_documents_every_stored_field() -> None:
    """The card is a version's metadata without its validation rows: its model lists every field of it."""
    stored = set(VersionMetadata.model_fields) - {"validation_sample"}
    assert stored <= set(ModelCard.model_fields), stored - set(ModelCard.model_fields)
    assert ModelCard.model_config.get("extra") == "allow"  # open-ended: a newer release's fields are kept
