/* Try it: score one row (POST /predict_proba), show the predicted class at the explorer's threshold
 * and each feature's contribution to the logit. */

import { api, describeError } from "./api.js";
import { $, el, guarded, setMessage } from "./dom.js";
import { fixed, fmt, labelKey, labelText, safeDiv, sigmoid, signed } from "./format.js";
import { state } from "./state.js";

function featureMeans(card) {
  const names = card.feature_names || [];
  return card.feature_means || (card.standardization && card.standardization.mean) || names.map(() => 0);
}

/** A training mean as the form shows it: 6 significant digits (the exact value is in the input's title). */
const meanText = (v) => (Number.isFinite(Number(v)) ? String(Number(Number(v).toPrecision(6))) : "0");

const GROUPS = new Set(["(missing)", "(infrequent)"]);

/** A mixed-type model's input for one column: a number (empty: missing), true/false/missing, or a category
 * typed or picked from the levels training kept. */
function typedField(c, j) {
  const id = `feature-${j}`;
  const common = { id, name: id, "data-feature": c.name, "data-kind": c.kind, "data-testid": `feature-${c.name}` };
  let input;
  if (c.kind === "numeric") {
    input = el("input", { ...common, type: "number", step: "any", inputmode: "decimal", value: meanText(c.fill),
      title: `missing values become ${c.missing}; leave empty to send a missing value` });
  } else if (c.kind === "boolean") {
    input = el("select", common, el("option", { value: "true", text: "true" }),
      el("option", { value: "false", text: "false" }), el("option", { value: "", text: "(missing)" }));
    input.value = c.fill >= 0.5 ? "true" : "false";
  } else {
    const known = [...(c.levels || []).filter((l) => !GROUPS.has(l)), ...(c.infrequent || [])];
    input = el("input", { ...common, type: "text", list: `${id}-levels`, value: known[0] ?? "",
      title: "a category; leave empty to send a missing value" });
    return el("div", { className: "field" }, el("label", { for: id, text: `${c.name} (category)` }), input,
      el("datalist", { id: `${id}-levels` }, ...known.map((l) => el("option", { value: l }))));
  }
  return el("div", { className: "field" }, el("label", { for: id, text: c.name }), input);
}

export function renderTryIt() {
  const card = state.card;
  if (card.encoding) {
    $("predict-fields").replaceChildren(...card.encoding.columns.map(typedField));
    $("predict-result").hidden = true;
    setMessage($("predict-message"), "");
    return;
  }
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
  if (state.card.encoding) {
    renderTryIt();
    setMessage($("predict-message"), "Reset to the values missing cells get.", "ok");
    return;
  }
  const means = featureMeans(state.card);
  (state.card.feature_names || []).forEach((_, j) => {
    const input = $(`feature-${j}`);
    input.value = meanText(means[j]);
    input.removeAttribute("aria-invalid");
  });
  setMessage($("predict-message"), "Reset to the training means.", "ok");
}

/** The record of a mixed-type model's form, or null after pointing at a field that is not valid. */
function typedRecord(columns) {
  const record = {};
  for (let j = 0; j < columns.length; j += 1) {
    const input = $(`feature-${j}`);
    const text = input.value.trim();
    const c = columns[j];
    let value = text === "" ? null : text;
    if (c.kind === "numeric" && value !== null) {
      value = Number(text);
      if (!Number.isFinite(value)) {
        input.setAttribute("aria-invalid", "true");
        input.focus();
        setMessage($("predict-message"), `Enter a number for ${c.name}, or leave it empty.`, "error");
        return null;
      }
    } else if (c.kind === "boolean" && value !== null) {
      value = value === "true";
    }
    input.removeAttribute("aria-invalid");
    record[c.name] = value;
  }
  return record;
}

async function submitTyped(card) {
  const record = typedRecord(card.encoding.columns);
  if (!record) return;
  const { model, version } = state;
  setMessage($("predict-message"), "Predicting…", "busy");
  let data;
  try {
    ({ data } = await api("POST", "/predict_proba?explain=true", { json: { model, version, records: [record] } }));
  } catch (err) {
    setMessage($("predict-message"), `Prediction failed: ${describeError(err)}`, "error");
    return;
  }
  if (model !== state.model || version !== state.version) return;
  state.prediction = { values: Object.values(record), classes: data.classes, probabilities: data.probabilities[0],
    explanation: data.explanations[0] };
  setMessage($("predict-message"), "");
  renderPrediction();
}

async function submitPrediction(event) {
  event.preventDefault();
  const card = state.card;
  if (card.encoding) {
    await submitTyped(card);
    return;
  }
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
  let baseline = intercept + names.reduce((s, name, j) => s + Number(coefs[name]) * mean[j], 0);
  if (p.explanation) {  // a mixed-type model: the server's exact contributions per column
    const ex = p.explanation;
    const byName = binary ? ex.contributions : ex.contributions[labelKey(p.classes[classIndex])];
    rows.forEach((r) => { r.contribution = Number(byName[r.name]); r.z = NaN; });
    baseline = binary ? ex.baseline : ex.baseline[labelKey(p.classes[classIndex])];
  }
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
      el("td", { className: "num", text: typeof r.x === "number" ? fmt.sig(r.x, 5) : String(r.x ?? "(missing)") }),
      el("td", { className: "num", text: Number.isFinite(r.z) ? fixed(r.z, 2) : "—" }),
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

/** The try-it answer's class at the explorer's threshold (binary) or its most probable class. */
export function updatePredictedClass() {
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

export function initTryIt() {
  $("predict-form").addEventListener("submit", guarded(submitPrediction, $("predict-message")));
  $("predict-reset").addEventListener("click", resetTryIt);
}
