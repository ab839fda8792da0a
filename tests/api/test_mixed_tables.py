"""Mixed-type tables through the API: train on text, booleans and empty cells; predict raw records in every
dialect; the card shows the encoding; clear errors name the column."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from service.domain import EncodingParams
from tests.mixed import CATEGORICAL, frame, make_table, records, sklearn_pipeline, to_csv
from tests.support import LOCAL_URL

PARAMS = {"C": 1.0, "tol": 1e-12, "solver": "newton"}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from service.app import create_app
    from service.config import Settings

    table, y = make_table(1500, seed=11)
    test, _ = make_table(60, seed=12)
    test["c2"][:3] = ["unseen"] * 3
    store = tmp_path_factory.mktemp("mixed") / "store"
    app = create_app(Settings(model_store=store))
    with TestClient(app, raise_server_exceptions=False, base_url=LOCAL_URL) as client:
        resp = client.post("/train", json={"model": "mixed", "records": records(table), "labels": y.tolist(),
                                           "validation_fraction": 0, "params": PARAMS,
                                           "encoding": {"min_frequency": 10}})
        assert resp.status_code == 201, resp.text
        reference = sklearn_pipeline(EncodingParams(min_frequency=10)).fit(frame(table), y)
        yield client, test, reference.predict_proba(frame(test)), resp.json()


def test_json_records_and_rows_match_the_scikit_learn_pipeline(mixed: Any) -> None:
    client, test, expected, _ = mixed
    by_records = client.post("/predict_proba", json={"model": "mixed", "records": records(test)})
    assert by_records.status_code == 200, by_records.text
    assert np.abs(np.array(by_records.json()["probabilities"]) - expected).max() < 1e-4
    rows = [list(r.values()) for r in records(test)]
    by_rows = client.post("/predict_proba", json={"model": "mixed", "features": rows})
    assert by_rows.json()["probabilities"] == by_records.json()["probabilities"]
    assert by_records.headers["x-unknown-categories"] == "3; c2=3"


def test_every_dialect_gives_the_same_probabilities(mixed: Any) -> None:
    client, test, _, _ = mixed
    want = client.post("/predict_proba", json={"model": "mixed", "records": records(test)}).json()["probabilities"]
    names = list(test)
    csv_answer = client.post("/predict_proba?model=mixed", content=to_csv(test), headers={"content-type": "text/csv"})
    assert csv_answer.status_code == 200, csv_answer.text
    assert np.allclose(csv_answer.json()["probabilities"], want, rtol=0, atol=1e-12)
    split = client.post("/invocations?model=mixed&output=predict_proba", json={"dataframe_split": {
        "columns": names[::-1], "data": [list(r.values())[::-1] for r in records(test)]}})
    assert split.status_code == 200, split.text
    assert np.allclose(split.json()["predictions"], want, atol=1e-12)
    recs = client.post("/invocations?model=mixed&output=predict_proba", json={"dataframe_records": records(test)})
    assert np.allclose(recs.json()["predictions"], want, atol=1e-12)
    datatype = {"num1": "FP64", "num2": "FP64", "flag": "BOOL", "c0": "BYTES", "c1": "BYTES", "c2": "BYTES"}
    per_feature = client.post("/v2/models/mixed/infer", json={"inputs": [
        {"name": n, "shape": [len(test[n])], "datatype": datatype[n], "data": test[n]} for n in names],
        "outputs": [{"name": "predict_proba"}]})
    assert per_feature.status_code == 200, per_feature.text
    assert np.allclose(np.reshape(per_feature.json()["outputs"][0]["data"], (-1, 2)), want, atol=1e-12)
    text = [["" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for v in r.values()]
            for r in records(test)]
    one_tensor = client.post("/v2/models/mixed/infer", json={"inputs": [
        {"name": "input-0", "shape": [len(text), len(names)], "datatype": "BYTES", "data": text}],
        "outputs": [{"name": "predict_proba"}]})
    assert one_tensor.status_code == 200, one_tensor.text
    assert np.allclose(np.reshape(one_tensor.json()["outputs"][0]["data"], (-1, 2)), want, atol=1e-9)
    meta = client.get("/v2/models/mixed").json()
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == list(datatype.items())


def test_metrics_and_explanations_speak_the_callers_columns(mixed: Any) -> None:
    client, test, _, _ = mixed
    labels = [0, 1] * (len(test["num1"]) // 2)
    metrics = client.post("/metrics", json={"model": "mixed", "records": records(test), "labels": labels})
    assert metrics.status_code == 200, metrics.text
    answer = client.post("/predict?explain=true", json={"model": "mixed", "records": records(test)[:5]})
    assert answer.status_code == 200, answer.text
    explained = answer.json()["explanations"]
    for row in explained:
        assert set(row["contributions"]) == set(test)
        assert row["baseline"] + sum(row["contributions"].values()) == pytest.approx(row["logit"], abs=1e-9)
        for reason in row["top_reasons"]:
            if reason["feature"] in CATEGORICAL:
                assert reason["value"] is None or isinstance(reason["value"], str)
        flip = row["flips"]["c0"]
        if flip is not None:
            assert isinstance(flip["value"], str)


def test_the_card_shows_each_columns_kind_and_encoding(mixed: Any) -> None:
    client, _, _, report = mixed
    card = client.get(f"/models/mixed/versions/{report['version']}").json()
    kinds = {c["name"]: c["kind"] for c in card["encoding"]["columns"]}
    assert kinds == {"num1": "numeric", "num2": "numeric", "flag": "boolean", "c0": "categorical",
                     "c1": "categorical", "c2": "categorical"}
    c0 = next(c for c in card["encoding"]["columns"] if c["name"] == "c0")
    assert c0["encoding"] == "one-hot" and "(infrequent)" in c0["levels"] and "rare2" in c0["infrequent"]
    positive = next(iter(card["coefficients"].values()))
    assert "c0=a" in positive and "num1" in positive and "c0 (infrequent)" in positive


@pytest.mark.parametrize(("record", "mentions"), [
    ({"num1": "abc"}, "column 'num1' is numeric; row 0 holds 'abc'"),
    ({"c0": 3.5}, None),  # a number for a text category is its text: an unknown category, not an error
    ({"flag": 1}, "column 'flag' is boolean; row 0 holds 1"),
    ({"c1": True}, "column 'c1' is categorical; row 0 holds True"),
])
def test_a_value_of_another_kind_is_a_422_naming_the_column(mixed: Any, record: dict[str, Any],
                                                             mentions: str | None, api_error: Any) -> None:
    client, test, _, _ = mixed
    row = {**records(test)[5], **record}
    resp = client.post("/predict", json={"model": "mixed", "records": [row]})
    if mentions is None:
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-unknown-categories"] == "1; c0=1"
    else:
        api_error(resp, 422, mentions=mentions)


def test_a_missing_column_is_a_422_naming_it(mixed: Any, api_error: Any) -> None:
    client, test, _, _ = mixed
    row = records(test)[0]
    del row["c1"]
    api_error(client.post("/predict", json={"model": "mixed", "records": [row]}), 422, mentions="'c1'")
    csv_body = to_csv({k: v for k, v in test.items() if k != "c2"})
    api_error(client.post("/predict?model=mixed", content=csv_body, headers={"content-type": "text/csv"}), 422,
              mentions="'c2'")


def test_train_from_a_csv_with_text_and_empty_cells(mixed: Any) -> None:
    client, test, _, _ = mixed
    table, y = make_table(800, seed=13)
    resp = client.post("/train", files={"file": ("t.csv", to_csv(table, y), "text/csv")},
                       data={"model": "from-csv", "target": "y", "encoding": '{"missing_indicator": true}'})
    assert resp.status_code == 201, resp.text
    card = client.get("/models/from-csv/versions/1").json()
    kinds = [c["kind"] for c in card["encoding"]["columns"]]
    assert kinds == ["numeric", "numeric", "boolean", "categorical", "categorical", "categorical"]
    assert card["encoding"]["params"]["missing_indicator"] is True
    answer = client.post("/predict", json={"model": "from-csv", "records": records(test)})
    assert answer.status_code == 200, answer.text


def test_numbers_named_categorical_are_categories(mixed: Any) -> None:
    client, _, _, _ = mixed
    rng = np.random.default_rng(0)
    zips = rng.choice([94103, 94110, 10001], size=200).tolist()
    x = rng.normal(size=200).tolist()
    y = [int(z == 94103) for z in zips]
    resp = client.post("/train", json={"model": "zips", "features": [[a, b] for a, b in zip(x, zips, strict=True)],
                                       "feature_names": ["x", "zip"], "labels": y,
                                       "encoding": {"categorical": ["zip"]}})
    assert resp.status_code == 201, resp.text
    card = client.get("/models/zips/versions/1").json()
    assert next(c for c in card["encoding"]["columns"] if c["name"] == "zip")["levels"] == ["10001", "94103", "94110"]
    same = client.post("/predict_proba", json={"model": "zips", "records": [{"x": 0.1, "zip": 94103},
                                                                           {"x": 0.1, "zip": "94103"}]}).json()
    assert same["probabilities"][0] == same["probabilities"][1]


def test_plain_numbers_train_as_before(served: Any) -> None:
    card = served.client.get("/models/toy/versions/1").json()
    assert "encoding" not in card


def test_numeric_only_is_unchanged_for_nulls(served: Any, api_error: Any) -> None:
    api_error(served.client.post("/predict", json={"model": "toy", "features": [[None, 1.0]]}), 422)




def test_a_categorical_flip_names_a_category_that_flips_the_decision(mixed: Any) -> None:
    client, test, _, _ = mixed
    rows = records(test)[3:40]
    answer = client.post("/predict?explain=true", json={"model": "mixed", "records": rows}).json()
    checked = 0
    for row, label, explained in zip(rows, answer["predictions"], answer["explanations"], strict=True):
        for column in CATEGORICAL:
            flip = explained["flips"][column]
            if flip is None or flip["value"] in ("(infrequent)", "(missing)"):
                continue
            flipped = client.post("/predict", json={"model": "mixed", "records": [{**row, column: flip["value"]}]})
            assert flipped.json()["predictions"][0] != label, (column, flip)
            checked += 1
    assert checked >= 5


def test_multiclass_and_calibrated_mixed_models(mixed: Any) -> None:
    client, test, _, _ = mixed
    table, y = make_table(900, seed=14)
    three = (y + (np.asarray([v == "a" for v in table["c0"]]))).tolist()  # classes 0, 1, 2
    resp = client.post("/train", json={"model": "mixed3", "records": records(table), "labels": three})
    assert resp.status_code == 201, resp.text
    answer = client.post("/predict_proba?explain=true", json={"model": "mixed3", "records": records(test)[:4]})
    assert answer.status_code == 200, answer.text
    for row, proba in zip(answer.json()["explanations"], answer.json()["probabilities"], strict=True):
        assert set(row["contributions"]) == {"0", "1", "2"}
        logits = [row["baseline"][k] + sum(row["contributions"][k].values()) for k in ("0", "1", "2")]
        soft = np.exp(np.array(logits) - max(logits))
        assert np.allclose(soft / soft.sum(), proba, atol=1e-9)
    calibrated = client.post("/train", json={"model": "mixed-cal", "records": records(table), "labels": y.tolist(),
                                             "calibration": "platt"})
    assert calibrated.status_code == 201, calibrated.text
    assert client.post("/predict?explain=true", json={"model": "mixed-cal", "records": records(test)[:3]}
                       ).status_code == 200


def test_v2_takes_mlserver_pd_json_columns(mixed: Any) -> None:
    """MLServer's pandas codec sends a column of mixed Python values (booleans with missing cells, say) as BYTES of
    JSON text per cell, with the input parameter ``content_type: pd_json``."""
    client, test, _, _ = mixed
    want = client.post("/predict_proba", json={"model": "mixed", "records": records(test)}).json()["probabilities"]
    inputs = [{"name": n, "shape": [len(test[n]), 1], "datatype": "BYTES", "parameters": {"content_type": "pd_json"},
               "data": [orjson.dumps(v).decode() for v in test[n]]} for n in test]
    resp = client.post("/v2/models/mixed/infer", json={"parameters": {"content_type": "pd"}, "inputs": inputs,
                                                       "outputs": [{"name": "predict_proba"}]})
    assert resp.status_code == 200, resp.text
    assert np.reshape(resp.json()["outputs"][0]["data"], (-1, 2)).tolist() == want
    inputs[0] = {**inputs[0], "data": ["{not json", *inputs[0]["data"][1:]]}
    bad = client.post("/v2/models/mixed/infer", json={"inputs": inputs})
    assert bad.status_code == 400 and "element 0, '{not json', is not JSON" in bad.json()["error"]
