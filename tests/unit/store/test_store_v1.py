"""A registry written by the first release (commit 9e5ecaf, ``tests/fixtures/store_v1``) still loads, lists,
resolves and predicts exactly as that release did, through the registry and through the HTTP API."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.services.scoring import predict, predict_proba
from service.store.registry import ModelRegistry
from tests.support import LOCAL_URL

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "store_v1"
EXPECTED: dict[str, Any] = json.loads((FIXTURE / "expected.json").read_text())
VERSIONS = [(name, v) for name, model in EXPECTED["models"].items() for v in model["versions"]]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A copy of the fixture, so nothing a test does can change the checked-in files."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "store", ignore=shutil.ignore_patterns("expected.json")))


def test_models_are_listed_as_the_old_release_listed_them(store: Path) -> None:
    assert ModelRegistry(store).list_models() == EXPECTED["list_models"]


@pytest.mark.parametrize("name", list(EXPECTED["models"]))
def test_versions_and_aliases_resolve_as_before(store: Path, name: str) -> None:
    registry = ModelRegistry(store)
    for ref, version in EXPECTED["models"][name]["resolve"].items():
        assert registry.resolve(name, None if ref == "null" else ref) == version


@pytest.mark.parametrize(("name", "version"), VERSIONS)
def test_each_version_loads_and_predicts_exactly_as_before(store: Path, name: str, version: str) -> None:
    expected = EXPECTED["models"][name]["versions"][version]
    loaded = ModelRegistry(store).load(name, int(version))
    card = expected["card"]
    meta = loaded.metadata
    assert (meta.classes, meta.feature_names, meta.threshold, meta.aliases) == (
        card["classes"], card["feature_names"], card["threshold"], card["aliases"])
    assert (meta.params, meta.tags, meta.sha256, meta.n_samples) == (
        card["params"], card["tags"], card["sha256"], card["n_samples"])
    assert type(loaded.model).__name__ == card["model_type"]
    X = np.asarray(expected["inputs"], dtype=np.float64)
    assert predict_proba(loaded, X).tolist() == expected["predict_proba"]
    labels, used, _ = predict(loaded, X, None)
    assert (labels, used) == (expected["labels"], expected["threshold_used"])
    if "labels_at_0_5" in expected:
        assert predict(loaded, X, 0.5)[0] == expected["labels_at_0_5"]


def test_the_api_serves_the_old_store(store: Path) -> None:
    with TestClient(create_app(Settings(model_store=store, json_logs=False)), base_url=LOCAL_URL) as client:
        for name, version in VERSIONS:
            expected = EXPECTED["models"][name]["versions"][version]
            body = {"model": name, "version": int(version), "features": expected["inputs"]}
            answer = client.post("/predict_proba", json=body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["probabilities"] == expected["predict_proba"]
            card = client.get(f"/models/{name}/versions/{version}").json()
            assert card["feature_names"] == expected["card"]["feature_names"]
            assert card["threshold"] == expected["card"]["threshold"]
