/* The model list (GET /models) and selecting a version: loads its card and has every panel show it. */

import { api, describeError, enc, versionPath } from "./api.js";
import { renderCard, renderCoefficients, renderLoss } from "./card.js";
import { $, el, guarded, setStatus } from "./dom.js";
import { loadExplorer } from "./explorer.js";
import { loadCalibration, loadDrift } from "./monitoring.js";
import { state } from "./state.js";
import { renderTryIt } from "./tryit.js";

/** Reload the model list; false (with the reason in the status line) when it cannot be read. */
export async function loadModels() {
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

/** Select the version named in the URL's hash, else the first model's production (or latest) version. */
export function selectDefault() {
  const fromHash = new URLSearchParams(location.hash.slice(1));
  const wanted = fromHash.get("model");
  const model = state.models.find((m) => m.name === wanted) || state.models[0];
  if (!model) return Promise.resolve();
  const version = model.name === wanted && fromHash.get("version")
    ? fromHash.get("version")
    : (model.aliases && model.aliases.production) || model.latest_version;
  return selectVersion(model.name, version);
}

export async function selectVersion(name, version) {
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
  if (!(await loadExplorer(token))) return;
  setStatus(`Showing ${name} version ${card.version}.`, "ok");
  // A counter of finished selections, so scripts (and the browser test) can wait for one.
  const main = $("main");
  main.dataset.selections = String(Number(main.dataset.selections || 0) + 1);
  main.dataset.selected = `${name}@${card.version}`;
}

export function initModels() {
  $("refresh-models").addEventListener("click", guarded(async () => {
    if (await loadModels()) setStatus(`${state.models.length} model${state.models.length === 1 ? "" : "s"}.`, "ok");
  }));
  $("model-list").addEventListener("click", guarded(async (event) => {
    const button = event.target.closest(".version-btn");
    if (button) await selectVersion(button.dataset.model, Number(button.dataset.version));
  }));
}
