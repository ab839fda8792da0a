/* DOM helpers: element lookup and creation, live-region messages, guarded event handlers.
 * Server-provided strings are always written with textContent (never innerHTML). */

import { describeError } from "./api.js";

export const $ = (id) => document.getElementById(id);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "className") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Append a term and its value (text or a node) to a <dl> of facts. */
export function fact(list, term, value, attrs = {}) {
  const dd = el("dd", attrs);
  if (value instanceof Node) dd.append(value);
  else dd.textContent = value;
  list.append(el("div", { className: "fact" }, el("dt", { text: term }), dd));
}

/** Show a message in a live region; its look comes from data-kind (ok, error, warn, busy). */
export function setMessage(node, text, kind = "") {
  node.textContent = text;
  node.dataset.kind = text ? kind : "";
}

export const setStatus = (text, kind = "") => setMessage($("status"), text, kind);

/** Run an async handler; report whatever it throws instead of leaving an unhandled rejection. */
export function guarded(fn, where = $("status")) {
  return (...args) => {
    Promise.resolve()
      .then(() => fn(...args))
      .catch((err) => setMessage(where, describeError(err), "error"));
  };
}
