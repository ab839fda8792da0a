"""Out of core: a training set over LOGREG_TRAIN_MEMORY_BYTES is read into a scratch file and trained from
there, to the same model as in memory; the scratch file is gone afterwards, and one a crash left is removed
at the next start."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.mixed import make_table, to_csv


def _csv(n: int, d: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X @ rng.normal(size=d) + rng.normal(size=n) > 0).astype(int)
    out = io.StringIO()
    out.write(",".join([f"x{j}" for j in range(d)] + ["y"]) + "\n")
    for row, label in zip(X, y, strict=True):
        out.write(",".join(repr(float(v)) for v in row) + f",{label}\n")
    return out.getvalue().encode()


@pytest.fixture
def scratch_files(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes (rows) of the scratch matrices made, as they were first sized."""
    from service.data import scratch

    made: list[int] = []
    original = scratch.ScratchMatrix.resize

    def resize(self: scratch.ScratchMatrix, rows: int) -> np.memmap:
        if self.array is None:
            made.append(rows)
        return original(self, rows)

    monkeypatch.setattr(scratch.ScratchMatrix, "resize", resize)
    return made


@pytest.mark.parametrize("source", ["upload", "uri"])
def test_a_set_over_the_budget_trains_from_disk_to_the_same_model(make_client, tmp_path, source, scratch_files):
    body = _csv(6000, 12)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.csv").write_bytes(body)
    scratch = tmp_path / "scratch"
    models = {}
    for budget in (None, 64_000):  # in memory, then a budget of a tenth of the 576 kB matrix
        settings = {"scratch_dir": scratch, "data_roots": str(tmp_path / "data"),
                    "model_store": tmp_path / f"s{budget}"}
        if budget is not None:
            settings["train_memory_bytes"] = budget
        client = make_client(**settings)
        params = {"solver": "lbfgs", "tol": 1e-10}
        if source == "upload":
            resp = client.post("/train", files={"file": ("t.csv", body, "text/csv")},
                               data={"model": "m", "target": "y", "params": str(params).replace("'", '"')})
        else:
            resp = client.post("/train?background=false", json={
                "model": "m", "data": {"uri": str(tmp_path / "data" / "t.csv"), "target": "y"}, "params": params})
        assert resp.status_code == 201, resp.text
        models[budget] = client.get("/models/m/versions/1").json()
        assert not scratch.exists() or not list(scratch.glob("*"))  # nothing left behind
    assert len(scratch_files) == 2  # the matrix, then the validation rows while they are moved
    for key in ("validation_metrics", "classes", "n_train", "n_validation"):
        assert models[None][key] == models[64_000][key], key
    a, b = models[None]["coefficients"]["1"], models[64_000]["coefficients"]["1"]
    assert max(abs(a[k] - b[k]) for k in a) < 1e-6


def test_a_mixed_table_over_the_budget_trains_from_disk(make_client, tmp_path, scratch_files):
    table, y = make_table(3000, seed=3)
    client = make_client(scratch_dir=tmp_path / "scratch", train_memory_bytes=20_000)
    resp = client.post("/train", files={"file": ("t.csv", to_csv(table, y), "text/csv")},
                       data={"model": "mixed", "target": "y"})
    assert resp.status_code == 201, resp.text
    assert scratch_files and not list((tmp_path / "scratch").glob("*"))


def test_a_scratch_file_a_crash_left_is_removed_at_start(make_client, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    left = scratch / ".tmp-scratch-abc123"
    left.write_bytes(b"\0" * 4096)
    make_client(scratch_dir=scratch)
    assert not left.exists()
