"""The README's and the guide's examples run as written against a real server started the way `make run`
starts it; the README stays short and the guide lists every setting."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.config import Settings

from .conftest import Server, start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
#: The README and every page of the guide, where the examples and the configuration table live.
GUIDE = README + "\n".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("readme")
    # As `make run` starts it: the demo model, and examples/ readable as training data.
    server = start_server(root / "model_store", root / "server.log", "--demo",
                          env={"LOGREG_DATA_ROOTS": str(ROOT / "examples")})
    try:
        yield server
    finally:
        stop_server(server)


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_examples_run_against_the_demo_model(demo_server: Server, tmp_path: Path) -> None:
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE, flags=re.S)
    script = next(b for b in blocks if "curl" in b and "/train" in b and '"model": "toy"' in b)
    script = script.replace("http://127.0.0.1:8000", demo_server.url)
    (tmp_path / ".curlrc").write_text("fail-with-body\nmax-time = 60\n")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"CURL_HOME": str(tmp_path), "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    assert '"breast-cancer"' in result.stdout


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_mixed_table_example_runs(demo_server: Server, tmp_path: Path) -> None:
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE, flags=re.S)
    script = next(b for b in blocks if "examples/churn.csv" in b and "/v2/models/churn/infer" in b)
    script = script.replace("http://127.0.0.1:8000", demo_server.url)
    (tmp_path / ".curlrc").write_text("fail-with-body\nmax-time = 60\n")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"CURL_HOME": str(tmp_path), "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    assert "x-unknown-categories: 1; state=1" in result.stdout.lower()
    assert '"kind":"categorical","levels":["basic","plus","pro"]' in result.stdout


def test_configuration_table_lists_every_setting() -> None:
    documented = set(re.findall(r"^\| `(LOGREG_[A-Z0-9_]+)` \|", GUIDE, flags=re.M))
    fields = {f"LOGREG_{name.upper()}" for name in Settings.model_fields}
    assert documented == fields


def test_the_readme_is_short_and_links_every_page_of_the_guide() -> None:
    assert len(README.encode()) < 8 * 1024
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{page.name}" in README, page.name


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readmes_five_requests_run(demo_server: Server, tmp_path: Path) -> None:
    script = re.findall(r"```sh\n(.*?)```", README, flags=re.S)[1].replace("http://127.0.0.1:8000", demo_server.url)
    (tmp_path / ".curlrc").write_text("fail-with-body\nmax-time = 60\n")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"CURL_HOME": str(tmp_path), "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    assert '"explanations"' in result.stdout and '"psi"' in result.stdout
