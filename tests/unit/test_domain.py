"""service.domain: each rule written once, and the API's schema says what the engine enforces."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from service.api.schemas import TrainRequest
from service.domain import (
    ALIAS_PATTERN,
    MODEL_NAME_PATTERN,
    Job,
    JobState,
    RegistryState,
    TrainParams,
    parse_model_reference,
    preview,
    validate_alias,
    validate_model_name,
)
from service.engine import LogisticRegression
from service.engine.params import CHOICES, RANGES
from service.errors import InvalidInputError


def _constraints(field: str) -> dict[str, float]:
    schema = TrainParams.model_json_schema()["properties"][field]
    schema = next((s for s in schema.get("anyOf", [schema]) if s.get("type") in ("number", "integer")), schema)
    spelled = {"minimum": "ge", "exclusiveMinimum": "gt", "maximum": "le", "exclusiveMaximum": "lt"}
    return {spelled[k]: v for k, v in schema.items() if k in spelled}


@pytest.mark.parametrize("field", list(RANGES))
def test_every_engine_range_is_declared_by_the_request_schema(field: str) -> None:
    declared = _constraints(field)
    for bound, value in RANGES[field].items():
        assert declared.get(bound) == value, (field, declared)


@pytest.mark.parametrize("field", list(CHOICES))
def test_every_engine_choice_is_declared_by_the_request_schema(field: str) -> None:
    assert tuple(TrainParams.model_json_schema()["properties"][field]["enum"]) == CHOICES[field]


@pytest.mark.parametrize("params", [{"penalty": "l1", "solver": "lbfgs"}, {"C": 1.0, "alpha": 0.1}])
def test_combinations_the_engine_refuses_are_refused_by_the_schema_with_its_words(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as schema_error:
        TrainParams.model_validate(params)
    with pytest.raises(ValueError) as engine_error:
        LogisticRegression(**params).fit([[0.0], [1.0]], [0, 1])
    assert str(engine_error.value) in str(schema_error.value)


def test_the_model_name_rule_is_the_one_the_api_documents() -> None:
    assert TrainRequest.model_json_schema()["properties"]["model"]["pattern"] == MODEL_NAME_PATTERN
    for good in ("a", "breast-cancer", "A.b_c-1", "9" * 64):
        assert validate_model_name(good) == good and re.fullmatch(MODEL_NAME_PATTERN, good)
    for bad in ("", "-a", ".", "..", "a/b", "a" * 65, 5):
        with pytest.raises(InvalidInputError, match="invalid model name"):
            validate_model_name(bad)


def test_aliases_start_with_a_letter() -> None:
    assert validate_alias("production") == "production" and re.fullmatch(ALIAS_PATTERN, "production")
    for bad in ("1", "_x", "", "a" * 65):
        with pytest.raises(InvalidInputError, match="invalid alias"):
            validate_alias(bad)


def test_registry_state_refuses_aliases_that_are_not_versions() -> None:
    assert RegistryState.model_validate_json(b'{"next_version": 3, "aliases": {"prod": 2}}').aliases == {"prod": 2}
    for raw in (b'{"next_version": 0}', b'{"aliases": {"prod": "2"}}', b'{"aliases": {"1x": 2}}'):
        with pytest.raises(ValidationError):
            RegistryState.model_validate_json(raw)


def test_job_states() -> None:
    assert [s for s in JobState if s.finished] == [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED]
    job = Job.model_validate({"id": "a" * 32, "model": "m", "state": "running", "created_at": "now"})
    assert job.state is JobState.RUNNING and not job.state.finished


def test_preview_counts_what_it_leaves_out() -> None:
    assert preview(["a", "b"]) == "'a', 'b'"
    assert preview(list(range(7))) == "0, 1, 2, 3, 4 and 2 more"


@pytest.mark.parametrize(("reference", "expected"), [
    ("bc", ("bc", None)), ("bc@production", ("bc", "production")), ("bc/12", ("bc", "12")),
    ("my.model-2", ("my.model-2", None)), ("m@a.b-c", ("m", "a.b-c")),
])
def test_model_references(reference: str, expected: tuple[str, str | None]) -> None:
    assert parse_model_reference(reference) == expected


@pytest.mark.parametrize("bad", ["", "bc/", "bc@", "bc/x", "bc/0", "bc/-1", "bc/１", "bc@1a", "a@b@c", "../x", "b c",
                                 "bc/1/2"])
def test_bad_model_references_say_the_forms(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid"):
        parse_model_reference(bad)
