"""The API documentation pages, ``/docs`` (Swagger UI) and ``/redoc``, in a real headless Chromium against a real
uvicorn (``logreg serve --demo``), with the network cut: every request to a host other than 127.0.0.1 is aborted
(and recorded). The pages must render every operation of ``/openapi.json`` from the package's own copies of
their scripts and styles, ask nothing of any other host, and log no console error.

Uses Debian's ``chromium`` through Playwright, as the dashboard's test does; never ``playwright install``.
Screenshots go to ``test-artifacts/api-docs/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route

from .browser import BROWSER_TEST, ConsoleWatch, chromium
from .conftest import Server, start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "api-docs"
LOOPBACK = "127.0.0.1"

pytestmark = BROWSER_TEST


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("api-docs")
    srv = start_server(root / "model_store", root / "server.log", "--demo")
    try:
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium(ARTIFACTS) as launched:
        yield launched


@pytest.fixture(scope="module")
def operation_ids(server: Server) -> set[str]:
    schema = httpx.get(f"{server.url}/openapi.json", timeout=30).raise_for_status().json()
    return {op["operationId"] for ops in schema["paths"].values() for op in ops.values()}


class Offline:
    """A browser context whose requests outside 127.0.0.1 are aborted, and the URLs they asked for."""

    def __init__(self, browser: Browser) -> None:
        self.blocked: list[str] = []
        self.context: BrowserContext = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.route("**/*", self._route)

    def _route(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname == LOOPBACK:
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort("internetdisconnected")


@pytest.fixture
def offline(browser: Browser) -> Iterator[Offline]:
    net = Offline(browser)
    try:
        yield net
    finally:
        net.context.close()


def open_page(offline: Offline, url: str, watch: ConsoleWatch) -> Page:
    page = offline.context.new_page()
    watch.attach(page)
    page.goto(url)
    return page


def assert_clean(offline: Offline, watch: ConsoleWatch) -> None:
    assert offline.blocked == [], f"the page asked other hosts for {offline.blocked}"
    assert watch.errors == []


def test_swagger_ui_renders_offline(server: Server, offline: Offline, operation_ids: set[str]) -> None:
    watch = ConsoleWatch()
    page = open_page(offline, f"{server.url}/docs", watch)
    page.wait_for_selector(".opblock", timeout=30_000)
    page.wait_for_function("n => document.querySelectorAll('.opblock').length >= n", arg=len(operation_ids))
    shown = page.locator(".opblock").evaluate_all("els => els.map(e => e.id)")
    # Swagger UI's ids are "operations-<tag>-<operationId>", the tag with its spaces escaped.
    assert {i.rsplit("-", 1)[-1] for i in shown} == operation_ids
    assert page.title() == "logreg-service - Swagger UI"
    # Its stylesheet applied (the CSS came from the package too): the operations are laid out as blocks.
    assert page.locator(".opblock").first.evaluate("e => getComputedStyle(e).borderRadius") != "0px"
    page.screenshot(path=ARTIFACTS / "swagger-ui.png")
    assert_clean(offline, watch)


def test_swagger_ui_try_it_out_sends_the_example(server: Server, offline: Offline) -> None:
    """On the page, "Try it out" then "Execute" on ``POST /predict_proba`` sends the documented example as it is, and
    the demo model of ``--demo`` answers it (200): what a person trying the API first does."""
    watch = ConsoleWatch()
    page = open_page(offline, f"{server.url}/docs", watch)
    operation = page.locator("#operations-prediction-predict_proba_predict_proba_post")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status").first
    status.wait_for(timeout=30_000)
    assert (status.text_content() or "").strip() == "200"
    assert '"model": "breast-cancer"' in (operation.locator(".live-responses-table .microlight").first.text_content()
                                            or "")
    operation.screenshot(path=ARTIFACTS / "swagger-ui-try-it-out.png")
    assert_clean(offline, watch)


def test_redoc_renders_offline(server: Server, offline: Offline, operation_ids: set[str]) -> None:
    watch = ConsoleWatch()
    page = open_page(offline, f"{server.url}/redoc", watch)
    page.wait_for_selector("[data-section-id^='operation/']", timeout=30_000)
    sections = page.locator("[data-section-id^='operation/']").evaluate_all(
        "els => els.map(e => e.getAttribute('data-section-id'))")
    assert {s.removeprefix("operation/") for s in sections} == operation_ids
    assert page.title() == "logreg-service - ReDoc"
    page.screenshot(path=ARTIFACTS / "redoc.png")
    assert_clean(offline, watch)


def test_the_pages_name_no_other_host(server: Server) -> None:
    """The HTML of both pages loads its script, style and icon from this server (no Google Fonts either)."""
    for path in ("/docs", "/redoc"):
        html = httpx.get(f"{server.url}{path}", timeout=30).raise_for_status().text
        assert "http://" not in html and "https://" not in html, html
        assert "/static/vendor/" in html
