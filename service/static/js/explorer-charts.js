/* The threshold explorer's charts: score histogram, ROC and precision-recall curves, metrics by threshold.
 * The curves, the AUC and the F1-optimal point are the server's (see explorer.js); the page only moves
 * the current threshold's marks, from the counts at that threshold. */

import { baseOptions, chartOf, COLORS, destroyChart, makeChart, thresholdLines } from "./charts.js";
import { fmt, labelText, safeDiv } from "./format.js";
import { HIST_BINS } from "./sample.js";

const IDS = ["hist-chart", "roc-chart", "pr-chart", "sweep-chart"];

let bestLine = null; // the F1-optimal threshold's line on the histogram and sweep charts
let pending = null; // the latest {t, counts} waiting for the next animation frame

export function clearExplorerCharts() {
  for (const id of IDS) destroyChart(id);
  bestLine = null;
}

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

const line = (label, data, color, dash) => ({
  label, data, borderColor: color, backgroundColor: color, pointRadius: 0, borderWidth: 2, borderDash: dash || [], tension: 0,
  pointStyle: "line",
});

function drawHistogram(view) {
  const { sample } = view;
  const binLabels = Array.from({ length: HIST_BINS },
    (_, b) => `${(b / HIST_BINS).toFixed(2)}–${((b + 1) / HIST_BINS).toFixed(2)}`);
  const posLabel = labelText(view.classes[1]);
  makeChart("hist-chart", {
    type: "bar",
    data: {
      labels: binLabels,
      datasets: [
        { label: `actual ${labelText(view.classes[0])}`, data: sample.hist.neg, backgroundColor: COLORS.negSoft,
          borderColor: COLORS.neg, borderWidth: 1 },
        { label: `actual ${posLabel}`, data: sample.hist.pos, backgroundColor: COLORS.posSoft, borderColor: COLORS.pos,
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
}

function drawSweep(sweep) {
  const series = (key) => (sweep ? sweep.thresholds.map((t, k) => ({ x: t, y: sweep[key][k] })) : []);
  makeChart("sweep-chart", {
    type: "line",
    data: {
      datasets: [
        line("precision", series("precision"), COLORS.pos),
        line("recall", series("recall"), COLORS.neg),
        line("F1", series("f1"), COLORS.f1),
        line("accuracy", series("accuracy"), COLORS.accuracy, [5, 3]),
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
}

/** Draw the four charts of a binary view (see explorer.js for its fields). */
export function drawExplorerCharts(view) {
  const { best, sample } = view;
  bestLine = best ? { value: best.threshold, color: COLORS.best, dash: [6, 4], label: "F1-opt", offset: 14 } : null;
  drawHistogram(view);

  makeChart("roc-chart", {
    type: "scatter",
    data: {
      datasets: [
        { label: "threshold", data: [], ...pointStyle(COLORS.pos) },
        { label: "F1-optimal", data: best ? [{ x: best.fpr, y: best.tpr }] : [], ...pointStyle(COLORS.best, "triangle", 7) },
        curve("ROC", view.roc),
        guide([{ x: 0, y: 0 }, { x: 1, y: 1 }]),
      ],
    },
    options: curveOptions("false positive rate", "true positive rate (recall)",
      `ROC curve${view.auc === null ? "" : ` · AUC ${fmt.metric(view.auc)}`}`),
  });

  const noSkill = safeDiv(sample.nPos, sample.n);
  makeChart("pr-chart", {
    type: "scatter",
    data: {
      datasets: [
        { label: "threshold", data: [], ...pointStyle(COLORS.pos) },
        { label: "F1-optimal", data: best ? [{ x: best.recall, y: best.precision }] : [],
          ...pointStyle(COLORS.best, "triangle", 7) },
        curve("PR", view.pr, { stepped: "before" }),
        guide([{ x: 0, y: noSkill }, { x: 1, y: noSkill }]), // a no-skill classifier
      ],
    },
    options: curveOptions("recall", "precision", "Precision-recall"),
  });

  drawSweep(view.sweep);
}

function update(t, counts) {
  const { tp, fp, fn, tn } = counts;
  const lines = [{ value: t, color: COLORS.pos, label: `t = ${fmt.threshold(t)}` }];
  if (bestLine) lines.push(bestLine);
  for (const id of ["hist-chart", "sweep-chart"]) {
    const chart = chartOf(id);
    if (!chart) continue;
    chart.options.plugins.thresholdLines.lines = lines;
    chart.update("none");
  }
  const marks = { "roc-chart": { x: safeDiv(fp, fp + tn), y: safeDiv(tp, tp + fn) },
    "pr-chart": { x: safeDiv(tp, tp + fn), y: safeDiv(tp, tp + fp) } };
  for (const [id, point] of Object.entries(marks)) {
    const chart = chartOf(id);
    if (!chart) continue;
    chart.data.datasets[0].data = [point];
    chart.data.datasets[0].label = `t = ${fmt.threshold(t)}`;
    chart.update("none");
  }
}

/** Mark threshold t (with its confusion counts) on the charts at the next animation frame. */
export function showThresholdOnCharts(t, counts) {
  const scheduled = pending !== null;
  pending = { t, counts };
  if (scheduled) return;
  requestAnimationFrame(() => {
    const { t: latest, counts: latestCounts } = pending;
    pending = null;
    update(latest, latestCounts);
  });
}
