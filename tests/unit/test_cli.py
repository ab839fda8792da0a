"""``logreg train`` and ``logreg predict`` on a store, in process: the shared CSV reader and the registry's
checks of what it loads apply to the CLI as to the API."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from service import cli
from tests.support import LOCAL_URL

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


# -- managing a store ---------------------------------------------------------------------------------------
def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_registry_commands_on_a_store_print_json_when_not_on_a_terminal(store: Path, capsys) -> None:
    s = ("--store", str(store))
    code, out, _ = run(capsys, "models", *s)
    assert code == 0 and json.loads(out)[0]["name"] == "bc"
    assert json.loads(run(capsys, "versions", "bc", *s)[1])[0]["version"] == 1
    card = json.loads(run(capsys, "card", "bc", *s)[1])
    assert card["version"] == 1 and len(card["feature_names"]) == 30 and "validation_sample" not in card
    assert json.loads(run(capsys, "alias", "set", "bc", "production", "1", *s)[1])["version"] == 1
    assert json.loads(run(capsys, "threshold", "set", "bc", "1", "0.3", *s)[1])["threshold"] == 0.3
    metrics = json.loads(run(capsys, "metrics", "bc", "--version", "production", *s)[1])
    assert metrics["validation_metrics"]["n_samples"] == 113 and metrics["train_metrics"]["accuracy"] > 0.95
    code, _, err = run(capsys, "delete", "bc", "1", *s)
    assert code == cli.OTHER and "alias(es) 'production'" in err  # a conflict
    assert json.loads(run(capsys, "alias", "rm", "bc", "production", *s)[1])["removed"] is True
    assert json.loads(run(capsys, "threshold", "set", "bc", "1", "none", *s)[1])["threshold"] is None
    assert json.loads(run(capsys, "delete", "bc", "1", *s)[1]) == {"model": "bc", "version": 1, "deleted": True}
    assert json.loads(run(capsys, "models", *s)[1]) == []


def test_threshold_optimize_on_a_store_is_the_services_answer(store: Path, capsys) -> None:
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.config import Settings

    code, out, _ = run(capsys, "threshold", "optimize", "bc", "--objective", "cost", "--cost-fn", "5",
                       "--store", str(store), "--save")
    assert code == 0
    local = json.loads(out)
    assert local["stored"] is True
    with TestClient(create_app(Settings(model_store=store)), base_url=LOCAL_URL) as client:
        served = client.post("/models/bc/versions/1/threshold:optimize",
                             json={"objective": "cost", "cost": {"fn": 5}}).json()
    assert {k: v for k, v in local.items() if k not in ("stored", "current_threshold", "metrics")} == \
        {k: v for k, v in served.items() if k not in ("stored", "current_threshold", "metrics")}
    assert served["current_threshold"] == local["threshold"]  # stored by the CLI


def test_tables_on_a_terminal(store: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_on_terminal", lambda: True)
    s = ("--store", str(store))
    assert cli.main(["alias", "set", "bc", "production", "1", *s]) == 0
    assert capsys.readouterr().out == "bc@production -> version 1\n"
    assert cli.main(["models", *s]) == 0
    assert capsys.readouterr().out.splitlines() == ["MODEL  LATEST  VERSIONS  ALIASES", "bc     1       1         "
                                                    "production=1"]
    assert cli.main(["card", "bc", *s]) == 0
    shown = capsys.readouterr().out
    assert "samples      569 (456 training, 113 validation)" in shown and "COEF MALIGNANT" in shown
    assert "... and 15 more features" in shown
    assert cli.main(["card", "bc", *s, "--json"]) == 0  # --json wins on a terminal too
    assert json.loads(capsys.readouterr().out)["name"] == "bc"


def test_a_store_that_does_not_exist_is_an_error_not_a_new_directory(tmp_path: Path, capsys,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOGREG_URL", raising=False)
    for argv in (["models", "--store", "typo"], ["versions", "bc", "--store", "typo"], ["models"]):
        code, out, err = run(capsys, *argv)
        assert code == cli.USAGE and out == ""
        assert err.startswith("logreg: error: no model store at ") and "does not exist" in err
    assert list(tmp_path.iterdir()) == []


def test_exit_codes_and_one_line_messages(store: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOGREG_URL", raising=False)
    s = ("--store", str(store))
    code, _, err = run(capsys, "card", "nope", *s)
    assert code == cli.NOT_FOUND and err == "logreg: error: model 'nope' not found\n"
    code, _, err = run(capsys, "train", str(EXAMPLE), "--target", "diagnosis", "--model", "bc", "--param", "C=-1",
                       "--param", "tol=-1", *s)
    assert code == cli.INVALID
    assert err == "logreg: error: --param C: Input should be greater than 0 (and 1 more problem)\n"
    code, _, err = run(capsys, "threshold", "optimize", "bc", "--objective", "min_recall", *s)
    assert code == cli.INVALID and err == "logreg: error: threshold optimize: objective 'min_recall' needs `target`\n"
    code, _, err = run(capsys, "models", "--store", str(store), "--url", "http://127.0.0.1:9")
    assert code == cli.USAGE and "not both" in err
    code, _, err = run(capsys, "jobs", "show", "ab" * 16)
    assert code == cli.USAGE and "needs a running service" in err
    code, _, err = run(capsys, "predict", str(store / "none.csv"), "--model", "bc", *s)
    assert code == cli.INVALID and "no file or directory at" in err  # as the service answers: 422
    with pytest.raises(SystemExit) as usage:
        cli.main(["predict", str(EXAMPLE), *s])  # no --model
    assert usage.value.code == cli.USAGE
    with pytest.raises(SystemExit) as usage:
        cli.main(["predict", str(EXAMPLE), "--model", "bc", "--threshold", "2", *s])
    assert usage.value.code == cli.USAGE
    with pytest.raises(SystemExit) as version:
        cli.main(["--version"])
    assert version.value.code == 0 and capsys.readouterr().out.startswith("logreg 0.")


def test_a_closed_pipe_ends_quietly(store: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    big = tmp_path / "big.csv"
    lines = EXAMPLE.read_text().splitlines()
    big.write_text("\n".join([lines[0], *lines[1:] * 20]) + "\n")  # about 600 kB of predictions
    proc = subprocess.Popen([sys.executable, "-m", "service", "predict", str(big), "--model", "bc", "--store",
                             str(store)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"prediction,")
    proc.stdout.close()  # as `| head -1` does
    assert proc.wait(timeout=120) == 0
    assert proc.stderr.read() == b""
