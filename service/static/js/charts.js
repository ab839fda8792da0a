/* Chart.js helpers: the palette, one chart per canvas, shared options and the threshold-line plugin.
 * Chart.js itself is the vendored UMD build (a classic script that runs before the modules). */

import { $ } from "./dom.js";

export const COLORS = {
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

const charts = {};
const reducedMotion = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;

/** Set Chart.js defaults; false when the library did not load. */
export function initCharts() {
  if (typeof window.Chart === "undefined") return false;
  window.Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  window.Chart.defaults.color = "#374151";
  return true;
}

/** Draws vertical lines at threshold values (linear x scales, or category bins spanning 0..1). */
export const thresholdLines = {
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

/** (Re)draw the chart of canvas ``id``. */
export function makeChart(id, config) {
  destroyChart(id);
  const chart = new window.Chart($(id), config);
  charts[id] = chart;
  return chart;
}

export function destroyChart(id) {
  const existing = charts[id] || window.Chart.getChart($(id));
  if (existing) existing.destroy();
  delete charts[id];
}

/** The chart drawn on canvas ``id`` by makeChart, or undefined. */
export const chartOf = (id) => charts[id];

export function baseOptions(extra = {}) {
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
