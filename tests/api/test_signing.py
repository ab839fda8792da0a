"""Tampered versions through the API: a 409 ``integrity_error`` on ``/predict_proba``, never a 500 and never a
different answer, with and without ``LOGREG_SIGNING_KEY``; and what the key does to what the service writes."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest

from service.app import create_app
from service.config import ConfigurationError, Settings
from service.store.manifest import checksum, state_manifest, version_manifest

KEY = "k" * 40
RNG = np.random.default_rng(3)
X = RNG.normal(size=(200, 2))
Y = (X[:, 0] - 0.5 * X[:, 1] + RNG.normal(scale=0.5, size=200) > 0).astype(int)
ROW = {"a": 1.0, "b": -2.0}


class Payload:
    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args)


def train(client: Any) -> None:
    body = {"model": "demo", "features": X.tolist(), "labels": Y.tolist(), "feature_names": ["a", "b"],
            "validation_fraction": 0}
    resp = client.post("/train", json=body)
    assert resp.status_code == 201, resp.text


def proba(client: Any, **extra: Any) -> Any:
    return client.post("/predict_proba", json={"model": "demo", "records": [ROW], **extra})


def edit_json(path: Path, *, state_of: str | None = None, **changes: Any) -> None:
    """Edit a record and recompute its plain checksum, as anyone who can write the store can."""
    data = json.loads(path.read_text())
    data.update(changes)
    manifest = state_manifest(state_of, data) if state_of else version_manifest(data)
    data["checksum"] = checksum(manifest)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("key", [None, KEY], ids=["no-key", "key"])
def test_reordered_feature_names_are_a_409_not_another_prediction(make_client, api_error, key) -> None:
    client = make_client(signing_key=key)
    train(client)
    assert proba(client).status_code == 200
    meta = client.app.state.services.registry.root / "demo" / "1" / "metadata.json"
    record = json.loads(meta.read_text())
    record["feature_names"] = ["b", "a"]  # the repro: the same columns, read the other way round
    meta.write_text(json.dumps(record))
    fresh = make_client(model_store=meta.parents[2], signing_key=key)
    api_error(proba(fresh), 409, "integrity_error", mentions="version 1")
    api_error(fresh.get("/models/demo/versions/1"), 409, "integrity_error")


@pytest.mark.parametrize("key", [None, KEY], ids=["no-key", "key"])
def test_a_swapped_artefact_with_its_digests_updated_is_a_409_and_runs_nothing(make_client, api_error, tmp_path,
                                                                              key) -> None:
    client = make_client(signing_key=key)
    train(client)
    vdir = client.app.state.services.registry.root / "demo" / "1"
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    joblib.dump(Payload(os.system, f"touch {marker}"), buf)
    (vdir / "model.joblib").write_bytes(buf.getvalue())
    edit_json(vdir / "metadata.json", sha256=hashlib.sha256(buf.getvalue()).hexdigest())
    fresh = make_client(model_store=vdir.parents[1], signing_key=key)
    err = api_error(proba(fresh), 409, "integrity_error")
    assert ("tampered" if key else "refused") in err["message"], err
    assert not marker.exists(), "the swapped artefact ran code"
    assert fresh.get("/healthz").status_code == 200


def test_with_a_key_the_service_signs_what_it_writes_and_refuses_a_forged_threshold(make_client, api_error) -> None:
    client = make_client(signing_key=KEY)
    train(client)
    assert client.put("/models/demo/versions/1/threshold", json={"threshold": 0.9}).status_code == 200
    card = client.get("/models/demo/versions/1").json()
    assert len(card["checksum"]) == len(card["signature"]) == 64 and card["threshold"] == 0.9
    assert client.post("/predict", json={"model": "demo", "records": [ROW]}).json()["threshold"] == 0.9

    state = client.app.state.services.registry.root / "demo" / "model.json"
    edit_json(state, state_of="demo", thresholds={"1": 0.01})
    fresh = make_client(model_store=state.parents[1], signing_key=KEY)
    api_error(proba(fresh), 409, "integrity_error", mentions="tampered")
    api_error(fresh.post("/predict", json={"model": "demo", "records": [ROW]}), 409, "integrity_error")


def test_an_unsigned_store_is_refused_under_a_key(make_client, api_error) -> None:
    client = make_client()
    train(client)
    store = client.app.state.services.registry.root
    api_error(proba(make_client(model_store=store, signing_key=KEY)), 409, "integrity_error", mentions="unsigned")


def test_a_short_signing_key_stops_the_service(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="LOGREG_SIGNING_KEY"):
        create_app(Settings(model_store=tmp_path / "store", signing_key="too-short"))
    assert "too-short" not in repr(Settings(signing_key="too-short"))  # a secret: never shown
