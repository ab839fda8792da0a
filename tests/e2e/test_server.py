"""End to end: a real two-worker uvicorn server, driven over HTTP through our own client."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.client import LogregAPIError, LogregClient

from .conftest import Server

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_demo_model_is_served_at_start(two_worker_server: Server) -> None:
    with LogregClient(two_worker_server.url) as client:
        names = {m["name"] for m in client.models()}
        assert "breast-cancer" in names
        card = client.model_card("breast-cancer", 1)
        assert card["classes"] == ["benign", "malignant"]
        assert len(card["feature_names"]) == 30


def test_train_predict_evaluate_alias_across_workers(two_worker_server: Server, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = np.where(X @ np.array([1.5, -2.0, 0.5, 0.0]) + 0.3 * rng.normal(size=300) > 0, "yes", "no")
    names = ["a", "b", "c", "d"]
    csv_path = tmp_path / "train.csv"
    csv_path.write_text(
        "a,b,c,d,label\n" + "\n".join(",".join([*map(repr, row.tolist()), lab]) for row, lab in zip(X, y, strict=True))
    )
    with LogregClient(two_worker_server.url, timeout=120) as client:
        from_csv = client.train_csv("e2e", csv_path, "label")
        from_json = client.train("e2e", features=X.tolist(), labels=y.tolist(), feature_names=names,
                                 params={"solver": "newton"})
        assert from_json["version"] == from_csv["version"] + 1
        assert from_csv["converged"] and from_json["converged"]
        assert from_csv["feature_names"] == names

        rows = X[:5]
        by_rows = client.predict_proba("e2e", features=rows.tolist(), version=from_json["version"])
        records = [dict(zip(names, r, strict=True)) for r in rows.tolist()]
        shuffled = [dict(reversed(list(r.items()))) for r in records]
        by_records = client.predict_proba("e2e", records=shuffled, version=from_json["version"])
        assert by_rows["probabilities"] == by_records["probabilities"]
        assert by_rows["classes"] == ["no", "yes"]

        evaluation = client.metrics("e2e", features=X.tolist(), labels=y.tolist(), version=from_json["version"])
        assert evaluation["accuracy"] > 0.9
        assert evaluation["confusion_matrix"]["labels"] == ["no", "yes"]

        client.set_alias("e2e", "production", from_csv["version"])
        default = client.predict_proba("e2e", features=rows.tolist())
        assert default["version"] == from_csv["version"]

        with pytest.raises(LogregAPIError) as err:
            client.predict("e2e", features=[[1.0, 2.0]])
        assert err.value.status_code == 422 and "expects 4 features" in err.value.message

    # Fresh connections land on either worker; each must serve the same answers at once.
    answers: dict[int, list[list[float]]] = {}
    for _ in range(60):
        with LogregClient(two_worker_server.url) as fresh:
            pid = fresh.health()["pid"]
            answer = fresh.predict_proba("e2e", features=rows.tolist())
            assert answer["version"] == from_csv["version"]
            answers.setdefault(pid, answer["probabilities"])
            assert answer["probabilities"] == answers[pid]
        if len(answers) >= 2:
            break
    assert len(answers) == 2, "both workers should have answered"
    first, second = answers.values()
    assert first == second


def test_background_job_through_the_client_on_either_worker(two_worker_server: Server) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] - X[:, 1] > 0).astype(int)
    with LogregClient(two_worker_server.url) as client:
        job = client.train_background("e2e-bg", features=X.tolist(), labels=y.tolist(), idempotency_key="bg-1")
        again = client.train_background("e2e-bg", features=X.tolist(), labels=y.tolist(), idempotency_key="bg-1")
        assert again["id"] == job["id"]
    # another connection (possibly the other worker) follows the same job to its end
    with LogregClient(two_worker_server.url) as other:
        done = other.wait_for_job(job["id"], timeout=60)
        assert done["state"] == "succeeded", done
        assert done["result"]["model"] == "e2e-bg"
        assert [v["version"] for v in other.versions("e2e-bg")] == [done["result"]["version"]]
