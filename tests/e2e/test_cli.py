"""``python -m service ... --url`` against a real server: every subcommand goes through the Python client, with
the API key from LOGREG_API_KEY, JSON when piped and tables on a terminal, and exit codes that tell apart
not found (3), invalid input (4) and a server that does not answer (5)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.client import LogregClient

from .conftest import Server, start_server, stop_server

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KEY = "cli-key-cli-key-cli-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("cli")
    server = start_server(root / "model_store", root / "server.log", "--demo",
                          env={"LOGREG_DATA_ROOTS": str(EXAMPLES), "LOGREG_API_KEYS": KEY})
    try:
        yield server
    finally:
        stop_server(server)


def logreg(server: Server | None, *argv: str, key: str | None = KEY, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``python -m service ARGV`` with LOGREG_URL (and LOGREG_API_KEY) naming the server."""
    env = {k: v for k, v in os.environ.items() if k not in ("LOGREG_URL", "LOGREG_API_KEY")}
    if server is not None:
        env["LOGREG_URL"] = server.url
    if key is not None:
        env["LOGREG_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "service", *argv], capture_output=True, text=True, env=env,
                          timeout=180, **kwargs)


def ok(server: Server, *argv: str) -> Any:
    done = logreg(server, *argv)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_train_upload_and_uri_then_predict_through_the_service(server: Server, tmp_path: Path) -> None:
    report = ok(server, "train", str(EXAMPLES / "breast_cancer.csv"), "--target", "diagnosis", "--model", "bc",
                "--param", "C=0.5")
    assert report["model"] == "bc" and report["version"] == 1 and report["validation_metrics"]["accuracy"] > 0.9
    # a URI the service reads itself (a file:// path under its LOGREG_DATA_ROOTS), with two feature columns
    uri = f"file://{EXAMPLES / 'breast_cancer.csv'}"
    report = ok(server, "train", uri, "--target", "diagnosis", "--model", "bc", "--features",
                "mean_radius,mean_texture")
    assert report["version"] == 2
    card = ok(server, "card", "bc", "2")
    assert card["feature_names"] == ["mean_radius", "mean_texture"] and card["tags"]["source"] == uri
    # an upload of the chosen columns only
    report = ok(server, "train", str(EXAMPLES / "breast_cancer.csv"), "--target", "diagnosis", "--model", "bc",
                "--features", "mean_radius,worst_area")
    assert ok(server, "card", "bc", "3")["feature_names"] == ["mean_radius", "worst_area"]

    done = logreg(server, "predict", str(EXAMPLES / "breast_cancer.csv"), "--model", "bc", "--version", "1",
                  "--threshold", "0.3", "--batch-size", "100")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "prediction,p_benign,p_malignant" and len(lines) == 570  # one header across 6 requests
    labels = [line.split(",")[0] for line in lines[1:]]
    with LogregClient(server.url, api_key=KEY) as client:
        served = client.predict("bc", csv=_columns_only(card_names(client)), version=1, threshold=0.3)
    assert labels == served["predictions"]


def card_names(client: LogregClient) -> list[str]:
    return client.model_card("bc", 1)["feature_names"]


def _columns_only(names: list[str]) -> str:
    import csv
    import io

    with (EXAMPLES / "breast_cancer.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(names)
    writer.writerows([r[n] for n in names] for r in rows)
    return out.getvalue()


def test_predict_a_mixed_type_table_in_the_service_as_in_a_store(server: Server, tmp_path: Path) -> None:
    churn = str(EXAMPLES / "churn.csv")
    common = ("--target", "churned", "--model", "churn", "--categorical", "support_calls")
    ok(server, "train", churn, *common)
    remote = logreg(server, "predict", churn, "--model", "churn", "--json")
    store = tmp_path / "store"
    assert logreg(None, "train", churn, *common, "--store", str(store)).returncode == 0
    local = logreg(None, "predict", churn, "--model", "churn", "--store", str(store), "--json")
    assert remote.returncode == local.returncode == 0, remote.stderr + local.stderr
    assert len(remote.stdout.splitlines()) == 600
    remote_rows = [json.loads(line) for line in remote.stdout.splitlines()]
    local_rows = [json.loads(line) for line in local.stdout.splitlines()]
    assert [r["prediction"] for r in remote_rows] == [r["prediction"] for r in local_rows]
    for a, b in zip(remote_rows, local_rows, strict=True):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-9)


def test_the_registry_commands_through_the_service(server: Server) -> None:
    ok(server, "train", str(EXAMPLES / "breast_cancer.csv"), "--target", "diagnosis", "--model", "reg")
    ok(server, "train", str(EXAMPLES / "breast_cancer.csv"), "--target", "diagnosis", "--model", "reg")
    assert {m["name"] for m in ok(server, "models")} >= {"breast-cancer", "reg"}
    assert [v["version"] for v in ok(server, "versions", "reg")] == [1, 2]
    assert ok(server, "alias", "set", "reg", "production", "1") == {"name": "reg", "alias": "production",
                                                                    "version": 1, "previous_version": None}
    assert ok(server, "card", "reg")["version"] == 1  # production, not the latest
    assert ok(server, "metrics", "reg")["version"] == 1
    assert ok(server, "threshold", "set", "reg", "1", "0.35")["threshold"] == 0.35
    chosen = ok(server, "threshold", "optimize", "reg", "--objective", "min_recall", "--target", "0.95", "--save")
    assert chosen["stored"] is True and chosen["version"] == 1 and chosen["metrics"]["recall"] >= 0.95
    assert ok(server, "card", "reg", "1")["threshold"] == chosen["threshold"]
    done = logreg(server, "delete", "reg", "1")
    assert done.returncode == 1 and "alias" in done.stderr  # a conflict
    assert ok(server, "alias", "rm", "reg", "production")["removed"] is True
    assert ok(server, "delete", "reg", "1") == {"model": "reg", "version": 1, "deleted": True}
    assert [v["version"] for v in ok(server, "versions", "reg")] == [2]


def test_jobs_show_wait_and_cancel(server: Server) -> None:
    job = ok(server, "train", str(EXAMPLES / "breast_cancer.csv"), "--target", "diagnosis", "--model", "bg",
             "--no-wait")
    assert job["state"] in ("queued", "running", "succeeded") and job["model"] == "bg"
    done = ok(server, "jobs", "wait", job["id"])
    assert done["state"] == "succeeded" and done["result"]["version"] == 1
    assert ok(server, "jobs", "show", job["id"])["id"] == job["id"]
    cancel = logreg(server, "jobs", "cancel", job["id"])
    assert cancel.returncode == 1 and "already succeeded" in cancel.stderr
    assert logreg(server, "jobs", "show", "ab" * 16).returncode == 3
    assert logreg(server, "jobs", "list").returncode == 2  # the service has no job listing


def test_exit_codes_tell_what_went_wrong(server: Server) -> None:
    missing = logreg(server, "card", "no-such-model")
    assert missing.returncode == 3 and missing.stderr == "logreg: error: model 'no-such-model' not found\n"
    invalid = logreg(server, "train", str(EXAMPLES / "breast_cancer.csv"), "--target", "diagnosis", "--model", "x",
                     "--validation-fraction", "0.95")  # the service's 422, as one line
    assert invalid.returncode == 4 and invalid.stderr.count("\n") == 1
    assert "validation_fraction" in invalid.stderr and "0.9" in invalid.stderr
    no_key = logreg(server, "alias", "set", "breast-cancer", "production", "1", key=None)
    assert no_key.returncode == 1 and "API key" in no_key.stderr
    down = logreg(None, "models", "--url", "http://127.0.0.1:9", "--timeout", "5")
    assert down.returncode == 5 and "connection to http://127.0.0.1:9" in down.stderr
    usage = logreg(server, "models", "--store", "somewhere")
    assert usage.returncode == 2 and "not both" not in usage.stderr  # --store wins over LOGREG_URL
    assert logreg(server, "--version").stdout.startswith("logreg ")


def test_tables_on_a_terminal(server: Server) -> None:
    leader, follower = pty.openpty()
    try:
        env = {**os.environ, "LOGREG_URL": server.url, "LOGREG_API_KEY": KEY}
        proc = subprocess.run([sys.executable, "-m", "service", "models"], stdout=follower,
                              stderr=subprocess.PIPE, env=env, timeout=120)
        os.close(follower)
        follower = -1
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    assert proc.returncode == 0, proc.stderr
    lines = shown.decode().splitlines()
    assert lines[0].split() == ["MODEL", "LATEST", "VERSIONS", "ALIASES"]
    assert any(line.startswith("breast-cancer ") for line in lines)


def test_a_closed_pipe_ends_quietly(server: Server, tmp_path: Path) -> None:
    lines = (EXAMPLES / "breast_cancer.csv").read_text().splitlines()
    big = tmp_path / "big.csv"
    big.write_text("\n".join([lines[0], *lines[1:] * 20]) + "\n")
    env = {**os.environ, "LOGREG_URL": server.url, "LOGREG_API_KEY": KEY}
    proc = subprocess.Popen([sys.executable, "-m", "service", "predict", str(big), "--model", "breast-cancer",
                             "--batch-size", "500"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"prediction,p_benign,p_malignant\n"
    proc.stdout.close()  # as `| head -1` does
    assert proc.wait(timeout=120) == 0
    assert proc.stderr.read() == b""
