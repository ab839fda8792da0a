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
    assert cli.main(["predict", str(bad), "--model", "bc", "--store", str(store)]) == cli.INVALID
    assert "line 2, column 'mean_radius': 'n/a' is not a number" in capsys.readouterr().err


def test_the_cli_refuses_a_version_whose_metadata_does_not_fit(store: Path, capsys) -> None:
    path = store / "bc" / "1" / "metadata.json"
    meta = json.loads(path.read_text())
    meta["feature_names"] = "mean_radius"  # not a list: the record's schema refuses it
    path.write_text(json.dumps(meta))
    assert cli.main(["predict", str(EXAMPLE), "--model", "bc", "--store", str(store)]) == cli.OTHER
    err = capsys.readouterr().err
    assert "metadata of model 'bc' version 1" in err and "feature_names" in err


def _train_on_a_terminal(store: Path, *extra: str) -> str:
    """Run ``logreg train`` with stderr on a pseudo-terminal (as a person runs it) and return what it showed."""
    import os
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "service", "train", str(EXAMPLE), "--target", "diagnosis", "--model", "tty",
             "--store", str(store), *extra],
            stderr=follower, stdout=subprocess.PIPE, timeout=120, check=True,
        )
        os.close(follower)
        follower = -1
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end is closed: all is read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    assert json.loads(proc.stdout)["model"] == "tty"
    return shown.decode()


def test_train_shows_its_progress_on_a_terminal(tmp_path: Path) -> None:
    shown = _train_on_a_terminal(tmp_path / "store")
    for phase in ("reading", "fitting", "evaluating", "storing"):
        assert phase in shown, shown
    assert "569 rows" in shown and "100%" in shown
    assert "iteration" in shown and "loss" in shown


def test_train_is_quiet_when_asked(tmp_path: Path) -> None:
    assert _train_on_a_terminal(tmp_path / "store", "--quiet") == ""


CHURN = EXAMPLE.with_name("churn.csv")


def test_train_and_predict_a_mixed_type_table(tmp_path: Path, capsys) -> None:
    store = tmp_path / "store"
    assert cli.main(["train", str(CHURN), "--target", "churned", "--model", "churn", "--store", str(store),
                     "--categorical", "support_calls", "--encoding", "min_frequency=20", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 1
    card = json.loads((store / "churn" / "1" / "metadata.json").read_text())
    kinds = {c["name"]: c["kind"] for c in card["encoding"]["columns"]}
    assert kinds["support_calls"] == "categorical" and kinds["autopay"] == "boolean" and kinds["plan"] == "categorical"
    assert card["encoding"]["params"]["min_frequency"] == 20
    assert cli.main(["predict", str(CHURN), "--model", "churn", "--store", str(store)]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["prediction", "p_no", "p_yes"] and len(rows) == 601
    with CHURN.open() as fh:
        truth = [r["churned"] for r in csv.DictReader(fh)]
    assert sum(r[0] == t for r, t in zip(rows[1:], truth, strict=True)) / len(truth) > 0.7
