/* Monitoring panels of the selected version: calibration of its stored validation rows (GET /metrics)
 * and drift of the rows it has scored (GET .../drift). Both only show what the server reports. */

import { api, ApiError, describeError, enc, versionPath } from "./api.js";
import { baseOptions, COLORS, destroyChart, makeChart } from "./charts.js";
import { $, el, fact, guarded, setMessage } from "./dom.js";
import { fmt } from "./format.js";
import { state } from "./state.js";

// ------------------------------------------------------------------ calibration

/** Fetch and show the calibration of the selected version's validation rows (from GET /metrics). */
export async function loadCalibration(token = state.token) {
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
export async function loadDrift(token = state.token) {
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

export function initMonitoring() {
  $("drift-refresh").addEventListener("click", guarded(() => loadDrift(), $("drift-summary")));
}
