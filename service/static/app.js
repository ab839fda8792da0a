/* logreg-service dashboard: plain JavaScript, no build step. Talks only to the service's JSON API.
 *
 * Server-provided strings are always written with textContent (never innerHTML).
 * The threshold explorer fetches a version's validation labels and probabilities once
 * (GET /models/{name}/versions/{v}/validation) and computes everything else in the page, with the
 * server's rule: binary models predict the positive class (classes[1]) when P(positive) >= threshold.
 */
"use strict";

(() => {
  const KEY_STORAGE = "logreg-service.api-key";
  const COLORS = {
    pos: "#c2410c",
    posSoft: "rgba(194, 65, 12, 0.55)",
    neg: "#2557a7",
    negSoft: "rgba(37, 87, 167, 0.55)",
    accent: "#2557a7",
    best: "#15803d",
    grid: "rgba(0, 0, 0, 0.08)",
    muted: "#9ca3af",
    f1: "#7c3aed",
    accuracy: "#0f766e",
  };
  const MAIN_PARAMS = ["solver", "penalty", "C", "alpha", "l1_ratio", "max_iter", "tol", "class_weight",
    "fit_intercept", "standardize", "random_state"];
  const MINIBATCH_PARAMS = ["batch_size", "learning_rate", "lr_schedule", "early_stopping"];
  const MINIBATCH = new Set(["sgd", "momentum", "nesterov", "adam"]);
  const MAX_COEF_BARS = 40;
  const HIST_BINS = 20;
  const TARGET_GUESSES = ["target", "label", "labels", "y", "class", "diagnosis", "outcome"];

  const $ = (id) => document.getElementById(id);

  const state = {
    models: [],
    token: 0,
    model: null,
    version: null,
    card: null,
    validation: null, // prepared validation data of the selected version (or null)
    validationCache: new Map(),
    threshold: 0.5,
    storedThreshold: null,
    prediction: null,
    charts: {},
    pendingChartUpdate: false,
  };

  // ------------------------------------------------------------------ formatting

  const fmt = {
    metric: (v) => (v === null || v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(3)),
    prob: (v) => (Number.isFinite(v) ? v.toFixed(4) : "–"),
    sig: (v, digits = 4) => {
      if (v === null || v === undefined) return "–";
      if (!Number.isFinite(v)) return String(v);
      if (v === 0) return "0";
      const a = Math.abs(v);
      return a >= 1e-3 && a < 1e6 ? String(Number(v.toPrecision(digits))) : v.toExponential(digits - 1);
    },
    threshold: (t) => {
      const r3 = Math.round(t * 1000) / 1000;
      return r3 === t ? t.toFixed(3) : t.toFixed(4);
    },
    int: (v) => (Number.isFinite(v) ? v.toLocaleString("en-US") : "–"),
  };

  /** The string the server uses as a coefficient key for a label (Python's str()). */
  function labelKey(label) {
    if (typeof label === "boolean") return label ? "True" : "False";
    return String(label);
  }

  const labelText = (label) => (label === null || label === undefined ? "–" : String(label));
  const clamp01 = (v) => Math.min(1, Math.max(0, v));
  const round3 = (v) => Math.round(v * 1000) / 1000;
  const safeDiv = (a, b) => (b === 0 ? 0 : a / b);
  const sigmoid = (z) => (z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z)));

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "className") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // ------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, type, message, details) {
      super(message);
      this.status = status;
      this.type = type;
      this.details = details;
    }
  }

  function apiKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || "";
    } catch {
      return "";
    }
  }

  async function api(method, path, { json, form } = {}) {
    const headers = { Accept: "application/json" };
    const key = apiKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form !== undefined) {
      body = form;
    }
    let response;
    try {
      response = await fetch(path, { method, headers, body, cache: "no-store" });
    } catch (err) {
      throw new ApiError(0, "network_error", `cannot reach the service (${err.message})`);
    }
    const text = await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      const error = data && typeof data === "object" ? data.error : null;
      throw new ApiError(
        response.status,
        (error && error.type) || "http_error",
        (error && error.message) || `HTTP ${response.status} ${response.statusText}`.trim(),
        error ? error.details : null,
      );
    }
    return { status: response.status, data, headers: response.headers };
  }

  const enc = encodeURIComponent;
  const versionPath = (name, version) => `/models/${enc(name)}/versions/${enc(String(version))}`;

  function describeError(err) {
    if (!(err instanceof ApiError)) return `Unexpected error: ${err && err.message ? err.message : err}`;
    if (err.status === 401) return `${err.message}. Paste a key in “API key” at the top of the page.`;
    if (err.status === 403) return `${err.message}: check the key in “API key” at the top of the page.`;
    if (err.status === 0) return `Network error: ${err.message}.`;
    return err.message;
  }

  // ------------------------------------------------------------------ messages

  /** Show a message in a live region; its look comes from data-kind (ok, error, warn, busy). */
  function setMessage(node, text, kind = "") {
    node.textContent = text;
    node.dataset.kind = text ? kind : "";
  }

  const setStatus = (text, kind = "") => setMessage($("status"), text, kind);

  /** Run an async handler; report whatever it throws instead of leaving an unhandled rejection. */
  function guarded(fn, where = $("status")) {
    return (...args) => {
      Promise.resolve()
        .then(() => fn(...args))
        .catch((err) => setMessage(where, describeError(err), "error"));
    };
  }

  // ------------------------------------------------------------------ API key

  function renderKeyState() {
    const has = Boolean(apiKey());
    $("key-state").textContent = has
      ? "A key is set for this tab (kept in session storage only; sent as a Bearer token)."
      : "No key: fine when the service has none. Kept in this tab only.";
    $("key-state").dataset.hasKey = String(has);
    $("api-key-clear").disabled = !has;
  }

  async function useKey(event) {
    event.preventDefault();
    const value = $("api-key").value.trim();
    try {
      if (value) sessionStorage.setItem(KEY_STORAGE, value);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch {
      setStatus("This browser does not allow session storage; the key cannot be kept.", "error");
      return;
    }
    $("api-key").value = "";
    renderKeyState();
    setStatus(value ? "API key set for this tab." : "API key cleared.", "ok");
    await reloadAfterKeyChange();
  }

  async function forgetKey() {
    try {
      sessionStorage.removeItem(KEY_STORAGE);
    } catch {
      /* nothing stored */
    }
    $("api-key").value = "";
    renderKeyState();
    setStatus("API key forgotten.", "ok");
    await reloadAfterKeyChange();
  }

  async function reloadAfterKeyChange() {
    // Reads may need the key (LOGREG_PROTECT_READS): reload what the page shows.
    if ((await loadModels()) && !state.card) await selectDefault();
  }

  // ------------------------------------------------------------------ models and versions

  async function loadModels() {
    let data;
    try {
      ({ data } = await api("GET", "/models"));
    } catch (err) {
      setStatus(`Cannot list models: ${describeError(err)}`, "error");
      return false;
    }
    state.models = Array.isArray(data.models) ? data.models : [];
    renderModelList();
    return true;
  }

  function renderModelList() {
    const list = $("model-list");
    list.replaceChildren();
    $("models-empty").hidden = state.models.length > 0;
    for (const model of state.models) {
      const byVersion = new Map();
      for (const [alias, version] of Object.entries(model.aliases || {})) {
        if (!byVersion.has(version)) byVersion.set(version, []);
        byVersion.get(version).push(alias);
      }
      const versions = el("ul", { className: "versions", "aria-label": `Versions of ${model.name}` });
      for (const version of [...model.versions].reverse()) {
        const selected = model.name === state.model && version === state.version;
        const button = el("button", {
          type: "button",
          className: "version-btn",
          "aria-pressed": String(selected),
          dataset: { model: model.name, version: String(version), testid: `version-${model.name}-${version}` },
        }, el("span", { className: "version-num", text: `v${version}` }));
        for (const alias of (byVersion.get(version) || []).sort()) {
          button.append(el("span", { className: `chip${alias === "production" ? " prod" : ""}`, text: alias }));
        }
        if (version === model.latest_version) button.append(el("span", { className: "chip ghost", text: "latest" }));
        versions.append(el("li", {}, button));
      }
      list.append(el("li", { className: "model-item" }, el("h3", { className: "model-name", text: model.name }), versions));
    }
  }

  function markSelectedVersion() {
    for (const button of $("model-list").querySelectorAll(".version-btn")) {
      const selected = button.dataset.model === state.model && Number(button.dataset.version) === state.version;
      button.setAttribute("aria-pressed", String(selected));
    }
  }

  function selectDefault() {
    const fromHash = new URLSearchParams(location.hash.slice(1));
    const wanted = fromHash.get("model");
    const model = state.models.find((m) => m.name === wanted) || state.models[0];
    if (!model) return Promise.resolve();
    const version = model.name === wanted && fromHash.get("version")
      ? fromHash.get("version")
      : (model.aliases && model.aliases.production) || model.latest_version;
    return selectVersion(model.name, version);
  }

  async function selectVersion(name, version) {
    const token = ++state.token;
    setStatus(`Loading ${name} version ${version}…`, "busy");
    let card;
    try {
      ({ data: card } = await api("GET", versionPath(name, version)));
    } catch (err) {
      if (token === state.token) setStatus(`Cannot load ${name} version ${version}: ${describeError(err)}`, "error");
      return;
    }
    if (token !== state.token) return;
    state.model = name;
    state.version = card.version;
    state.card = card;
    state.storedThreshold = typeof card.threshold === "number" ? card.threshold : null;
    state.threshold = state.storedThreshold ?? 0.5;
    state.validation = null;
    state.current = null;
    state.prediction = null;
    history.replaceState(null, "", `#model=${enc(name)}&version=${card.version}`);
    markSelectedVersion();
    $("placeholder").hidden = true;
    $("model-view").hidden = false;
    renderCard();
    renderCoefficients();
    renderLoss();
    renderTryIt();
    loadDrift(token);
    loadCalibration(token);
    setMessage($("threshold-message"), "");
    $("explorer").dataset.ready = "false";
    renderExplorerLoading();

    const key = `${name}@${card.version}`;
    let validation = state.validationCache.get(key) || null;
    let note = null;
    if (!validation && card.n_validation > 0 && card.validation_metrics) {
      try {
        const { data } = await api("GET", `${versionPath(name, card.version)}/validation`);
        validation = prepareValidation(data);
        state.validationCache.set(key, validation);
      } catch (err) {
        note = `Cannot load the validation split: ${describeError(err)}`;
      }
      if (token !== state.token) return;
    } else if (!validation) {
      note = "This version was trained without a validation split (validation_fraction 0): nothing to explore.";
    }
    state.validation = validation;
    renderExplorer(note);
    setStatus(`Showing ${name} version ${card.version}.`, "ok");
    // A counter of finished selections, so scripts (and the browser test) can wait for one.
    const main = $("main");
    main.dataset.selections = String(Number(main.dataset.selections || 0) + 1);
    main.dataset.selected = `${name}@${card.version}`;
  }

  // ------------------------------------------------------------------ calibration

  /** Fetch and show the calibration of the selected version's validation rows (from GET /metrics). */
  async function loadCalibration(token = state.token) {
    const name = state.model;
    const version = state.version;
    $("calibration-facts").replaceChildren();
    setMessage($("calibration-message"), "Loading calibration…", "busy");
    let stored;
    try {
      ({ data: stored } = await api("GET", `/metrics?model=${enc(name)}&version=${enc(String(version))}`));
    } catch (err) {
      if (token === state.token) setMessage($("calibration-message"), describeError(err), "error");
      return;
    }
    if (token !== state.token) return;
    renderCalibration(stored.calibration, stored.calibration_step);
  }

  function renderCalibration(report, step) {
    const facts = $("calibration-facts");
    $("calibration-box").hidden = !report;
    if (!report) {
      destroyChart("calibration-chart");
      setMessage($("calibration-message"),
        "This version was trained without a validation split (validation_fraction 0): nothing to measure.", "warn");
      return;
    }
    const topLabel = report.kind === "top_label";
    fact(facts, "Validation rows", fmt.int(report.n_samples));
    fact(facts, "Brier score", fmt.sig(report.brier, 3), { "data-testid": "calibration-brier", "data-value": String(report.brier) });
    fact(facts, "Expected calibration error", fmt.sig(report.ece, 3),
      { "data-testid": "calibration-ece", "data-value": String(report.ece) });
    if (step) {
      fact(facts, "Calibrated at training", `${step.method}: ECE ${fmt.sig(step.before.ece, 3)} before, `
        + `${fmt.sig(step.after_cross_fitted ? step.after_cross_fitted.ece : step.after.ece, 3)} after`,
      { "data-testid": "calibration-step" });
    }
    setMessage($("calibration-message"), "");
    const points = report.bins.filter((b) => b.count > 0)
      .map((b) => ({ x: b.mean_predicted, y: b.fraction_positive, count: b.count }));
    const largest = Math.max(1, ...points.map((p) => p.count));
    makeChart("calibration-chart", {
      type: "scatter",
      data: {
        datasets: [
          {
            label: topLabel ? "top class came true" : "truly positive",
            data: points,
            showLine: true,
            borderColor: COLORS.accent,
            backgroundColor: COLORS.accent,
            pointRadius: points.map((p) => 3 + 6 * Math.sqrt(p.count / largest)),
          },
          {
            label: "perfect calibration",
            data: [{ x: 0, y: 0 }, { x: 1, y: 1 }],
            showLine: true,
            borderColor: COLORS.muted,
            borderDash: [6, 4],
            pointRadius: 0,
          },
        ],
      },
      options: baseOptions({
        parsing: false,
        plugins: {
          legend: { display: true, position: "bottom" },
          tooltip: {
            filter: (item) => item.datasetIndex === 0,
            callbacks: {
              label: (ctx) => `mean prediction ${fmt.prob(ctx.raw.x)}, came true ${fmt.prob(ctx.raw.y)} (${fmt.int(ctx.raw.count)} rows)`,
            },
          },
        },
        scales: {
          x: { type: "linear", min: 0, max: 1, grid: { color: COLORS.grid },
            title: { display: true, text: topLabel ? "mean top probability" : "mean predicted P(positive)" } },
          y: { type: "linear", min: 0, max: 1, grid: { color: COLORS.grid },
            title: { display: true, text: topLabel ? "share correct" : "share positive" } },
        },
      }),
    });
  }

  // ------------------------------------------------------------------ drift

  const PSI_STATUS = [[0.25, "significant", "bad"], [0.1, "moderate", "warn"], [0, "stable", "good"]];

  /** Fetch and show the selected version's drift, unless another version was selected meanwhile. */
  async function loadDrift(token = state.token) {
    const name = state.model;
    const version = state.version;
    setMessage($("drift-summary"), `Loading drift of ${name} version ${version}…`, "busy");
    let report;
    try {
      ({ data: report } = await api("GET", `${versionPath(name, version)}/drift`));
    } catch (err) {
      if (token !== state.token) return;
      $("drift-box").hidden = true;
      setMessage($("drift-summary"), describeError(err), err instanceof ApiError && err.status === 404 ? "warn" : "error");
      return;
    }
    if (token !== state.token) return;
    renderDrift(report);
  }

  function renderDrift(report) {
    const names = Object.keys(report.psi);
    const stats = new Map(((report.training && report.training.features) || []).map((f) => [f.name, f]));
    const psi = (n) => (typeof report.psi[n] === "number" ? report.psi[n] : -1);
    names.sort((a, b) => psi(b) - psi(a) || (a < b ? -1 : a > b ? 1 : 0));
    const rows = names.map((n) => {
      const value = report.psi[n];
      const status = typeof value === "number" ? PSI_STATUS.find(([at]) => value >= at) : null;
      const stat = stats.get(n);
      const range = stat ? `${fmt.sig(stat.min)} to ${fmt.sig(stat.max)}` : "–";
      return el("tr", { dataset: { feature: n } },
        el("th", { scope: "row", text: n }),
        el("td", { className: "num psi", text: typeof value === "number" ? fmt.sig(value, 3) : "–",
          dataset: { value: typeof value === "number" ? String(value) : "" } }),
        el("td", {}, status ? el("span", { className: `badge ${status[2]}`, text: status[1] }) : "no rows yet"),
        el("td", { className: "num", text: fmt.int(report.out_of_range.values[n] ?? 0) }),
        el("td", { text: range }));
    });
    $("drift-table").tBodies[0].replaceChildren(...rows);
    $("drift-box").hidden = false;
    const drifted = report.drifted_features.length;
    const summary = `Worker ${report.pid}: ${fmt.int(report.rows_seen)} rows scored, ${fmt.int(report.window_rows)} `
      + `in its window of ${fmt.int(report.window_size)}; ${fmt.int(report.out_of_range.rows)} with a value outside `
      + `the training range; ${drifted === 0 ? "no feature" : `${drifted} feature${drifted === 1 ? "" : "s"}`} `
      + "with significant drift.";
    setMessage($("drift-summary"), summary, drifted > 0 ? "warn" : "ok");
  }

  // ------------------------------------------------------------------ model card

  function fact(list, term, value, attrs = {}) {
    const dd = el("dd", attrs);
    if (value instanceof Node) dd.append(value);
    else dd.textContent = value;
    list.append(el("div", { className: "fact" }, el("dt", { text: term }), dd));
  }

  function paramValue(value) {
    if (value === null || value === undefined) return "default";
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function renderCard() {
    const card = state.card;
    $("card-title").textContent = `${card.name ?? state.model} · version ${card.version}`;
    const aliases = $("card-aliases");
    aliases.replaceChildren(...(card.aliases || []).map((a) =>
      el("li", { className: `chip${a === "production" ? " prod" : ""}`, text: a })));
    $("card-description").textContent = card.description || "";
    $("card-description").hidden = !card.description;

    const facts = $("card-facts");
    facts.replaceChildren();
    const classes = card.classes || [];
    const classText = classes.map(labelText).join(", ");
    fact(facts, "Classes", classes.length === 2 ? `${classText} (positive: ${labelText(classes[1])})` : classText,
      { "data-testid": "card-classes" });
    fact(facts, "Features", String((card.feature_names || []).length));
    fact(facts, "Samples",
      `${fmt.int(card.n_samples)} (train ${fmt.int(card.n_train)}, validation ${fmt.int(card.n_validation)})`);
    const conv = el("span", {
      className: `badge ${card.converged ? "good" : "bad"}`, text: card.converged ? "converged" : "not converged",
    });
    fact(facts, "Convergence", el("span", {}, conv, ` in ${fmt.int(card.n_iter)} iteration${card.n_iter === 1 ? "" : "s"}`),
      { "data-testid": "card-convergence" });
    if (card.created_at) {
      const when = new Date(card.created_at);
      const duration = typeof card.duration_seconds === "number" ? ` (${fmt.sig(card.duration_seconds, 3)} s)` : "";
      fact(facts, "Trained", `${Number.isNaN(when.getTime()) ? card.created_at : when.toLocaleString()}${duration}`);
    }
    fact(facts, "Stored threshold", state.storedThreshold === null ? "none (0.5)" : fmt.threshold(state.storedThreshold),
      { id: "card-threshold" });
    if (card.tags && card.tags.source) fact(facts, "Source", card.tags.source);

    const warnings = card.warnings || [];
    $("card-warnings").hidden = warnings.length === 0;
    $("card-warnings-list").replaceChildren(...warnings.map((w) => el("li", { text: w })));

    const params = card.params || {};
    const main = [...MAIN_PARAMS, ...(MINIBATCH.has(params.solver) ? MINIBATCH_PARAMS : [])];
    const mainBody = $("params-table").tBodies[0];
    mainBody.replaceChildren();
    for (const name of main) {
      if (!(name in params) && name !== "alpha") continue;
      if (name === "l1_ratio" && params.penalty !== "elasticnet") continue;
      let value = paramValue(params[name]);
      if (name === "alpha" && typeof card.alpha === "number") {
        value = `${fmt.sig(card.alpha)}${params.alpha === null || params.alpha === undefined ? " (effective)" : ""}`;
      }
      mainBody.append(el("tr", { dataset: { param: name } },
        el("th", { scope: "row", text: name }), el("td", { text: value })));
    }
    const allBody = $("params-all").tBodies[0];
    allBody.replaceChildren(...Object.keys(params).sort().map((name) =>
      el("tr", {}, el("th", { scope: "row", text: name }), el("td", { text: paramValue(params[name]) }))));

    const metrics = $("card-metrics");
    metrics.replaceChildren();
    const vm = card.validation_metrics;
    if (vm) {
      const binary = classes.length === 2;
      fact(metrics, "Accuracy", fmt.metric(vm.accuracy));
      fact(metrics, binary ? "Precision" : "Precision (macro)", fmt.metric(vm.precision));
      fact(metrics, binary ? "Recall" : "Recall (macro)", fmt.metric(vm.recall));
      fact(metrics, binary ? "F1" : "F1 (macro)", fmt.metric(vm.f1));
      fact(metrics, "ROC AUC", fmt.metric(vm.roc_auc));
      fact(metrics, "Log-loss", fmt.metric(vm.log_loss));
      fact(metrics, "Brier", fmt.metric(vm.brier));
    } else {
      fact(metrics, "Validation", "none (trained with validation_fraction 0)");
    }
  }

  // ------------------------------------------------------------------ charts

  const reducedMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;

  /** Draws vertical lines at threshold values (linear x scales, or category bins spanning 0..1). */
  const thresholdLines = {
    id: "thresholdLines",
    afterDatasetsDraw(chart, _args, options) {
      const lines = (options && options.lines) || [];
      const x = chart.scales.x;
      const area = chart.chartArea;
      if (!x || !area) return;
      const { ctx } = chart;
      for (const line of lines) {
        if (typeof line.value !== "number") continue;
        const px = x.type === "category" ? x.left + line.value * (x.right - x.left) : x.getPixelForValue(line.value);
        ctx.save();
        ctx.strokeStyle = line.color;
        ctx.lineWidth = line.width || 2;
        ctx.setLineDash(line.dash || []);
        ctx.beginPath();
        ctx.moveTo(px, area.top);
        ctx.lineTo(px, area.bottom);
        ctx.stroke();
        if (line.label) {
          ctx.setLineDash([]);
          ctx.fillStyle = line.color;
          ctx.font = "600 11px system-ui, sans-serif";
          const right = px > area.left + (area.right - area.left) * 0.75;
          ctx.textAlign = right ? "right" : "left";
          const y = options.labelsAtBottom ? area.bottom - 6 - (line.offset || 0) : area.top + 12 + (line.offset || 0);
          ctx.fillText(line.label, px + (right ? -4 : 4), y);
        }
        ctx.restore();
      }
    },
  };

  function makeChart(id, config) {
    destroyChart(id);
    const canvas = $(id);
    const chart = new Chart(canvas, config);
    state.charts[id] = chart;
    return chart;
  }

  function destroyChart(id) {
    const existing = state.charts[id] || Chart.getChart($(id));
    if (existing) existing.destroy();
    delete state.charts[id];
  }

  function baseOptions(extra = {}) {
    const { plugins = {}, ...rest } = extra;
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: reducedMotion ? false : { duration: 250 },
      interaction: { mode: "nearest", intersect: false },
      ...rest,
      plugins: { legend: { labels: { boxWidth: 12, usePointStyle: true } }, ...plugins },
    };
  }

  // ------------------------------------------------------------------ coefficients

  function coefficientRows(card, key) {
    const names = card.feature_names || [];
    const coefs = (card.coefficients || {})[key] || {};
    const sds = card.feature_stds || (card.standardization && card.standardization.scale) || names.map(() => 1);
    return names.map((name, j) => {
      const raw = Number(coefs[name]);
      return { name, raw, perSd: raw * Number(sds[j] ?? 1) };
    });
  }

  function renderCoefficients() {
    const card = state.card;
    const keys = Object.keys(card.coefficients || {});
    const select = $("coef-class");
    const multi = keys.length > 1;
    select.hidden = !multi;
    $("coef-class-label").hidden = !multi;
    const previous = select.value;
    select.replaceChildren(...keys.map((k) => el("option", { value: k, text: k })));
    if (keys.includes(previous)) select.value = previous;
    const key = select.value || keys[0];
    const scale = $("coef-scale").value;
    const positive = (card.classes || []).length === 2 ? labelText(card.classes[1]) : key;
    $("coef-help").textContent = multi
      ? `Class “${key}” against the others. Sorted by size; hover a bar for its odds ratio.`
      : `Sorted by size. Positive bars push towards “${positive}”. Hover a bar for its odds ratio.`;

    if (!key) {
      destroyChart("coef-chart");
      return;
    }
    const rows = coefficientRows(card, key);
    const value = (r) => (scale === "sd" ? r.perSd : r.raw);
    const sorted = [...rows].sort((a, b) => Math.abs(value(b)) - Math.abs(value(a)));
    const shown = sorted.slice(0, MAX_COEF_BARS);
    if (sorted.length > shown.length) {
      $("coef-help").textContent += ` Showing the ${shown.length} largest of ${sorted.length}; all are in the table.`;
    }
    $("coef-box").style.height = `${Math.max(220, shown.length * 20 + 60)}px`;
    const unit = scale === "sd" ? "per SD" : "per unit";
    makeChart("coef-chart", {
      type: "bar",
      data: {
        labels: shown.map((r) => r.name),
        datasets: [{
          label: `coefficient (${unit})`,
          data: shown.map(value),
          backgroundColor: shown.map((r) => (value(r) >= 0 ? COLORS.posSoft : COLORS.negSoft)),
          borderColor: shown.map((r) => (value(r) >= 0 ? COLORS.pos : COLORS.neg)),
          borderWidth: 1,
          maxBarThickness: 24,
        }],
      },
      options: baseOptions({
        indexAxis: "y",
        interaction: { mode: "nearest", axis: "y", intersect: false },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              label: (ctx) => {
                const r = shown[ctx.dataIndex];
                const v = value(r);
                const lines = [`coefficient ${fmt.sig(v)} ${unit}`, `odds ratio ×${fmt.sig(Math.exp(v), 3)} ${unit}`];
                if (scale === "sd") lines.push(`per unit: ${fmt.sig(r.raw)} (odds ×${fmt.sig(Math.exp(r.raw), 3)})`);
                return lines;
              },
            },
          },
        },
        scales: {
          x: { grid: { color: COLORS.grid }, title: { display: true, text: `coefficient (${unit})` } },
          y: { grid: { display: false }, ticks: { autoSkip: false, font: { size: 11 } } },
        },
      }),
    });
    $("coef-chart").setAttribute("aria-label", `Bar chart of ${shown.length} coefficients (${unit}), largest first: ${
      shown.slice(0, 3).map((r) => `${r.name} ${fmt.sig(value(r), 3)}`).join(", ")}`);

    const body = $("coef-table").tBodies[0];
    body.replaceChildren(...sorted.map((r) => el("tr", {},
      el("th", { scope: "row", text: r.name }),
      el("td", { className: "num", text: fmt.sig(r.raw) }),
      el("td", { className: "num", text: fmt.sig(r.perSd) }),
      el("td", { className: "num", text: fmt.sig(Math.exp(r.perSd), 3) }))));
  }

  // ------------------------------------------------------------------ loss curve

  function renderLoss() {
    const card = state.card;
    const history = (card.loss_history || []).filter((v) => Number.isFinite(v));
    const nIter = Number(card.n_iter) || history.length;
    const span = Math.max(nIter, history.length - 1);
    const points = history.map((loss, i) => ({
      x: history.length > 1 ? Math.round((i * span) / (history.length - 1)) : 0,
      y: loss,
    }));
    const canLog = history.length > 0 && history.every((v) => v > 0);
    $("loss-log").disabled = !canLog;
    const log = canLog && $("loss-log").checked;
    const last = history.length ? history[history.length - 1] : null;
    const step = MINIBATCH.has((card.params || {}).solver) ? "epoch" : "iteration";
    $("loss-help").textContent = history.length
      ? `Objective (mean loss + penalty) by ${step}; final ${fmt.sig(last)}.${
        history.length < nIter ? ` Downsampled to ${history.length} points.` : ""}`
      : "No loss history stored for this version.";
    makeChart("loss-chart", {
      type: "line",
      data: {
        datasets: [{
          label: "training loss",
          data: points,
          borderColor: COLORS.accent,
          backgroundColor: COLORS.accent,
          pointRadius: points.length > 60 ? 0 : 2,
          borderWidth: 2,
          tension: 0,
        }],
      },
      options: baseOptions({
        parsing: false,
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: { title: (items) => `${step} ${items[0].raw.x}`, label: (ctx) => `loss ${fmt.sig(ctx.raw.y, 5)}` },
          },
        },
        scales: {
          x: {
            type: "linear", min: 0, max: Math.max(1, span), grid: { color: COLORS.grid }, title: { display: true, text: step },
          },
          y: { type: log ? "logarithmic" : "linear", grid: { color: COLORS.grid }, title: { display: true, text: "loss" } },
        },
      }),
    });
  }

  // ------------------------------------------------------------------ validation data

  function prepareValidation(data) {
    const classes = data.classes || [];
    const labels = data.labels || [];
    const probabilities = data.probabilities || [];
    const n = labels.length;
    const prepared = { raw: data, classes, labels, probabilities, n, binary: classes.length === 2 };
    if (!prepared.binary) {
      prepared.predicted = probabilities.map((row) => {
        let best = 0;
        for (let k = 1; k < row.length; k += 1) if (row[k] > row[best]) best = k;
        return best;
      });
      prepared.trueIndex = labels.map((l) => classes.indexOf(l));
      return prepared;
    }
    const positive = classes[1];
    const scores = probabilities.map((row) => Number(row[1]));
    const isPos = labels.map((l) => l === positive);
    const nPos = isPos.filter(Boolean).length;
    const nNeg = n - nPos;
    Object.assign(prepared, { positive, scores, isPos, nPos, nNeg });

    // Counts at each distinct score, from the highest (the ROC and PR curves' vertices).
    const order = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a]);
    const vertices = [];
    let tp = 0;
    let fp = 0;
    for (let k = 0; k < n; k += 1) {
      const i = order[k];
      if (isPos[i]) tp += 1;
      else fp += 1;
      if (k === n - 1 || scores[order[k + 1]] !== scores[i]) vertices.push({ t: scores[i], tp, fp });
    }
    prepared.vertices = vertices;
    prepared.roc = [{ x: 0, y: 0 }, ...vertices.map((v) => ({ x: safeDiv(v.fp, nNeg), y: safeDiv(v.tp, nPos) }))];
    let auc = 0;
    for (let k = 1; k < prepared.roc.length; k += 1) {
      const a = prepared.roc[k - 1];
      const b = prepared.roc[k];
      auc += ((b.x - a.x) * (a.y + b.y)) / 2;
    }
    prepared.auc = nPos > 0 && nNeg > 0 ? auc : null;
    prepared.pr = [{ x: 0, y: 1 }, ...vertices.map((v) => ({ x: safeDiv(v.tp, nPos), y: safeDiv(v.tp, v.tp + v.fp) }))];
    let ap = 0;
    let previousRecall = 0;
    for (const v of vertices) {
      const recall = safeDiv(v.tp, nPos);
      ap += (recall - previousRecall) * safeDiv(v.tp, v.tp + v.fp);
      previousRecall = recall;
    }
    prepared.ap = nPos > 0 ? ap : null;

    // F1-optimal cut: exact over the distinct scores; among equal F1 the largest threshold (as the server).
    let best = 0;
    let bestF1 = -1;
    vertices.forEach((v, k) => {
      const f1 = safeDiv(2 * v.tp, nPos + v.tp + v.fp);
      if (f1 > bestF1) {
        bestF1 = f1;
        best = k;
      }
    });
    if (vertices.length) {
      const exact = vertices[best].t;
      const below = best + 1 < vertices.length ? vertices[best + 1].t : -Infinity;
      prepared.best = { exact, below, threshold: roundestBetween(below, exact), f1: bestF1, vertex: vertices[best] };
    } else {
      prepared.best = null;
    }

    // Score histogram by true class.
    const histPos = new Array(HIST_BINS).fill(0);
    const histNeg = new Array(HIST_BINS).fill(0);
    scores.forEach((s, i) => {
      const bin = Math.min(HIST_BINS - 1, Math.max(0, Math.floor(s * HIST_BINS)));
      if (isPos[i]) histPos[bin] += 1;
      else histNeg[bin] += 1;
    });
    prepared.hist = { pos: histPos, neg: histNeg };

    // Precision, recall, F1 and accuracy on a grid of thresholds.
    const posSorted = scores.filter((_, i) => isPos[i]).sort((a, b) => a - b);
    const negSorted = scores.filter((_, i) => !isPos[i]).sort((a, b) => a - b);
    const sweep = { precision: [], recall: [], f1: [], accuracy: [] };
    for (let k = 0; k <= 100; k += 1) {
      const t = k / 100;
      const tpT = posSorted.length - lowerBound(posSorted, t);
      const fpT = negSorted.length - lowerBound(negSorted, t);
      const tnT = nNeg - fpT;
      sweep.precision.push({ x: t, y: safeDiv(tpT, tpT + fpT) });
      sweep.recall.push({ x: t, y: safeDiv(tpT, nPos) });
      sweep.f1.push({ x: t, y: safeDiv(2 * tpT, nPos + tpT + fpT) });
      sweep.accuracy.push({ x: t, y: safeDiv(tpT + tnT, n) });
    }
    prepared.sweep = sweep;
    return prepared;
  }

  function lowerBound(sorted, value) {
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid] < value) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The roundest number in (low, high]: every threshold there gives the same predictions as high. */
  function roundestBetween(low, high) {
    for (let digits = 1; digits <= 6; digits += 1) {
      const p = 10 ** digits;
      const candidate = Math.floor(high * p) / p;
      if (candidate <= high && candidate > low) return candidate;
    }
    return high;
  }

  /** Confusion counts at threshold t (positive when score >= t), the server's rule. */
  function binaryCounts(v, t) {
    let tp = 0;
    let fp = 0;
    let fn = 0;
    let tn = 0;
    for (let i = 0; i < v.n; i += 1) {
      const predictedPositive = v.scores[i] >= t;
      if (v.isPos[i]) {
        if (predictedPositive) tp += 1;
        else fn += 1;
      } else if (predictedPositive) fp += 1;
      else tn += 1;
    }
    return { tp, fp, fn, tn };
  }

  function multiclassMatrix(v) {
    const k = v.classes.length;
    const matrix = Array.from({ length: k }, () => new Array(k).fill(0));
    v.trueIndex.forEach((t, i) => {
      if (t >= 0) matrix[t][v.predicted[i]] += 1;
    });
    return matrix;
  }

  // ------------------------------------------------------------------ threshold explorer

  function renderExplorerLoading() {
    $("explorer-note").hidden = false;
    $("explorer-note").textContent = "Loading the validation split…";
    $("explorer-body").hidden = true;
    $("explorer-sample").textContent = "";
  }

  function renderExplorer(note) {
    const v = state.validation;
    const body = $("explorer-body");
    if (!v) {
      for (const id of ["hist-chart", "roc-chart", "pr-chart", "sweep-chart"]) destroyChart(id);
      $("explorer-note").hidden = false;
      $("explorer-note").textContent = note || "No validation data for this version.";
      body.hidden = true;
      $("explorer").dataset.ready = "true";
      return;
    }
    const raw = v.raw;
    const sampled = raw.sampled ? ` (a seeded sample of ${fmt.int(raw.n_validation)})` : "";
    $("explorer-sample").textContent = `${fmt.int(v.n)} validation rows${sampled}`;
    body.hidden = false;
    body.dataset.binary = String(v.binary);
    for (const node of body.querySelectorAll(".binary-only")) node.hidden = !v.binary;
    $("explorer-title").textContent = v.binary ? "Threshold explorer" : "Validation confusion matrix";
    buildConfusionTable(v.classes);
    if (!v.binary) {
      $("explorer-note").hidden = false;
      $("explorer-note").textContent =
        `A ${v.classes.length}-class model predicts its most probable class: no threshold to choose.`;
      for (const id of ["hist-chart", "roc-chart", "pr-chart", "sweep-chart"]) destroyChart(id);
      showMulticlassMetrics(v);
      $("explorer").dataset.ready = "true";
      return;
    }
    $("explorer-note").hidden = true;
    $("positive-label").textContent = labelText(v.positive);
    const best = v.best;
    $("threshold-best").disabled = !best;
    $("threshold-best").textContent = best ? `F1-optimal: ${fmt.threshold(best.threshold)}` : "F1-optimal";
    $("threshold-best").title = best
      ? `F1 ${fmt.metric(best.f1)} on the validation split; every threshold in (${
        Number.isFinite(best.below) ? fmt.threshold(best.below) : "0"}, ${fmt.threshold(best.exact)}] gives the same predictions`
      : "";
    $("threshold-best").dataset.threshold = best ? String(best.threshold) : "";
    drawExplorerCharts(v);
    applyThreshold(state.threshold, null);
    $("explorer").dataset.ready = "true";
  }

  function buildConfusionTable(classes) {
    const table = $("confusion");
    table.replaceChildren();
    const binary = classes.length === 2;
    const head = el("thead", {},
      el("tr", {}, el("td", { className: "corner", rowspan: 2, colspan: 2 }),
        el("th", { scope: "colgroup", colspan: classes.length, className: "axis", text: "Predicted" })),
      el("tr", {}, ...classes.map((c, j) => el("th", { scope: "col", "data-testid": `cm-col-${j}`, text: labelText(c) }))));
    const body = el("tbody");
    classes.forEach((c, i) => {
      const row = el("tr");
      if (i === 0) {
        row.append(el("th", { scope: "rowgroup", rowspan: classes.length, className: "axis vertical", text: "Actual" }));
      }
      row.append(el("th", { scope: "row", "data-testid": `cm-row-${i}`, text: labelText(c) }));
      classes.forEach((_, j) => {
        const tag = binary ? [["TN", "FP"], ["FN", "TP"]][i][j] : null;
        const cell = el("td", { className: `cell ${i === j ? "diag" : "off"}` },
          el("span", { className: "count", "data-testid": `cm-${i}-${j}`, text: "0" }));
        if (tag) cell.append(el("span", { className: "tag", text: tag }));
        row.append(cell);
      });
      body.append(row);
    });
    const caption = el("caption", { className: "visually-hidden", text: "Rows: actual class; columns: predicted class." });
    table.append(caption, head, body);
  }

  function fillConfusion(matrix) {
    const total = matrix.flat().reduce((a, b) => a + b, 0) || 1;
    const max = Math.max(1, ...matrix.flat());
    matrix.forEach((row, i) => row.forEach((count, j) => {
      const span = $("confusion").querySelector(`[data-testid="cm-${i}-${j}"]`);
      span.textContent = String(count);
      const cell = span.parentElement;
      cell.style.setProperty("--intensity", (count / max).toFixed(3));
      cell.title = `${count} of ${total} (${((100 * count) / total).toFixed(1)}%)`;
    }));
  }

  function metricTiles(items) {
    const list = $("explorer-metrics");
    list.replaceChildren(...items.map(([key, label, value, hint]) => el("div", { className: "tile" },
      el("dt", { text: label, title: hint || null }),
      el("dd", { "data-testid": `metric-${key}`, "data-value": String(value), text: fmt.metric(value) }))));
  }

  function showMulticlassMetrics(v) {
    const matrix = multiclassMatrix(v);
    fillConfusion(matrix);
    const k = v.classes.length;
    let correct = 0;
    const p = [];
    const r = [];
    const f = [];
    for (let c = 0; c < k; c += 1) {
      correct += matrix[c][c];
      const predicted = matrix.reduce((s, row) => s + row[c], 0);
      const actual = matrix[c].reduce((s, x) => s + x, 0);
      p.push(safeDiv(matrix[c][c], predicted));
      r.push(safeDiv(matrix[c][c], actual));
      f.push(safeDiv(2 * matrix[c][c], predicted + actual));
    }
    const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
    metricTiles([
      ["accuracy", "Accuracy", safeDiv(correct, v.n)],
      ["precision", "Precision (macro)", mean(p)],
      ["recall", "Recall (macro)", mean(r)],
      ["f1", "F1 (macro)", mean(f)],
    ]);
  }

  /** Set the explorer's threshold: matrix and numbers now, charts on the next frame. */
  function applyThreshold(t, source) {
    state.threshold = t;
    const slider = $("threshold-slider");
    const input = $("threshold-input");
    if (source !== "slider") slider.value = String(t);
    if (source !== "input") {
      input.value = String(Number(t.toFixed(6)));
      input.removeAttribute("aria-invalid");
    }
    slider.setAttribute("aria-valuetext", `threshold ${fmt.threshold(t)}`);
    const shown = $("threshold-value");
    shown.textContent = fmt.threshold(t);
    shown.dataset.threshold = String(t);
    const v = state.validation;
    if (v && v.binary) {
      const { tp, fp, fn, tn } = binaryCounts(v, t);
      fillConfusion([[tn, fp], [fn, tp]]);
      metricTiles([
        ["accuracy", "Accuracy", safeDiv(tp + tn, v.n)],
        ["precision", "Precision", safeDiv(tp, tp + fp), "TP / (TP + FP)"],
        ["recall", "Recall", safeDiv(tp, tp + fn), "TP / (TP + FN), the true positive rate"],
        ["f1", "F1", safeDiv(2 * tp, 2 * tp + fp + fn)],
        ["specificity", "Specificity", safeDiv(tn, tn + fp), "TN / (TN + FP)"],
        ["predicted-positive", "Predicted positive", safeDiv(tp + fp, v.n), "share of rows predicted positive"],
      ]);
      state.current = { tp, fp, fn, tn };
      scheduleChartUpdate();
    }
    updatePredictedClass();
  }

  function scheduleChartUpdate() {
    if (state.pendingChartUpdate) return;
    state.pendingChartUpdate = true;
    requestAnimationFrame(() => {
      state.pendingChartUpdate = false;
      updateExplorerCharts();
    });
  }

  function drawExplorerCharts(v) {
    const best = v.best;
    const bestLine = best ? { value: best.threshold, color: COLORS.best, dash: [6, 4], label: "F1-opt", offset: 14 } : null;
    const binLabels = Array.from({ length: HIST_BINS },
      (_, b) => `${(b / HIST_BINS).toFixed(2)}–${((b + 1) / HIST_BINS).toFixed(2)}`);
    const negLabel = labelText(v.classes[0]);
    const posLabel = labelText(v.classes[1]);

    makeChart("hist-chart", {
      type: "bar",
      data: {
        labels: binLabels,
        datasets: [
          { label: `actual ${negLabel}`, data: v.hist.neg, backgroundColor: COLORS.negSoft, borderColor: COLORS.neg,
            borderWidth: 1 },
          { label: `actual ${posLabel}`, data: v.hist.pos, backgroundColor: COLORS.posSoft, borderColor: COLORS.pos,
            borderWidth: 1 },
        ],
      },
      options: baseOptions({
        interaction: { mode: "index", intersect: false },
        plugins: {
          title: { display: true, text: `Validation scores P(${posLabel}) by actual class` },
          legend: { labels: { boxWidth: 12 } },
          thresholdLines: { lines: [] },
        },
        scales: {
          x: { stacked: true, grid: { display: false }, ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 6,
            callback: (_value, index) => (index % 4 === 0 ? (index / HIST_BINS).toFixed(1) : "") } },
          y: {
            stacked: true, beginAtZero: true, grid: { color: COLORS.grid }, title: { display: true, text: "rows" },
            ticks: { precision: 0 },
          },
        },
      }),
      plugins: [thresholdLines],
    });

    const pointStyle = (color, style = "circle", radius = 7) => ({
      backgroundColor: color, borderColor: "#fff", borderWidth: 2, pointRadius: radius, pointHoverRadius: radius + 1,
      pointStyle: style, showLine: false,
    });
    const curveOptions = (xTitle, yTitle, title) => baseOptions({
      parsing: false,
      plugins: {
        title: { display: true, text: title },
        legend: { labels: { boxWidth: 10, usePointStyle: true, filter: (item) => item.text !== "" } },
        tooltip: {
          callbacks: { label: (ctx) => `${ctx.dataset.label || ""} (${fmt.metric(ctx.raw.x)}, ${fmt.metric(ctx.raw.y)})` },
        },
      },
      scales: {
        x: { type: "linear", min: 0, max: 1, grid: { color: COLORS.grid }, title: { display: true, text: xTitle } },
        y: { type: "linear", min: 0, max: 1.02, grid: { color: COLORS.grid }, title: { display: true, text: yTitle },
          ticks: { callback: (value) => (value > 1 ? "" : value) } },
      },
    });
    const curve = (label, data, extra = {}) => ({
      label, data, showLine: true, borderColor: COLORS.accent, backgroundColor: COLORS.accent, pointRadius: 0,
      borderWidth: 2, pointStyle: "line", ...extra,
    });
    const guide = (data) => ({
      label: "", data, showLine: true, borderColor: COLORS.muted, borderDash: [4, 4], pointRadius: 0, borderWidth: 1,
    });
    const bestRoc = best ? [{ x: safeDiv(best.vertex.fp, v.nNeg), y: safeDiv(best.vertex.tp, v.nPos) }] : [];
    const bestPr = best
      ? [{ x: safeDiv(best.vertex.tp, v.nPos), y: safeDiv(best.vertex.tp, best.vertex.tp + best.vertex.fp) }]
      : [];

    makeChart("roc-chart", {
      type: "scatter",
      data: {
        datasets: [
          { label: "threshold", data: [], ...pointStyle(COLORS.pos) },
          { label: "F1-optimal", data: bestRoc, ...pointStyle(COLORS.best, "triangle", 7) },
          curve("ROC", v.roc),
          guide([{ x: 0, y: 0 }, { x: 1, y: 1 }]),
        ],
      },
      options: curveOptions("false positive rate", "true positive rate (recall)",
        `ROC curve${v.auc === null ? "" : ` · AUC ${fmt.metric(v.auc)}`}`),
    });

    makeChart("pr-chart", {
      type: "scatter",
      data: {
        datasets: [
          { label: "threshold", data: [], ...pointStyle(COLORS.pos) },
          { label: "F1-optimal", data: bestPr, ...pointStyle(COLORS.best, "triangle", 7) },
          curve("PR", v.pr, { stepped: "before" }),
          guide([{ x: 0, y: safeDiv(v.nPos, v.n) }, { x: 1, y: safeDiv(v.nPos, v.n) }]), // a no-skill classifier
        ],
      },
      options: curveOptions("recall", "precision", `Precision-recall${v.ap === null ? "" : ` · AP ${fmt.metric(v.ap)}`}`),
    });

    const line = (label, data, color, dash) => ({
      label, data, borderColor: color, backgroundColor: color, pointRadius: 0, borderWidth: 2, borderDash: dash || [], tension: 0,
      pointStyle: "line",
    });
    makeChart("sweep-chart", {
      type: "line",
      data: {
        datasets: [
          line("precision", v.sweep.precision, COLORS.pos),
          line("recall", v.sweep.recall, COLORS.neg),
          line("F1", v.sweep.f1, COLORS.f1),
          line("accuracy", v.sweep.accuracy, COLORS.accuracy, [5, 3]),
        ],
      },
      options: baseOptions({
        parsing: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          title: { display: true, text: "Metrics by threshold" },
          thresholdLines: { lines: [], labelsAtBottom: true },
          tooltip: {
            callbacks: {
              title: (items) => `threshold ${items[0].raw.x.toFixed(2)}`,
              label: (ctx) => `${ctx.dataset.label} ${fmt.metric(ctx.raw.y)}`,
            },
          },
        },
        scales: {
          x: { type: "linear", min: 0, max: 1, grid: { color: COLORS.grid }, title: { display: true, text: "threshold" } },
          y: { min: 0, max: 1.02, grid: { color: COLORS.grid }, ticks: { callback: (value) => (value > 1 ? "" : value) } },
        },
      }),
      plugins: [thresholdLines],
    });
    state.explorerLines = bestLine;
  }

  function updateExplorerCharts() {
    const v = state.validation;
    if (!v || !v.binary || !state.current) return;
    const { tp, fp, fn, tn } = state.current;
    const t = state.threshold;
    const lines = [{ value: t, color: COLORS.pos, label: `t = ${fmt.threshold(t)}` }];
    if (state.explorerLines) lines.push(state.explorerLines);
    for (const id of ["hist-chart", "sweep-chart"]) {
      const chart = state.charts[id];
      if (!chart) continue;
      chart.options.plugins.thresholdLines.lines = lines;
      chart.update("none");
    }
    const roc = state.charts["roc-chart"];
    if (roc) {
      roc.data.datasets[0].data = [{ x: safeDiv(fp, fp + tn), y: safeDiv(tp, tp + fn) }];
      roc.data.datasets[0].label = `t = ${fmt.threshold(t)}`;
      roc.update("none");
    }
    const pr = state.charts["pr-chart"];
    if (pr) {
      pr.data.datasets[0].data = [{ x: safeDiv(tp, tp + fn), y: safeDiv(tp, tp + fp) }];
      pr.data.datasets[0].label = `t = ${fmt.threshold(t)}`;
      pr.update("none");
    }
  }

  function onSliderKey(event) {
    const steps = { ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1 };
    let t = state.threshold;
    if (event.key in steps) t += steps[event.key] * (event.shiftKey ? 0.001 : 0.01);
    else if (event.key === "PageUp") t += 0.1;
    else if (event.key === "PageDown") t -= 0.1;
    else if (event.key === "Home") t = 0;
    else if (event.key === "End") t = 1;
    else return;
    event.preventDefault();
    applyThreshold(clamp01(round3(t)), null);
  }

  function onThresholdInput() {
    const input = $("threshold-input");
    const text = input.value.trim();
    const t = Number(text);
    if (text === "" || !Number.isFinite(t) || t < 0 || t > 1) {
      input.setAttribute("aria-invalid", "true");
      setMessage($("threshold-message"), "The threshold is a number from 0 to 1.", "error");
      return;
    }
    input.removeAttribute("aria-invalid");
    if ($("threshold-message").dataset.kind === "error") setMessage($("threshold-message"), "");
    applyThreshold(t, "input");
  }

  async function storeThreshold() {
    const message = $("threshold-message");
    const { model, version } = state;
    const t = state.threshold;
    const button = $("threshold-store");
    button.disabled = true;
    setMessage(message, `Storing ${fmt.threshold(t)}…`, "busy");
    try {
      const { data } = await api("PUT", `${versionPath(model, version)}/threshold`, { json: { threshold: t } });
      if (model !== state.model || version !== state.version) return;
      state.storedThreshold = typeof data.threshold === "number" ? data.threshold : null;
      state.card.threshold = state.storedThreshold;
      const dd = $("card-threshold");
      if (dd) dd.textContent = state.storedThreshold === null ? "none (0.5)" : fmt.threshold(state.storedThreshold);
      setMessage(message,
        `Stored ${fmt.threshold(t)} as the default threshold of ${model} version ${version}; /predict now uses it.`, "ok");
    } catch (err) {
      setMessage(message, `Not stored: ${describeError(err)}`, "error");
    } finally {
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ try it

  function featureMeans(card) {
    const names = card.feature_names || [];
    return card.feature_means || (card.standardization && card.standardization.mean) || names.map(() => 0);
  }

  /** A training mean as the form shows it: 6 significant digits (the exact value is in the input's title). */
  const meanText = (v) => (Number.isFinite(Number(v)) ? String(Number(Number(v).toPrecision(6))) : "0");

  function renderTryIt() {
    const card = state.card;
    const names = card.feature_names || [];
    const means = featureMeans(card);
    const fields = $("predict-fields");
    fields.replaceChildren(...names.map((name, j) => el("div", { className: "field" },
      el("label", { for: `feature-${j}`, text: name }),
      el("input", {
        type: "number", step: "any", id: `feature-${j}`, name: `feature-${j}`, inputmode: "decimal", required: true,
        value: meanText(means[j]), title: `training mean ${means[j]}`, "data-feature": name,
        "data-testid": `feature-${name}`,
      }))));
    $("predict-result").hidden = true;
    setMessage($("predict-message"), "");
  }

  function resetTryIt() {
    const means = featureMeans(state.card);
    (state.card.feature_names || []).forEach((_, j) => {
      const input = $(`feature-${j}`);
      input.value = meanText(means[j]);
      input.removeAttribute("aria-invalid");
    });
    setMessage($("predict-message"), "Reset to the training means.", "ok");
  }

  async function submitPrediction(event) {
    event.preventDefault();
    const card = state.card;
    const names = card.feature_names || [];
    const values = [];
    for (let j = 0; j < names.length; j += 1) {
      const input = $(`feature-${j}`);
      const text = input.value.trim();
      const value = Number(text);
      if (text === "" || !Number.isFinite(value)) {
        input.setAttribute("aria-invalid", "true");
        input.focus();
        setMessage($("predict-message"), `Enter a number for ${names[j]}.`, "error");
        return;
      }
      input.removeAttribute("aria-invalid");
      values.push(value);
    }
    const { model, version } = state;
    setMessage($("predict-message"), "Predicting…", "busy");
    let data;
    try {
      ({ data } = await api("POST", "/predict_proba", { json: { model, version, features: [values] } }));
    } catch (err) {
      setMessage($("predict-message"), `Prediction failed: ${describeError(err)}`, "error");
      return;
    }
    if (model !== state.model || version !== state.version) return;
    state.prediction = { values, classes: data.classes, probabilities: data.probabilities[0] };
    setMessage($("predict-message"), "");
    renderPrediction();
  }

  function renderPrediction() {
    const p = state.prediction;
    const card = state.card;
    const binary = p.classes.length === 2;
    const probs = p.probabilities;
    $("predict-result").hidden = false;
    const probTable = $("predict-probabilities");
    probTable.hidden = binary;
    if (binary) {
      $("predict-positive").textContent = labelText(p.classes[1]);
      $("predict-probability").textContent = fmt.prob(probs[1]);
      $("predict-probability").dataset.value = String(probs[1]);
    } else {
      let top = 0;
      probs.forEach((v, k) => { if (v > probs[top]) top = k; });
      $("predict-positive").textContent = labelText(p.classes[top]);
      $("predict-probability").textContent = fmt.prob(probs[top]);
      $("predict-probability").dataset.value = String(probs[top]);
      probTable.tBodies[0].replaceChildren(...p.classes.map((c, k) => el("tr", {},
        el("th", { scope: "row", text: labelText(c) }), el("td", { className: "num", text: fmt.prob(probs[k]) }))));
    }
    updatePredictedClass();

    // Contributions to the logit of the positive class (binary) or of the predicted class (multiclass).
    const classIndex = binary ? 1 : probs.indexOf(Math.max(...probs));
    const key = binary ? Object.keys(card.coefficients || {})[0] : labelKey(p.classes[classIndex]);
    const coefs = (card.coefficients || {})[key] || {};
    const intercept = Number((card.intercepts || {})[key] ?? 0);
    const names = card.feature_names || [];
    const std = card.standardization || {};
    const mean = std.mean || names.map(() => 0);
    const scale = std.scale || names.map(() => 1);
    const rows = names.map((name, j) => {
      const coef = Number(coefs[name]);
      const x = p.values[j];
      return { name, x, z: safeDiv(x - mean[j], scale[j]), contribution: coef * (x - mean[j]) };
    });
    const baseline = intercept + names.reduce((s, name, j) => s + Number(coefs[name]) * mean[j], 0);
    const total = rows.reduce((s, r) => s + r.contribution, 0);
    const logit = baseline + total;
    rows.sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution));
    const maxAbs = Math.max(1e-12, ...rows.map((r) => Math.abs(r.contribution)));
    $("contrib-class").textContent = binary
      ? `(towards “${labelText(p.classes[1])}”)`
      : `(score of the predicted class “${labelText(p.classes[classIndex])}”, before the softmax)`;
    const body = $("contributions").tBodies[0];
    body.replaceChildren(...rows.map((r) => {
      const width = (50 * Math.abs(r.contribution)) / maxAbs;
      const bar = el("span", { className: `bar ${r.contribution >= 0 ? "up" : "down"}` });
      bar.style.width = `${width.toFixed(2)}%`;
      return el("tr", { "data-feature": r.name },
        el("th", { scope: "row", text: r.name }),
        el("td", { className: "num", text: fmt.sig(r.x, 5) }),
        el("td", { className: "num", text: fixed(r.z, 2) }),
        el("td", { className: "num contribution", "data-value": String(r.contribution), text: signed(r.contribution) }),
        el("td", { className: "bar-cell", "aria-hidden": "true" }, el("span", { className: "axis-line" }), bar));
    }));
    const foot = $("contributions").tFoot;
    const footRow = (label, value, testid, extra = "") => el("tr", {},
      el("th", { scope: "row", colspan: 3, text: label }),
      el("td", { className: "num", "data-testid": testid, "data-value": String(value), text: signed(value) }),
      el("td", { className: "muted small-text", text: extra }));
    foot.replaceChildren(
      footRow("Baseline (intercept + every feature at its training mean)", baseline, "logit-baseline"),
      footRow("Sum of contributions", total, "logit-contributions"),
      footRow("Logit", logit, "logit-total", binary ? `sigmoid → ${fmt.prob(sigmoid(logit))}` : ""),
    );
  }

  /** Fixed decimals without a "-0.000". */
  function fixed(v, digits) {
    const text = v.toFixed(digits);
    return Number(text) === 0 ? (0).toFixed(digits) : text;
  }

  /** A logit term with its sign, to 3 decimals. */
  function signed(v) {
    const text = fixed(v, 3);
    return Number(text) > 0 ? `+${text}` : text;
  }

  function updatePredictedClass() {
    const p = state.prediction;
    if (!p) return;
    const node = $("predict-class");
    if (p.classes.length === 2) {
      const t = state.threshold;
      const positive = p.probabilities[1] >= t;
      node.textContent = labelText(p.classes[positive ? 1 : 0]);
      node.dataset.threshold = String(t);
      node.className = `big ${positive ? "pos" : "neg"}`;
      $("predict-rule").textContent = `at threshold ${fmt.threshold(t)}`;
    } else {
      let top = 0;
      p.probabilities.forEach((v, k) => { if (v > p.probabilities[top]) top = k; });
      node.textContent = labelText(p.classes[top]);
      node.className = "big";
      $("predict-rule").textContent = "(most probable)";
    }
  }

  // ------------------------------------------------------------------ train

  function parseCsvLine(line) {
    const fields = [];
    let field = "";
    let quoted = false;
    for (let i = 0; i < line.length; i += 1) {
      const ch = line[i];
      if (quoted) {
        if (ch === '"' && line[i + 1] === '"') {
          field += '"';
          i += 1;
        } else if (ch === '"') quoted = false;
        else field += ch;
      } else if (ch === '"') quoted = true;
      else if (ch === ",") {
        fields.push(field.trim());
        field = "";
      } else field += ch;
    }
    fields.push(field.trim());
    return fields;
  }

  function readHeader(file) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => {
        const text = String(reader.result || "").replace(/^\uFEFF/, "");
        const line = text.split(/\r?\n/, 1)[0] || "";
        resolve(line ? parseCsvLine(line) : []);
      };
      reader.onerror = () => reject(reader.error || new Error("cannot read the file"));
      reader.readAsText(file.slice(0, 65536));
    });
  }

  async function onTrainFile() {
    const file = $("train-file").files[0];
    const select = $("train-target");
    const message = $("train-message");
    select.replaceChildren(el("option", { value: "", text: file ? "reading…" : "choose a file first" }));
    select.disabled = true;
    if (!file) return;
    let header;
    try {
      header = await readHeader(file);
    } catch (err) {
      setMessage(message, `Cannot read ${file.name}: ${err.message}`, "error");
      return;
    }
    if (header.length < 2) {
      select.replaceChildren(el("option", { value: "", text: "no header found" }));
      setMessage(message, `${file.name}: the first line should be a header with at least two columns.`, "error");
      return;
    }
    select.replaceChildren(...header.map((name) => el("option", { value: name, text: name })));
    const guess = header.find((h) => TARGET_GUESSES.includes(h.toLowerCase())) || header[header.length - 1];
    select.value = guess;
    select.disabled = false;
    const modelInput = $("train-model");
    if (!modelInput.value || modelInput.dataset.auto === "true") {
      const base = file.name.replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9_.-]+/g, "-")
        .replace(/^[^A-Za-z0-9]+/, "").slice(0, 64);
      modelInput.value = base || "model";
      modelInput.dataset.auto = "true";
    }
    setMessage(message, `${file.name}: ${header.length} columns; pick the target column.`, "");
  }

  function trainParams() {
    const params = { solver: $("train-solver").value, penalty: $("train-penalty").value };
    const c = $("train-c").value.trim();
    if (c !== "") params.C = Number(c);
    if (params.penalty === "elasticnet") params.l1_ratio = Number($("train-l1-ratio").value || 0.5);
    const maxIter = $("train-max-iter").value.trim();
    if (maxIter !== "") params.max_iter = Number(maxIter);
    return params;
  }

  async function submitTraining(event) {
    event.preventDefault();
    const message = $("train-message");
    const file = $("train-file").files[0];
    const target = $("train-target").value;
    const model = $("train-model").value.trim();
    if (!file) {
      setMessage(message, "Choose a CSV file.", "error");
      $("train-file").focus();
      return;
    }
    if (!target) {
      setMessage(message, "Pick the target column.", "error");
      return;
    }
    if (!model) {
      setMessage(message, "Give the model a name.", "error");
      $("train-model").focus();
      return;
    }
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("target", target);
    form.append("model", model);
    form.append("params", JSON.stringify(trainParams()));
    const fraction = $("train-validation").value.trim();
    if (fraction !== "") form.append("validation_fraction", fraction);
    const button = $("train-submit");
    button.disabled = true;
    setMessage(message, `Training ${model} on ${file.name}…`, "busy");
    try {
      const response = await api("POST", "/train", { form });
      let report = response.data;
      if (response.status === 202) report = await followJob(report, message);
      if (!report) return;
      const warnings = (report.warnings || []).length ? ` Warnings: ${report.warnings.join(" ")}` : "";
      const accuracy = report.validation_metrics
        ? `, validation accuracy ${fmt.metric(report.validation_metrics.accuracy)}` : "";
      setMessage(message,
        `Trained ${report.model} version ${report.version}: ${report.converged ? "converged" : "did not converge"} in ${
          report.n_iter} iterations${accuracy}.${warnings}`,
        report.converged ? "ok" : "warn");
      await loadModels();
      await selectVersion(report.model, report.version);
    } catch (err) {
      setMessage(message, `Training failed: ${describeError(err)}`, "error");
    } finally {
      button.disabled = false;
    }
  }

  async function followJob(job, message) {
    const id = job.id;
    for (;;) {
      if (job.state === "succeeded") return job.result;
      if (job.state === "failed" || job.state === "cancelled") {
        setMessage(message, `Training ${job.state}: ${(job.error && job.error.message) || "no reason given"}`, "error");
        return null;
      }
      const progress = job.progress && typeof job.progress === "object"
        ? ` (iteration ${job.progress.iteration ?? "?"}, loss ${fmt.sig(job.progress.loss)})` : "";
      setMessage(message, `Training in the background: ${job.state}${progress}…`, "busy");
      await new Promise((resolve) => { setTimeout(resolve, 1000); });
      ({ data: job } = await api("GET", `/jobs/${enc(id)}`));
    }
  }

  function onPenaltyChange() {
    $("train-l1-ratio-field").hidden = $("train-penalty").value !== "elasticnet";
  }

  // ------------------------------------------------------------------ start

  function init() {
    renderKeyState();
    if (typeof Chart === "undefined") {
      setStatus("The charting library did not load (service/static/vendor/chart.umd.min.js).", "error");
      return;
    }
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.color = "#374151";

    $("key-form").addEventListener("submit", guarded(useKey));
    $("api-key-clear").addEventListener("click", guarded(forgetKey));
    $("refresh-models").addEventListener("click", guarded(async () => {
      if (await loadModels()) setStatus(`${state.models.length} model${state.models.length === 1 ? "" : "s"}.`, "ok");
    }));
    $("model-list").addEventListener("click", guarded(async (event) => {
      const button = event.target.closest(".version-btn");
      if (button) await selectVersion(button.dataset.model, Number(button.dataset.version));
    }));
    $("coef-scale").addEventListener("change", () => state.card && renderCoefficients());
    $("coef-class").addEventListener("change", () => state.card && renderCoefficients());
    $("loss-log").addEventListener("change", () => state.card && renderLoss());

    const slider = $("threshold-slider");
    slider.addEventListener("input", () => applyThreshold(Number(slider.value), "slider"));
    slider.addEventListener("keydown", onSliderKey);
    $("threshold-input").addEventListener("input", onThresholdInput);
    $("threshold-input").addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        onThresholdInput();
      }
    });
    $("drift-refresh").addEventListener("click", guarded(() => loadDrift(), $("drift-summary")));
    $("threshold-best").addEventListener("click", () => {
      if (state.validation && state.validation.best) applyThreshold(state.validation.best.threshold, null);
    });
    $("threshold-reset").addEventListener("click", () => applyThreshold(state.storedThreshold ?? 0.5, null));
    $("threshold-store").addEventListener("click", guarded(storeThreshold, $("threshold-message")));

    $("predict-form").addEventListener("submit", guarded(submitPrediction, $("predict-message")));
    $("predict-reset").addEventListener("click", resetTryIt);

    $("train-file").addEventListener("change", guarded(onTrainFile, $("train-message")));
    $("train-model").addEventListener("input", () => { $("train-model").dataset.auto = "false"; });
    $("train-penalty").addEventListener("change", onPenaltyChange);
    $("train-form").addEventListener("submit", guarded(submitTraining, $("train-message")));
    onPenaltyChange();

    guarded(async () => {
      if (await loadModels()) await selectDefault();
      document.body.dataset.ready = "true";
    })();
  }

  init();
})();
