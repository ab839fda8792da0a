/* The model card: what a version learned (facts, hyperparameters, stored validation metrics),
 * its coefficients and its training loss curve, all from the model card the server returns. */

import { baseOptions, COLORS, destroyChart, makeChart } from "./charts.js";
import { $, el, fact } from "./dom.js";
import { fmt, labelText } from "./format.js";
import { state } from "./state.js";

const MAIN_PARAMS = ["solver", "penalty", "C", "alpha", "l1_ratio", "max_iter", "tol", "class_weight",
  "fit_intercept", "standardize", "random_state"];
const MINIBATCH_PARAMS = ["batch_size", "learning_rate", "lr_schedule", "early_stopping"];
const MINIBATCH = new Set(["sgd", "momentum", "nesterov", "adam"]);
const MAX_COEF_BARS = 40;

function paramValue(value) {
  if (value === null || value === undefined) return "default";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

const thresholdText = (t) => (t === null ? "none (0.5)" : fmt.threshold(t));

/** Show a newly stored threshold in the card's facts. */
export function showStoredThreshold() {
  const dd = $("card-threshold");
  if (dd) dd.textContent = thresholdText(state.storedThreshold);
}

export function renderCard() {
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
  fact(facts, "Stored threshold", thresholdText(state.storedThreshold), { id: "card-threshold" });
  if (card.tags && card.tags.source) fact(facts, "Source", card.tags.source);

  const warnings = card.warnings || [];
  $("card-warnings").hidden = warnings.length === 0;
  $("card-warnings-list").replaceChildren(...warnings.map((w) => el("li", { text: w })));

  renderEncoding(card.encoding);

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

/** A mixed-type table's columns: kind, encoding, missing values and (categories) the levels kept. */
function renderEncoding(encoding) {
  const box = $("card-encoding");
  box.hidden = !encoding;
  if (!encoding) return;
  const levelsText = (c) => {
    if (c.kind !== "categorical") return c.missing_indicator ? "+ a missing flag" : "";
    const grouped = c.n_infrequent ? `; ${c.n_infrequent} grouped as infrequent` : "";
    return `${c.categories} categories → ${c.levels.length} columns${grouped}`;
  };
  $("encoding-table").tBodies[0].replaceChildren(...encoding.columns.map((c) => el("tr", { "data-column": c.name },
    el("th", { scope: "row", text: c.name }),
    el("td", { text: c.kind }),
    el("td", { text: c.kind === "categorical" ? `one-hot (unknown: ${c.unknown})` : c.encoding }),
    el("td", { text: c.missing }),
    el("td", { title: (c.levels || []).join(", "), text: levelsText(c) }))));
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

export function renderCoefficients() {
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

export function renderLoss() {
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

/** The card's own controls: coefficient class and scale, loss log scale. */
export function initCard() {
  $("coef-scale").addEventListener("change", () => state.card && renderCoefficients());
  $("coef-class").addEventListener("change", () => state.card && renderCoefficients());
  $("loss-log").addEventListener("change", () => state.card && renderLoss());
}
