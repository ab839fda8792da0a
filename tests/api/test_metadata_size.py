"""A version's record stays small whatever its width: per-feature statistics and the validation sample live in a
binary side file read on demand; the record is parsed once per version and cached."""

from __future__ import annotations

import numpy as np

from service.store import details


def _train_wide(client, name: str, d: int, n: int = 400, classes: int = 2) -> dict:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d))
    y = (np.arange(n) % classes).tolist()
    resp = client.post("/train", json={"model": name, "features": X.round(4).tolist(), "labels": y,
                                       "params": {"max_iter": 20}})
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_a_wide_versions_record_is_small_and_its_details_come_back_whole(make_client, tmp_path):
    client = make_client(model_store=tmp_path / "store")
    _train_wide(client, "wide", 3000)
    version = tmp_path / "store" / "wide" / "1"
    record = (version / "metadata.json").read_bytes()
    side = version / details.DETAILS_FILE
    assert side.exists()
    card = client.get("/models/wide/versions/1").json()
    stats = card["feature_statistics"]
    assert len(stats["features"]) == 3000 and stats["features"][5]["name"] == "x5"
    assert len(record) < len(client.get("/models/wide/versions/1").content) / 2  # the bulk is not in the record
    validation = client.get("/models/wide/versions/1/validation").json()
    assert len(validation["labels"]) == card["n_validation"] == 80
    drift = client.get("/models/wide/versions/1/drift").json()
    assert drift["training"] == stats
    rows = np.random.default_rng(1).normal(size=(5, 3000)) * 100
    answer = client.post("/predict_proba", json={"model": "wide", "features": rows.tolist()})
    assert answer.status_code == 200 and answer.headers["x-out-of-range-rows"] == "5"
    optimized = client.post("/models/wide/versions/1/threshold:optimize", json={"objective": "f1"})
    assert optimized.status_code == 200, optimized.text


def test_many_classes_keep_fewer_validation_rows(make_client, tmp_path):
    from service.domain import MAX_VALIDATION_VALUES

    client = make_client(model_store=tmp_path / "store")
    report = _train_wide(client, "many", 5, n=30_000, classes=300)
    sample = client.get("/models/many/versions/1/validation").json()
    assert len(sample["labels"]) * 300 <= MAX_VALIDATION_VALUES < report["n_validation"] * 300


def test_a_versions_record_is_parsed_once(make_client, tmp_path, monkeypatch):
    from service.store.registry import ModelRegistry

    client = make_client(model_store=tmp_path / "store")
    _train_wide(client, "m", 10)
    parsed = []
    original = ModelRegistry._parse_metadata

    def counting(self, name, v):
        parsed.append((name, v))
        return original(self, name, v)

    monkeypatch.setattr(ModelRegistry, "_parse_metadata", counting)
    for _ in range(5):
        assert client.get("/models/m/versions/1").status_code == 200
        assert client.get("/metrics", params={"model": "m", "version": 1}).status_code == 200
    assert len(parsed) <= 1
