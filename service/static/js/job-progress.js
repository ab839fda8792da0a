/* A background training job's progress (GET /jobs/{id}: state and progress) as a <progress> bar with a
 * text label: bytes read of the file, iterations of max_iter, or an indeterminate bar between them. */

import { el } from "./dom.js";
import { fmt } from "./format.js";

const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

export const isFinished = (job) => FINISHED.has(job.state);

const count = (v) => typeof v === "number" && Number.isFinite(v);

/** What the bar shows: {phase, value, max} (value null: indeterminate) and the label's words. */
export function describeJob(job) {
  const p = job.progress && typeof job.progress === "object" ? job.progress : {};
  if (job.state === "queued") return { phase: "queued", value: null, detail: "waiting for a training slot" };
  const phase = p.phase || "starting";
  let shown = { phase, value: null, detail: "" };
  if (phase === "reading") {
    const rows = count(p.rows_read) ? `${fmt.int(p.rows_read)} rows` : "";
    if (count(p.bytes_total) && p.bytes_total > 0) {
      const done = count(p.bytes_read) ? p.bytes_read : 0;
      const bytes = `${fmt.bytes(done)} of ${fmt.bytes(p.bytes_total)}`;
      shown = { phase, value: Math.min(done, p.bytes_total), max: p.bytes_total, detail: rows ? `${bytes}, ${rows}` : bytes };
    } else shown.detail = rows || "the training data";
  } else if (phase === "fitting") {
    const iteration = count(p.iteration) ? p.iteration : 0;
    const loss = count(p.loss) ? `, loss ${fmt.sig(p.loss)}` : "";
    if (count(p.max_iter) && p.max_iter > 0) {
      shown = { phase, value: Math.min(iteration, p.max_iter), max: p.max_iter,
        detail: `iteration ${fmt.int(iteration)} of at most ${fmt.int(p.max_iter)}${loss}` };
    } else shown.detail = `iteration ${fmt.int(iteration)}${loss}`;
  } else if (phase === "evaluating") shown.detail = "scoring the training and validation rows";
  else if (phase === "storing") shown.detail = "writing the new version";
  if (count(p.eta_seconds)) shown.eta = `about ${fmt.duration(p.eta_seconds)} left`;
  return shown;
}

/** Show ``job`` in a container holding a <progress> and its <label>. */
export function renderJobProgress(container, job) {
  const shown = describeJob(job);
  const bar = container.querySelector("progress");
  if (shown.value === null) {
    bar.removeAttribute("value"); // indeterminate
    bar.removeAttribute("max");
  } else {
    bar.max = shown.max;
    bar.value = shown.value;
  }
  const words = [shown.detail, shown.eta].filter(Boolean).join(" · ");
  container.querySelector("label").replaceChildren(
    el("strong", { className: "job-phase", text: shown.phase }),
    words ? ` ${words}` : "",
  );
  container.dataset.phase = shown.phase;
  container.hidden = false;
}

export function hideJobProgress(container) {
  container.hidden = true;
  delete container.dataset.phase;
}
