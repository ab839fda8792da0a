"""``logreg train`` and ``logreg predict`` on a store, in process: the shared CSV reader and the registry's
checks of what it loads apply to the CLI as to the API."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from service import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "breast_cancer.csv"


@pytest.fixture
def store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    store = tmp_path / "store"
    assert cli.main(["train", str(EXAMPLE), "--target", "diagnosis", "--model", "bc", "--store", str(store)]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 1
    return store


def test_predict_reads_the_models_columns_and_skips_the_label_column(store: Path, capsys) -> None:
    assert cli.main(["predict", str(EXAMPLE), "--model", "bc", "--store", str(store)]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["prediction", "p_benign", "p_malignant"]
    with EXAMPLE.open() as fh:
        truth = [r["diagnosis"] for r in csv.DictReader(fh)]
    assert len(rows) - 1 == len(truth)
    assert sum(r[0] == t for r, t in zip(rows[1:], truth, strict=True)) / len(truth) > 0.95


def test_a_cell_that_is_not_a_number_is_a_clear_error(store: Path, tmp_path: Path, capsys) -> None:
    lines = EXAMPLE.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")
    cells[header.index("mean_radius")] = "n/a"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([lines[0], ",".join(cells)]) + "\n")
    assert cli.main(["predict", str(bad), "--model", "bc", "--store", str(store)]) == 2
    assert "line 2, column 'mean_radius': 'n/a' is not a number" in capsys.readouterr().err


def test_the_cli_refuses_a_version_whose_metadata_does_not_fit(store: Path, capsys) -> None:
    path = store / "bc" / "1" / "metadata.json"
    meta = json.loads(path.read_text())
    meta["feature_names"] = "mean_radius"  # not a list: the record's schema refuses it
    path.write_text(json.dumps(meta))
    assert cli.main(["predict", str(EXAMPLE), "--model", "bc", "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "metadata of model 'bc' version 1" in err and "feature_names" in err
