/* The threshold explorer: the confusion matrix and metrics of the validation split at a chosen threshold.
 *
 * Binary versions: the server gives the F1-optimal threshold and the ROC / precision-recall curve
 * (POST .../threshold:optimize on the stored validation sample), the ROC AUC and the metrics-by-threshold
 * sweep (the validation metrics stored at training, as in GET /metrics); the page only counts the stored
 * validation sample (GET .../validation) at the slider's threshold, with the server's rule.
 * Multiclass versions: the stored confusion matrix and macro metrics, nothing to choose. */

import { api, describeError, versionPath } from "./api.js";
import { showStoredThreshold } from "./card.js";
import { clearExplorerCharts, drawExplorerCharts, showThresholdOnCharts } from "./explorer-charts.js";
import { $, el, guarded, setMessage } from "./dom.js";
import { clamp01, fmt, labelText, round3, safeDiv } from "./format.js";
import { binaryCounts, prepareSample, roundestBetween, scoreBelow } from "./sample.js";
import { state } from "./state.js";
import { updatePredictedClass } from "./tryit.js";

const cache = new Map(); // "name@version" -> binary view
let view = null; // what the explorer shows for the selected version, or null

// ------------------------------------------------------------------ loading

/** The binary view of a version: its validation sample, the server's curves and F1-optimal threshold. */
async function loadBinaryView(name, card) {
  const path = versionPath(name, card.version);
  const { data } = await api("GET", `${path}/validation`);
  const sample = prepareSample(data);
  const vm = card.validation_metrics || {};
  const result = {
    binary: true, classes: sample.classes, sample, best: null, roc: [], pr: [], curvesNote: null,
    auc: typeof vm.roc_auc === "number" ? vm.roc_auc : null,
    sweep: vm.threshold_sweep || null,
  };
  if (sample.nPos === 0 || sample.nNeg === 0) {
    result.curvesNote = "The validation split holds a single class: no ROC curve or F1-optimal threshold.";
    return result;
  }
  let optimum;
  try {
    ({ data: optimum } = await api("POST", `${path}/threshold:optimize`, { json: { objective: "f1" } }));
  } catch (err) {
    result.curvesNote = `No ROC curve or F1-optimal threshold: ${describeError(err)}`;
    return result;
  }
  const points = [...optimum.curve].reverse(); // thresholds falling: from (0, 0) to (1, 1)
  result.roc = [{ x: 0, y: 0 }, ...points.map((p) => ({ x: p.fpr, y: p.tpr }))];
  // Precision is undefined where nothing is predicted positive (the threshold 1.0 candidate).
  result.pr = [{ x: 0, y: 1 }, ...points.filter((p) => p.tpr > 0 || p.fpr > 0).map((p) => ({ x: p.recall, y: p.precision }))];
  const exact = optimum.threshold;
  const below = scoreBelow(sample, exact);
  result.best = { exact, below, threshold: roundestBetween(below, exact), ...optimum.metrics };
  cache.set(`${name}@${card.version}`, result);
  return result;
}

/** Load and show the explorer of the selected version; false when another version was selected meanwhile. */
export async function loadExplorer(token) {
  const { card, model: name } = state;
  view = null;
  setMessage($("threshold-message"), "");
  $("explorer").dataset.ready = "false";
  $("explorer-note").hidden = false;
  $("explorer-note").textContent = "Loading the validation split…";
  $("explorer-body").hidden = true;
  $("explorer-sample").textContent = "";

  let loaded = cache.get(`${name}@${card.version}`) || null;
  let note = null;
  if (!loaded && card.n_validation > 0 && card.validation_metrics) {
    if ((card.classes || []).length !== 2) {
      loaded = { binary: false, classes: card.classes, metrics: card.validation_metrics, n: card.n_validation };
    } else {
      try {
        loaded = await loadBinaryView(name, card);
      } catch (err) {
        note = `Cannot load the validation split: ${describeError(err)}`;
      }
      if (token !== state.token) return false;
    }
  } else if (!loaded) {
    note = "This version was trained without a validation split (validation_fraction 0): nothing to explore.";
  }
  view = loaded;
  renderExplorer(note);
  return true;
}

// ------------------------------------------------------------------ rendering

function renderExplorer(note) {
  const body = $("explorer-body");
  if (!view) {
    clearExplorerCharts();
    $("explorer-note").hidden = false;
    $("explorer-note").textContent = note || "No validation data for this version.";
    body.hidden = true;
    $("explorer").dataset.ready = "true";
    return;
  }
  body.hidden = false;
  body.dataset.binary = String(view.binary);
  for (const node of body.querySelectorAll(".binary-only")) node.hidden = !view.binary;
  $("explorer-title").textContent = view.binary ? "Threshold explorer" : "Validation confusion matrix";
  if (!view.binary) {
    renderMulticlass(view);
    $("explorer").dataset.ready = "true";
    return;
  }
  const { sample, best } = view;
  const sampled = sample.raw.sampled ? ` (a seeded sample of ${fmt.int(sample.raw.n_validation)})` : "";
  $("explorer-sample").textContent = `${fmt.int(sample.n)} validation rows${sampled}`;
  buildConfusionTable(view.classes);
  $("explorer-note").hidden = true;
  $("positive-label").textContent = labelText(sample.positive);
  $("threshold-best").disabled = !best;
  $("threshold-best").textContent = best ? `F1-optimal: ${fmt.threshold(best.threshold)}` : "F1-optimal";
  $("threshold-best").title = best
    ? `F1 ${fmt.metric(best.f1)} on the validation split; every threshold in (${
      Number.isFinite(best.below) ? fmt.threshold(best.below) : "0"}, ${fmt.threshold(best.exact)}] gives the same predictions`
    : "";
  $("threshold-best").dataset.threshold = best ? String(best.threshold) : "";
  if (view.curvesNote) setMessage($("threshold-message"), view.curvesNote, "warn");
  drawExplorerCharts(view);
  applyThreshold(state.threshold, null);
  $("explorer").dataset.ready = "true";
}

/** A multiclass version: the confusion matrix and macro metrics stored at training (argmax predictions). */
function renderMulticlass(stored) {
  const { labels, matrix } = stored.metrics.confusion_matrix;
  $("explorer-sample").textContent = `${fmt.int(stored.n)} validation rows`;
  $("explorer-note").hidden = false;
  $("explorer-note").textContent =
    `A ${labels.length}-class model predicts its most probable class: no threshold to choose.`;
  clearExplorerCharts();
  buildConfusionTable(labels);
  fillConfusion(matrix);
  metricTiles([
    ["accuracy", "Accuracy", stored.metrics.accuracy],
    ["precision", "Precision (macro)", stored.metrics.precision],
    ["recall", "Recall (macro)", stored.metrics.recall],
    ["f1", "F1 (macro)", stored.metrics.f1],
  ]);
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

// ------------------------------------------------------------------ the threshold

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
  if (view && view.binary) {
    const { n } = view.sample;
    const counts = binaryCounts(view.sample, t);
    const { tp, fp, fn, tn } = counts;
    fillConfusion([[tn, fp], [fn, tp]]);
    metricTiles([
      ["accuracy", "Accuracy", safeDiv(tp + tn, n)],
      ["precision", "Precision", safeDiv(tp, tp + fp), "TP / (TP + FP)"],
      ["recall", "Recall", safeDiv(tp, tp + fn), "TP / (TP + FN), the true positive rate"],
      ["f1", "F1", safeDiv(2 * tp, 2 * tp + fp + fn)],
      ["specificity", "Specificity", safeDiv(tn, tn + fp), "TN / (TN + FP)"],
      ["predicted-positive", "Predicted positive", safeDiv(tp + fp, n), "share of rows predicted positive"],
    ]);
    showThresholdOnCharts(t, counts);
  }
  updatePredictedClass();
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
    showStoredThreshold();
    setMessage(message,
      `Stored ${fmt.threshold(t)} as the default threshold of ${model} version ${version}; /predict now uses it.`, "ok");
  } catch (err) {
    setMessage(message, `Not stored: ${describeError(err)}`, "error");
  } finally {
    button.disabled = false;
  }
}

export function initExplorer() {
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
  $("threshold-best").addEventListener("click", () => {
    if (view && view.best) applyThreshold(view.best.threshold, null);
  });
  $("threshold-reset").addEventListener("click", () => applyThreshold(state.storedThreshold ?? 0.5, null));
  $("threshold-store").addEventListener("click", guarded(storeThreshold, $("threshold-message")));
}
