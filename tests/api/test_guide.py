"""/guide: the built guide (make docs) served offline next to /docs, or a page saying how to build it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import service.app as app_module

ROOT = Path(__file__).resolve().parents[2]


def test_without_a_build_guide_says_how_to_build_it(make_client, monkeypatch, tmp_path):
    monkeypatch.setattr(app_module, "GUIDE_DIR", tmp_path / "none")
    client = make_client()
    for path in ("/guide", "/guide/", "/guide/api.html"):
        resp = client.get(path)
        assert resp.status_code == 404 and "make docs" in resp.text, path


@pytest.mark.skipif(shutil.which("mkdocs") is None and not (Path(sys.executable).parent / "mkdocs").exists(),
                    reason="mkdocs is not installed (the dev extras install it)")
def test_the_built_guide_is_served(make_client, monkeypatch, tmp_path):
    site = tmp_path / "site"
    mkdocs = shutil.which("mkdocs") or str(Path(sys.executable).parent / "mkdocs")
    subprocess.run([mkdocs, "build", "--strict", "--quiet", "--site-dir", str(site)], cwd=ROOT, check=True,
                   timeout=300, env={"PATH": str(Path(sys.executable).parent), "NO_MKDOCS_2_WARNING": "1"})
    monkeypatch.setattr(app_module, "GUIDE_DIR", site)
    client = make_client()
    index = client.get("/guide/")
    assert index.status_code == 200 and "logreg-service" in index.text
    page = client.get("/guide/operating.html")
    assert page.status_code == 200 and "LOGREG_MAX_BODY_BYTES" in page.text
    assert "fonts.googleapis" not in index.text  # offline: no web fonts
