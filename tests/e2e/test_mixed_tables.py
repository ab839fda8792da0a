"""A mixed-type table against a real uvicorn: trained from a CSV upload with text and empty cells, scored with
raw records through every dialect, each answer equal to scikit-learn's pipeline on the same table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from service.domain import EncodingParams
from tests.mixed import frame, make_table, records, sklearn_pipeline, to_csv

from .conftest import Server, start_server, stop_server

pytestmark = pytest.mark.e2e
ENCODING = EncodingParams(min_frequency=15, missing_indicator=True, unknown="infrequent")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("mixed")
    server = start_server(root / "model_store", root / "server.log")
    try:
        yield server
    finally:
        stop_server(server)


def test_every_dialect_answers_as_the_scikit_learn_pipeline(server: Server, tmp_path: Path) -> None:
    table, y = make_table(2000, seed=21)
    test, _ = make_table(80, seed=22)
    test["c1"][:4] = ["never"] * 4
    expected = sklearn_pipeline(ENCODING).fit(frame(table), y).predict_proba(frame(test))
    with httpx.Client(base_url=server.url, timeout=60) as client:
        trained = client.post("/train", files={"file": ("t.csv", to_csv(table, y), "text/csv")}, data={
            "model": "mixed", "target": "y", "validation_fraction": "0",
            "params": '{"solver": "newton", "tol": 1e-12}', "encoding": ENCODING.model_dump_json()})
        assert trained.status_code == 201, trained.text
        names = list(test)
        answers = {
            "json": client.post("/predict_proba", json={"model": "mixed", "records": records(test)}).json()[
                "probabilities"],
            "csv": client.post("/predict_proba?model=mixed", content=to_csv(test),
                               headers={"content-type": "text/csv"}).json()["probabilities"],
            "mlflow": client.post("/invocations?model=mixed&output=predict_proba", json={
                "dataframe_records": records(test)}).json()["predictions"],
            "v2": np.reshape(client.post("/v2/models/mixed/infer", json={"inputs": [
                {"name": n, "shape": [len(test[n])], "datatype": {"flag": "BOOL"}.get(n, "BYTES" if n.startswith("c")
                                                                                      else "FP64"),
                 "data": test[n]} for n in names], "outputs": [{"name": "predict_proba"}]}).json()["outputs"][0][
                "data"], (-1, 2)).tolist(),
        }
        unknown = client.post("/predict", json={"model": "mixed", "records": records(test)})
        assert unknown.headers["x-unknown-categories"] == "4; c1=4"
        drift = client.get("/models/mixed/versions/1/drift").json()
        assert drift["unknown_categories"] == {"c1": 5 * 4}  # each of the five scoring requests counts its 4
    for dialect, proba in answers.items():
        assert np.abs(np.asarray(proba) - expected).max() < 1e-4, dialect
