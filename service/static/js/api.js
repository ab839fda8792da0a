/* The service's JSON API: one fetch wrapper, the API key kept in this tab, and readable errors. */

const KEY_STORAGE = "logreg-service.api-key";

export class ApiError extends Error {
  constructor(status, type, message, details) {
    super(message);
    this.status = status;
    this.type = type;
    this.details = details;
  }
}

/** The key pasted in this tab ("" without one, or when session storage is unavailable). */
export function apiKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

/** Keep ``value`` as this tab's key ("" removes it); throws when the browser refuses session storage. */
export function storeApiKey(value) {
  if (value) sessionStorage.setItem(KEY_STORAGE, value);
  else sessionStorage.removeItem(KEY_STORAGE);
}

export function forgetApiKey() {
  try {
    sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    /* nothing stored */
  }
}

/** Call the API; resolves to {status, data, headers}, rejects with an ApiError (the server's error body). */
export async function api(method, path, { json, form } = {}) {
  const headers = { Accept: "application/json" };
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, cache: "no-store" });
  } catch (err) {
    throw new ApiError(0, "network_error", `cannot reach the service (${err.message})`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = data && typeof data === "object" ? data.error : null;
    throw new ApiError(
      response.status,
      (error && error.type) || "http_error",
      (error && error.message) || `HTTP ${response.status} ${response.statusText}`.trim(),
      error ? error.details : null,
    );
  }
  return { status: response.status, data, headers: response.headers };
}

export const enc = encodeURIComponent;
export const versionPath = (name, version) => `/models/${enc(name)}/versions/${enc(String(version))}`;

export function describeError(err) {
  if (!(err instanceof ApiError)) return `Unexpected error: ${err && err.message ? err.message : err}`;
  if (err.status === 401) return `${err.message}. Paste a key in “API key” at the top of the page.`;
  if (err.status === 403) return `${err.message}: check the key in “API key” at the top of the page.`;
  if (err.status === 0) return `Network error: ${err.message}.`;
  return err.message;
}
