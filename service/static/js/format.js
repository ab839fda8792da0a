/* Number and label formatting shared by the panels (pure functions, no DOM). */

export const fmt = {
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
  bytes: (v) => {
    if (!Number.isFinite(v)) return "–";
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (Math.abs(v) >= 1000 && i < units.length - 1) {
      v /= 1000;
      i += 1;
    }
    return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
  },
  /** Seconds, rounded: "3 s", "2 min", "1.5 h". */
  duration: (s) => {
    if (s < 90) return `${Math.max(1, Math.round(s))} s`;
    if (s < 5400) return `${Math.round(s / 60)} min`;
    return `${Number((s / 3600).toFixed(1))} h`;
  },
};

/** The string the server uses as a coefficient key for a label (Python's str()). */
export function labelKey(label) {
  if (typeof label === "boolean") return label ? "True" : "False";
  return String(label);
}

export const labelText = (label) => (label === null || label === undefined ? "–" : String(label));
export const clamp01 = (v) => Math.min(1, Math.max(0, v));
export const round3 = (v) => Math.round(v * 1000) / 1000;
export const safeDiv = (a, b) => (b === 0 ? 0 : a / b);
export const sigmoid = (z) => (z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z)));

/** Fixed decimals without a "-0.000". */
export function fixed(v, digits) {
  const text = v.toFixed(digits);
  return Number(text) === 0 ? (0).toFixed(digits) : text;
}

/** A logit term with its sign, to 3 decimals. */
export function signed(v) {
  const text = fixed(v, 3);
  return Number(text) > 0 ? `+${text}` : text;
}
