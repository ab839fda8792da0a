"""The dashboard at ``GET /`` in a real headless Chromium, against a real uvicorn (``logreg serve --demo``).

Uses Debian's ``chromium`` (installed by ``.ci/run``) through Playwright for Python; never ``playwright
install``. The page's numbers are checked against the JSON API: the confusion matrix and metrics at three
thresholds against ``POST /metrics`` on the validation rows, the try-it probability against
``POST /predict_proba``. Any console error or uncaught page error fails the test. Screenshots go to
``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import contextlib
import csv
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Error, Page, expect

from .browser import BROWSER_TEST, ConsoleWatch, chromium
from .conftest import Server, start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CSV = ROOT / "examples" / "breast_cancer.csv"
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
API_KEY = "dashboard-e2e-key"
DEMO = "breast-cancer"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

pytestmark = BROWSER_TEST


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("dashboard")
    # Reads opened explicitly: the page lists and scores without a key; writes need it (protected reads below).
    srv = start_server(root / "model_store", root / "server.log", "--demo",
                       env={"LOGREG_API_KEYS": API_KEY, "LOGREG_PROTECT_READS": "false"})
    try:
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture
def protected_server(tmp_path: Path) -> Iterator[Server]:
    """A server whose read routes need a key too (LOGREG_PROTECT_READS)."""
    env = {"LOGREG_API_KEYS": API_KEY, "LOGREG_PROTECT_READS": "true"}
    srv = start_server(tmp_path / "model_store", tmp_path / "server.log", "--demo", env=env)
    try:
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium(ARTIFACTS) as launched:
        yield launched


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


# -- helpers ------------------------------------------------------------------------------------------
def validation_set(api: httpx.Client) -> tuple[list[str], list[list[float]], list[Any]]:
    """Feature names, the validation rows (from the CSV, in its feature order) and their labels."""
    stored = api.get(f"/models/{DEMO}/versions/1/validation").raise_for_status().json()
    names = api.get(f"/models/{DEMO}/versions/1").raise_for_status().json()["feature_names"]
    with EXAMPLE_CSV.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [h for h in rows[0] if h != "diagnosis"] == names
    features = [[float(rows[i][n]) for n in names] for i in stored["rows"]]
    assert [rows[i]["diagnosis"] for i in stored["rows"]] == stored["labels"]
    return names, features, stored["labels"]


def selections(page: Page) -> int:
    return int(page.get_attribute("#main", "data-selections") or 0)


def wait_for_selection(page: Page, before: int, selected: str) -> None:
    """Wait until the page finished one more model selection, and it is ``selected`` ("name@version")."""
    page.wait_for_function(
        "([n, s]) => Number(document.getElementById('main').dataset.selections || 0) > n"
        " && document.getElementById('main').dataset.selected === s",
        arg=[before, selected],
    )
    expect(page.get_by_test_id("explorer")).to_have_attribute("data-ready", "true")


def shown_threshold(page: Page) -> float:
    return float(page.get_by_test_id("threshold-value").get_attribute("data-threshold") or "nan")


def press(page: Page, *keys: str) -> None:
    for key in keys:
        page.keyboard.press(key)


def assert_matches_metrics(page: Page, api: httpx.Client, features: list[list[float]], labels: list[Any],
                           threshold: float) -> dict[str, Any]:
    """The page's confusion matrix and headline metrics equal POST /metrics at the page's threshold."""
    assert shown_threshold(page) == threshold
    report = api.post("/metrics", json={"model": DEMO, "version": 1, "features": features, "labels": labels,
                                        "threshold": threshold}).raise_for_status().json()
    assert report["threshold"] == threshold
    order = [str(label) for label in report["confusion_matrix"]["labels"]]
    assert [page.get_by_test_id(f"cm-row-{i}").text_content() for i in range(len(order))] == order
    assert [page.get_by_test_id(f"cm-col-{j}").text_content() for j in range(len(order))] == order
    shown = [[int(page.get_by_test_id(f"cm-{i}-{j}").text_content() or "-1") for j in range(len(order))]
             for i in range(len(order))]
    assert shown == report["confusion_matrix"]["matrix"], f"threshold {threshold}"
    for key in ("accuracy", "precision", "recall", "f1"):
        tile = page.get_by_test_id(f"metric-{key}")
        text = tile.text_content() or ""
        assert re.fullmatch(r"\d\.\d{3}", text), text
        assert abs(float(text) - report[key]) <= 0.0005 + 1e-12, (key, text, report[key])
        assert float(tile.get_attribute("data-value") or "nan") == pytest.approx(report[key], rel=1e-12, abs=1e-15)
    return report


def full_page_screenshot(page: Page, name: str) -> None:
    """From the top of the page: sticky panels are drawn where they are at the current scroll position."""
    page.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")
    page.screenshot(path=ARTIFACTS / name, full_page=True)


def assert_every_control_labelled(page: Page) -> None:
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
              .filter((e) => !e.hidden && e.type !== 'hidden')
              .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
              .map((e) => e.id || e.name)"""
    )
    assert unlabelled == []


@contextlib.contextmanager
def dashboard_page(browser: Browser, url: str, watch: ConsoleWatch, viewport: dict[str, int] = DESKTOP,
                   failure_shot: str | None = None) -> Iterator[Page]:
    """The page at ``url`` in a new browser context, watched by ``watch``; when the block fails, a screenshot of
    every open page as it was (``failure_shot``); the context is closed whatever happens."""
    context = browser.new_context(viewport=viewport, reduced_motion="reduce")
    try:
        page = context.new_page()
        watch.attach(page)
        page.goto(url)
        yield page
    except Exception:
        if failure_shot is not None:
            for open_page in context.pages:
                with contextlib.suppress(Error):
                    open_page.screenshot(path=ARTIFACTS / failure_shot, full_page=True)
        raise
    finally:
        context.close()


# -- the test -----------------------------------------------------------------------------------------
def test_dashboard_in_chromium(server: Server, browser: Browser, api: httpx.Client) -> None:
    names, features, labels = validation_set(api)
    card = api.get(f"/models/{DEMO}/versions/1").raise_for_status().json()
    watch = ConsoleWatch()
    with dashboard_page(browser, f"{server.url}/", watch, failure_shot="failure.png") as page:
        expect(page).to_have_title(re.compile("logreg-service"))

        # Pick the demo model; its card shows what it learned.
        version_button = page.get_by_test_id(f"version-{DEMO}-1")
        expect(version_button).to_be_visible()
        before = selections(page)
        version_button.click()
        wait_for_selection(page, before, f"{DEMO}@1")
        expect(version_button).to_have_attribute("aria-pressed", "true")
        expect(page.get_by_test_id("card-title")).to_have_text(f"{DEMO} · version 1")
        expect(page.get_by_test_id("card-classes")).to_contain_text("benign, malignant")
        expect(page.get_by_test_id("card-convergence")).to_contain_text(f"converged in {card['n_iter']} iterations")
        expect(page.locator('#params-table tr[data-param="solver"] td')).to_have_text(card["params"]["solver"])
        coef = page.evaluate(
            "() => { const c = Chart.getChart(document.getElementById('coef-chart'));"
            " return {labels: c.data.labels, values: c.data.datasets[0].data}; }"
        )
        assert sorted(coef["labels"]) == sorted(names)
        sizes = [abs(v) for v in coef["values"]]
        assert sizes == sorted(sizes, reverse=True)
        loss_points = page.evaluate(
            "() => Chart.getChart(document.getElementById('loss-chart')).data.datasets[0].data.length"
        )
        assert loss_points == len(card["loss_history"])
        assert_every_control_labelled(page)
        page.screenshot(path=ARTIFACTS / "desktop-top.png")

        # Calibration: Brier, ECE and the reliability diagram's points are those of GET /metrics.
        calibration = api.get("/metrics", params={"model": DEMO, "version": 1}).raise_for_status().json()["calibration"]
        expect(page.get_by_test_id("calibration-ece")).to_be_visible()
        for key in ("ece", "brier"):
            shown_value = page.get_by_test_id(f"calibration-{key}").get_attribute("data-value")
            assert float(shown_value or "nan") == calibration[key]
        points = page.evaluate(
            "() => Chart.getChart(document.getElementById('calibration-chart')).data.datasets[0].data"
            ".map((p) => [p.x, p.y, p.count])"
        )
        assert points == [[b["mean_predicted"], b["fraction_positive"], b["count"]]
                          for b in calibration["bins"] if b["count"] > 0]
        assert len(points) >= 3
        page.get_by_test_id("calibration").screenshot(path=ARTIFACTS / "calibration.png")

        # Threshold explorer: the stored default (none: 0.5) first, then three thresholds set with the keyboard.
        expect(page.get_by_test_id("threshold-value")).to_have_attribute("data-threshold", "0.5")
        assert_matches_metrics(page, api, features, labels, 0.5)
        page.get_by_test_id("threshold-slider").focus()
        press(page, "Home", *["ArrowRight"] * 20)
        expect(page.get_by_test_id("threshold-value")).to_have_attribute("data-threshold", "0.2")
        assert_matches_metrics(page, api, features, labels, 0.2)
        press(page, "End", *["PageDown"] * 3, *["ArrowLeft"] * 5)
        expect(page.get_by_test_id("threshold-value")).to_have_attribute("data-threshold", "0.65")
        assert_matches_metrics(page, api, features, labels, 0.65)
        press(page, "End", "PageDown", *["Shift+ArrowRight"] * 3)
        expect(page.get_by_test_id("threshold-value")).to_have_attribute("data-threshold", "0.903")
        assert_matches_metrics(page, api, features, labels, 0.903)
        # ...the number field moves it too, and the F1-optimal button gives the server's best F1.
        page.locator("#threshold-input").fill("0.37")
        expect(page.get_by_test_id("threshold-value")).to_have_attribute("data-threshold", "0.37")
        assert page.locator("#threshold-slider").input_value() == "0.37"
        assert_matches_metrics(page, api, features, labels, 0.37)
        page.get_by_test_id("threshold-best").click()
        best = card["validation_metrics"]["best_threshold"]
        best_t = shown_threshold(page)
        assert best_t <= best["threshold"]
        report = assert_matches_metrics(page, api, features, labels, best_t)
        assert report["f1"] == pytest.approx(best["f1"], rel=1e-12)
        page.get_by_test_id("threshold-slider").focus()
        press(page, "Home", *["PageUp"] * 4, *["ArrowRight"] * 3)
        expect(page.get_by_test_id("threshold-value")).to_have_attribute("data-threshold", "0.43")
        page.get_by_test_id("explorer").screenshot(path=ARTIFACTS / "threshold-explorer.png")

        # Store the threshold: refused without a key (the message says so), stored with one.
        watch.allow_http_error(401, f"/models/{DEMO}/versions/1/threshold")
        page.get_by_test_id("threshold-store").click()
        message = page.get_by_test_id("threshold-message")
        expect(message).to_have_attribute("data-kind", "error")
        expect(message).to_contain_text("needs an API key")
        page.get_by_label("API key").fill(API_KEY)
        page.get_by_role("button", name="Use key").click()
        expect(page.locator("#key-state")).to_have_attribute("data-has-key", "true")
        assert page.evaluate("() => sessionStorage.getItem('logreg-service.api-key')") == API_KEY
        page.get_by_test_id("threshold-store").click()
        expect(message).to_have_attribute("data-kind", "ok")
        expect(message).to_contain_text("Stored 0.430")
        assert api.get(f"/models/{DEMO}/versions/1").json()["threshold"] == 0.43

        # Try it: prefilled with the training means; the probability equals POST /predict_proba.
        prefilled = page.eval_on_selector_all("#predict-fields input", "els => els.map((e) => Number(e.value))")
        assert prefilled == pytest.approx(card["feature_means"], rel=1e-5)
        changed = {"mean_radius": 15.5, "worst_texture": 31.0, "worst_concave_points": 0.16, "mean_concavity": 0.05}
        for name, value in changed.items():
            page.get_by_test_id(f"feature-{name}").fill(str(value))
        page.get_by_test_id("predict-submit").click()
        expect(page.get_by_test_id("predict-result")).to_be_visible()
        values = page.eval_on_selector_all(
            "#predict-fields input", "els => els.map((e) => [e.dataset.feature, Number(e.value)])"
        )
        record = dict(values)
        assert list(record) == names and {n: record[n] for n in changed} == changed
        proba = api.post("/predict_proba", json={"model": DEMO, "version": 1, "records": [record]}).raise_for_status()
        p = proba.json()["probabilities"][0][1]
        shown_p = page.get_by_test_id("predict-probability")
        assert abs(float(shown_p.text_content() or "nan") - p) <= 0.00005 + 1e-12
        assert float(shown_p.get_attribute("data-value") or "nan") == pytest.approx(p, rel=1e-12, abs=1e-15)
        expect(page.get_by_test_id("predict-class")).to_have_text("malignant" if p >= 0.43 else "benign")
        contributions = page.eval_on_selector_all(
            "[data-testid=contributions] tbody td.contribution", "els => els.map((e) => Number(e.dataset.value))"
        )
        assert len(contributions) == len(names)
        assert [abs(c) for c in contributions] == sorted((abs(c) for c in contributions), reverse=True)
        baseline = float(page.get_by_test_id("logit-baseline").get_attribute("data-value") or "nan")
        logit = float(page.get_by_test_id("logit-total").get_attribute("data-value") or "nan")
        assert logit == pytest.approx(baseline + sum(contributions), abs=1e-9)
        assert logit == pytest.approx(math.log(p / (1 - p)), rel=1e-6, abs=1e-6)
        page.get_by_test_id("tryit").screenshot(path=ARTIFACTS / "try-it.png")
        # The predicted class follows the threshold.
        page.get_by_test_id("threshold-slider").focus()
        press(page, "Home")
        expect(page.get_by_test_id("predict-class")).to_have_text("malignant")
        press(page, "End")
        expect(page.get_by_test_id("predict-class")).to_have_text("malignant" if p >= 1 else "benign")

        # Drift: after rows that shift one feature outside its training range, the panel shows what
        # GET .../drift says (one worker, so both see the same window), largest PSI first.
        shifted = [[v * 3.0 if j == 0 else v for j, v in enumerate(row)] for row in features]
        rows = {"model": DEMO, "version": 1, "features": features + shifted}
        api.post("/predict_proba", json=rows).raise_for_status()
        page.get_by_test_id("drift-refresh").click()
        drift = api.get(f"/models/{DEMO}/versions/1/drift").raise_for_status().json()
        summary = page.get_by_test_id("drift-summary")
        expect(summary).to_contain_text(f"{drift['rows_seen']:,} rows scored")
        expect(summary).to_contain_text(f"{drift['out_of_range']['rows']:,} with a value outside the training range")
        shown = page.eval_on_selector_all(
            "#drift-table tbody tr",
            "rows => rows.map((r) => [r.dataset.feature, r.querySelector('td.psi').dataset.value,"
            " r.cells[2].textContent, r.cells[3].textContent])",
        )
        psi = drift["psi"]
        assert [row[0] for row in shown] == sorted(names, key=lambda n: (-psi[n], n))
        for feature, value, status, out_of_range in shown:
            assert float(value) == psi[feature]
            assert status == ("significant" if psi[feature] >= 0.25 else "moderate" if psi[feature] >= 0.1
                              else "stable")
            assert int(out_of_range.replace(",", "")) == drift["out_of_range"]["values"][feature]
        assert shown[0][0] == names[0] and shown[0][2] == "significant"
        drifted = len(drift["drifted_features"])
        assert names[0] in drift["drifted_features"]
        expect(summary).to_contain_text(f"{drifted} feature{'' if drifted == 1 else 's'} with significant drift")
        page.get_by_test_id("drift").screenshot(path=ARTIFACTS / "drift.png")

        # Train from a CSV: an incompatible solver and penalty shows the server's 422 message, then it trains.
        page.get_by_label("CSV file").set_input_files(EXAMPLE_CSV)
        target = page.get_by_label("Target column")
        expect(target).to_be_enabled()
        expect(target).to_have_value("diagnosis")
        target.select_option("diagnosis")
        page.get_by_label("Model name").fill("bc-dashboard")
        page.get_by_label("Solver").select_option("lbfgs")
        page.get_by_label("Penalty").select_option("l1")
        watch.allow_http_error(422, "/train")
        page.get_by_test_id("train-submit").click()
        train_message = page.get_by_test_id("train-message")
        expect(train_message).to_have_attribute("data-kind", "error")
        expect(train_message).to_contain_text("solver 'lbfgs' supports only penalty 'l2' or 'none'")
        page.get_by_label("Solver").select_option("proximal")
        before = selections(page)
        page.get_by_test_id("train-submit").click()
        wait_for_selection(page, before, "bc-dashboard@1")
        expect(train_message).to_contain_text("Trained bc-dashboard version 1")
        expect(page.get_by_test_id("version-bc-dashboard-1")).to_have_attribute("aria-pressed", "true")
        expect(page.get_by_test_id("card-title")).to_have_text("bc-dashboard · version 1")
        expect(page.locator('#params-table tr[data-param="solver"] td')).to_have_text("proximal")
        expect(page.locator('#params-table tr[data-param="penalty"] td')).to_have_text("l1")
        trained = api.get("/models/bc-dashboard/versions/1").raise_for_status().json()
        assert trained["params"]["solver"] == "proximal" and trained["params"]["penalty"] == "l1"
        assert trained["tags"] == {"source": EXAMPLE_CSV.name}

        # A version calibrated at training shows the calibration error before and after.
        with EXAMPLE_CSV.open("rb") as fh:
            api.post("/train", files={"file": (EXAMPLE_CSV.name, fh, "text/csv")},
                     data={"model": "bc-calibrated", "target": "diagnosis", "calibration": "platt"},
                     headers={"Authorization": f"Bearer {API_KEY}"}).raise_for_status()
        step = api.get("/metrics", params={"model": "bc-calibrated"}).raise_for_status().json()["calibration_step"]
        page.get_by_role("button", name="Reload the model list").click()
        before = selections(page)
        page.get_by_test_id("version-bc-calibrated-1").click()
        wait_for_selection(page, before, "bc-calibrated@1")
        expect(page.get_by_test_id("calibration-step")).to_have_text(
            re.compile(rf"platt: ECE {step['before']['ece']:.3g} before, {step['after_cross_fitted']['ece']:.3g} after")
        )

        # Aliases show in the list (after Reload) and on the card. Back to the demo model: charts are rebuilt,
        # and the stored threshold is where the explorer starts.
        api.put(f"/models/{DEMO}/aliases/production", json={"version": 1},
                headers={"Authorization": f"Bearer {API_KEY}"}).raise_for_status()
        page.get_by_role("button", name="Reload the model list").click()
        demo_button = page.get_by_test_id(f"version-{DEMO}-1")
        expect(demo_button.locator(".chip.prod")).to_have_text("production")
        before = selections(page)
        demo_button.click()
        wait_for_selection(page, before, f"{DEMO}@1")
        expect(page.locator("#card-aliases")).to_have_text("production")
        expect(page.get_by_test_id("threshold-value")).to_have_attribute("data-threshold", "0.43")
        assert_matches_metrics(page, api, features, labels, 0.43)
        full_page_screenshot(page, "desktop-full.png")

        # A phone-width window: one column, nothing wider than the screen.
        page.set_viewport_size(PHONE)
        page.reload()
        wait_for_selection(page, 0, f"{DEMO}@1")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path=ARTIFACTS / "phone-top.png")
        page.get_by_test_id("explorer").evaluate("(e) => e.scrollIntoView({block: 'start'})")
        page.screenshot(path=ARTIFACTS / "phone-explorer.png")
        full_page_screenshot(page, "phone-full.png")
    assert watch.errors == []


def test_training_as_background_job(server: Server, browser: Browser, api: httpx.Client) -> None:
    """A background training from the panel: its phase and a moving progress bar, then the new version."""
    watch = ConsoleWatch()
    with dashboard_page(browser, f"{server.url}/", watch, failure_shot="failure-background.png") as page:
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        page.get_by_label("API key").fill(API_KEY)
        page.get_by_role("button", name="Use key").click()
        expect(page.locator("#key-state")).to_have_attribute("data-has-key", "true")

        # Plain SGD at a tiny learning rate keeps improving for thousands of epochs: a few seconds of fitting.
        page.get_by_label("CSV file").set_input_files(EXAMPLE_CSV)
        expect(page.get_by_label("Target column")).to_have_value("diagnosis")
        page.get_by_label("Model name").fill("bc-background")
        rate = page.get_by_label("Learning rate")
        expect(rate).to_be_hidden()  # lbfgs, the default, has none
        page.get_by_label("Solver").select_option("sgd")
        rate.fill("1e-5")
        page.get_by_label("Max iterations").fill("6000")
        page.get_by_label("Run as a background job").check()
        assert_every_control_labelled(page)
        before = selections(page)
        with page.expect_response(lambda r: r.request.method == "POST" and httpx.URL(r.url).path == "/train") as sent:
            page.get_by_test_id("train-submit").click()
        assert sent.value.status == 202 and httpx.URL(sent.value.url).params.get("background") == "true"
        job_id = sent.value.json()["id"]

        # While it fits: the phase, "iteration i of at most 6,000" with the loss, and a bar that moves.
        progress = page.get_by_test_id("train-progress")
        expect(progress).to_have_attribute("data-phase", "fitting")
        bar = page.get_by_role("progressbar", name=re.compile(r"^fitting iteration [\d,]+ of at most 6,000, loss "))
        expect(bar).to_be_visible()
        expect(page.get_by_test_id("train-message")).to_have_text("Training bc-background in the background: fitting…")
        assert bar.evaluate("(b) => b.max") == 6000
        first = bar.evaluate("(b) => b.value")
        page.wait_for_function("(v) => document.getElementById('train-progress-bar').value > v", arg=first,
                               timeout=10_000)
        expect(progress).to_contain_text(re.compile(r"about \d+ s left"))
        page.get_by_test_id("train").screenshot(path=ARTIFACTS / "train-background.png")

        # Done: the bar goes, the report shows and the new version is selected.
        wait_for_selection(page, before, "bc-background@1")
        expect(progress).to_be_hidden()
        expect(page.get_by_test_id("train-message")).to_contain_text("Trained bc-background version 1")
        expect(page.get_by_test_id("version-bc-background-1")).to_have_attribute("aria-pressed", "true")
        job = api.get(f"/jobs/{job_id}").raise_for_status().json()
        assert job["state"] == "succeeded" and job["result"]["version"] == 1
        trained = api.get("/models/bc-background/versions/1").raise_for_status().json()
        assert trained["params"]["solver"] == "sgd" and trained["params"]["learning_rate"] == 1e-5
        assert trained["params"]["max_iter"] == 6000
    assert watch.errors == []


def test_mixed_table_card_and_try_it(server: Server, browser: Browser, api: httpx.Client) -> None:
    """A version trained on a table with text, booleans and empty cells: the card lists each column's kind
    and encoding, and Try it sends the raw record (a category, a boolean, an empty cell) and shows the
    server's contributions."""
    churn = ROOT / "examples" / "churn.csv"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    api.post("/train", headers=headers, files={"file": ("churn.csv", churn.read_bytes(), "text/csv")},
             data={"model": "churn-ui", "target": "churned"}).raise_for_status()
    card = api.get("/models/churn-ui/versions/1").raise_for_status().json()
    watch = ConsoleWatch()
    with dashboard_page(browser, f"{server.url}/", watch, failure_shot="failure-mixed.png") as page:
        before = selections(page)
        page.get_by_test_id("version-churn-ui-1").click()
        wait_for_selection(page, before, "churn-ui@1")
        encoding = page.get_by_test_id("card-encoding")
        expect(encoding).to_be_visible()
        rows = page.eval_on_selector_all("#encoding-table tbody tr",
                                         "els => els.map((r) => [r.dataset.column, r.cells[1].textContent])")
        assert rows == [[c["name"], c["kind"]] for c in card["encoding"]["columns"]]
        assert dict(rows) == {"plan": "categorical", "state": "categorical", "tenure_months": "numeric",
                              "monthly_fee": "numeric", "autopay": "boolean", "support_calls": "numeric"}

        page.get_by_test_id("feature-plan").fill("basic")
        page.get_by_test_id("feature-state").fill("TX")
        page.get_by_test_id("feature-tenure_months").fill("")  # missing: imputed by the model
        page.get_by_test_id("feature-autopay").select_option("false")
        page.get_by_test_id("feature-support_calls").fill("4")
        assert_every_control_labelled(page)
        page.get_by_test_id("predict-submit").click()
        expect(page.get_by_test_id("predict-result")).to_be_visible()
        fee = float(page.get_by_test_id("feature-monthly_fee").input_value())
        record = {"plan": "basic", "state": "TX", "tenure_months": None, "monthly_fee": fee, "autopay": False,
                  "support_calls": 4}
        p = api.post("/predict_proba", json={"model": "churn-ui", "records": [record]}).raise_for_status().json()[
            "probabilities"][0][1]
        shown = float(page.get_by_test_id("predict-probability").get_attribute("data-value") or "nan")
        assert shown == pytest.approx(p, rel=1e-12, abs=1e-15)
        contributions = page.eval_on_selector_all(
            "[data-testid=contributions] tbody td.contribution", "els => els.map((e) => Number(e.dataset.value))")
        assert len(contributions) == 6
        logit = float(page.get_by_test_id("logit-total").get_attribute("data-value") or "nan")
        assert logit == pytest.approx(math.log(p / (1 - p)), rel=1e-6, abs=1e-6)
        page.get_by_test_id("tryit").screenshot(path=ARTIFACTS / "try-it-mixed.png")
    assert watch.errors == []


def test_dashboard_with_protected_reads(protected_server: Server, browser: Browser) -> None:
    """With LOGREG_PROTECT_READS the page says a key is needed, then shows the models once one is pasted."""
    watch = ConsoleWatch()
    watch.allow_http_error(401, "/models")
    watch.allow_http_error(403, "/models")
    with dashboard_page(browser, f"{protected_server.url}/", watch, viewport=PHONE) as page:
        status = page.get_by_test_id("status")
        expect(status).to_contain_text("needs an API key")
        expect(status).to_have_attribute("data-kind", "error")
        page.get_by_label("API key").fill("not-the-key")
        page.get_by_role("button", name="Use key").click()
        expect(status).to_contain_text("the API key is not valid")
        page.get_by_label("API key").fill(API_KEY)
        page.get_by_role("button", name="Use key").click()
        wait_for_selection(page, 0, f"{DEMO}@1")
        expect(page.get_by_test_id("card-title")).to_have_text(f"{DEMO} · version 1")
        expect(page.get_by_test_id("cm-1-1")).not_to_have_text("0")
        assert page.get_by_label("API key").input_value() == ""  # the field is cleared; the key stays in the tab
    assert watch.errors == []
