/* Train a new version from a CSV (POST /train, following a background job when it answers 202).
 * The model-name rule is the server's: the pattern of TrainRequest.model in /openapi.json. */

import { api, describeError, enc } from "./api.js";
import { $, el, guarded, setMessage } from "./dom.js";
import { fmt } from "./format.js";
import { hideJobProgress, isFinished, renderJobProgress } from "./job-progress.js";
import { loadModels, selectVersion } from "./models.js";
import { requestPattern } from "./schema.js";

const TARGET_GUESSES = ["target", "label", "labels", "y", "class", "diagnosis", "outcome"];
const MINIBATCH_SOLVERS = ["sgd", "momentum", "nesterov", "adam"]; // the solvers with a learning rate
const POLL_MS = 500; // how often a background job is looked at (the server writes progress every 0.5 s)

let nameRule = null; // RegExp of a valid model name (anchored), once read from /openapi.json

/** Put the server's model-name pattern on the name field. */
async function loadNameRule() {
  const rule = await requestPattern("TrainRequest", "model");
  if (!rule) return;
  $("train-model").pattern = rule.html;
  nameRule = rule.regex;
}

/** A model name from a file name: its characters the rule accepts, "-" for runs of the others. */
function suggestName(fileName) {
  const stem = fileName.replace(/\.[^.]*$/, "");
  if (!nameRule) return stem || "model";
  let name = "";
  for (const ch of stem) {
    if (nameRule.test(name + ch)) name += ch;
    else if (name && !name.endsWith("-") && nameRule.test(`${name}-`)) name += "-";
  }
  name = name.replace(/-+$/, "");
  return nameRule.test(name) ? name : "model";
}

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
    modelInput.value = suggestName(file.name);
    modelInput.dataset.auto = "true";
  }
  setMessage(message, `${file.name}: ${header.length} columns; pick the target column.`, "");
}

function trainParams() {
  const params = { solver: $("train-solver").value, penalty: $("train-penalty").value };
  const c = $("train-c").value.trim();
  if (c !== "") params.C = Number(c);
  if (params.penalty === "elasticnet") params.l1_ratio = Number($("train-l1-ratio").value || 0.5);
  const rate = $("train-learning-rate").value.trim();
  if (MINIBATCH_SOLVERS.includes(params.solver) && rate !== "") params.learning_rate = Number(rate);
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
  const path = $("train-background").checked ? "/train?background=true" : "/train";
  const button = $("train-submit");
  button.disabled = true;
  setMessage(message, `Training ${model} on ${file.name}…`, "busy");
  try {
    const response = await api("POST", path, { form });
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

/** Poll a background job until it ends, showing its phase and progress; its report, or null when it failed. */
async function followJob(job, message) {
  const bar = $("train-progress");
  try {
    while (!isFinished(job)) {
      renderJobProgress(bar, job);
      // The live region speaks once per phase; the bar's label carries the numbers.
      const text = `Training ${job.model} in the background: ${bar.dataset.phase}…`;
      if (message.textContent !== text) setMessage(message, text, "busy");
      await new Promise((resolve) => { setTimeout(resolve, POLL_MS); });
      ({ data: job } = await api("GET", `/jobs/${enc(job.id)}`));
    }
  } finally {
    hideJobProgress(bar);
  }
  if (job.state === "succeeded") return job.result;
  setMessage(message, `Training ${job.state}: ${(job.error && job.error.message) || "no reason given"}`, "error");
  return null;
}

function onPenaltyChange() {
  $("train-l1-ratio-field").hidden = $("train-penalty").value !== "elasticnet";
}

function onSolverChange() {
  $("train-learning-rate-field").hidden = !MINIBATCH_SOLVERS.includes($("train-solver").value);
}

export function initTrain() {
  $("train-file").addEventListener("change", guarded(onTrainFile, $("train-message")));
  $("train-model").addEventListener("input", () => { $("train-model").dataset.auto = "false"; });
  $("train-penalty").addEventListener("change", onPenaltyChange);
  $("train-solver").addEventListener("change", onSolverChange);
  $("train-form").addEventListener("submit", guarded(submitTraining, $("train-message")));
  onPenaltyChange();
  onSolverChange();
  guarded(loadNameRule, $("train-message"))();
}
