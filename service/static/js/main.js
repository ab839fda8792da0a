/* logreg-service dashboard: native ES modules, no build step. Talks only to the service's JSON API.
 * This module starts the page: the API key form, each panel's controls, then the model list. */

import { forgetApiKey, apiKey, storeApiKey } from "./api.js";
import { initCard } from "./card.js";
import { initCharts } from "./charts.js";
import { $, guarded, setStatus } from "./dom.js";
import { initExplorer } from "./explorer.js";
import { initModels, loadModels, selectDefault } from "./models.js";
import { initMonitoring } from "./monitoring.js";
import { state } from "./state.js";
import { initTrain } from "./train.js";
import { initTryIt } from "./tryit.js";

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
    storeApiKey(value);
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
  forgetApiKey();
  $("api-key").value = "";
  renderKeyState();
  setStatus("API key forgotten.", "ok");
  await reloadAfterKeyChange();
}

async function reloadAfterKeyChange() {
  // Reads may need the key (LOGREG_PROTECT_READS): reload what the page shows.
  if ((await loadModels()) && !state.card) await selectDefault();
}

// ------------------------------------------------------------------ start

function init() {
  renderKeyState();
  if (!initCharts()) {
    setStatus("The charting library did not load (service/static/vendor/chart.umd.min.js).", "error");
    return;
  }
  $("key-form").addEventListener("submit", guarded(useKey));
  $("api-key-clear").addEventListener("click", guarded(forgetKey));
  initModels();
  initCard();
  initMonitoring();
  initExplorer();
  initTryIt();
  initTrain();
  guarded(async () => {
    if (await loadModels()) await selectDefault();
    document.body.dataset.ready = "true";
  })();
}

init();
