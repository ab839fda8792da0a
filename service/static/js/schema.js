/* Rules the page takes from the service's own OpenAPI document (GET /openapi.json) instead of copying
 * them: e.g. the pattern a model name must match, read from the request schema that validates it. */

import { api } from "./api.js";

let documentPromise = null;

/** The OpenAPI document, fetched once (again after a failure). */
function openApi() {
  if (!documentPromise) {
    documentPromise = api("GET", "/openapi.json").then(({ data }) => data);
    documentPromise.catch(() => { documentPromise = null; });
  }
  return documentPromise;
}

function lookup(doc, ref) {
  if (!ref.startsWith("#/")) return null;
  return ref.slice(2).split("/").reduce(
    (node, part) => (node && typeof node === "object" ? node[part.replace(/~1/g, "/").replace(/~0/g, "~")] : null), doc);
}

function merge(a, b) {
  return { ...a, ...b, properties: { ...(a.properties || {}), ...(b.properties || {}) } };
}

/** A schema with its $ref and allOf parts merged in (local references only). */
function resolve(doc, schema, seen = new Set()) {
  if (!schema || typeof schema !== "object") return {};
  const { $ref, allOf, ...own } = schema;
  let out = {};
  if (typeof $ref === "string" && !seen.has($ref)) out = merge(out, resolve(doc, lookup(doc, $ref), new Set([...seen, $ref])));
  for (const part of Array.isArray(allOf) ? allOf : []) out = merge(out, resolve(doc, part, seen));
  return merge(out, own);
}

/** A JSON-schema pattern as an HTML pattern attribute: without its anchors (the browser anchors it), and
 * valid with the `v` flag browsers compile it with (a literal "-" and ( ) [ { } / | escaped in a class). */
function htmlPattern(source) {
  let core = source.startsWith("^") ? source.slice(1) : source;
  if (core.endsWith("$") && !core.endsWith("\\$")) core = core.slice(0, -1);
  let out = "";
  let inClass = false;
  let classStart = 0;
  for (let i = 0; i < core.length; i += 1) {
    const ch = core[i];
    if (ch === "\\") {
      out += ch + (core[i + 1] ?? "");
      i += 1;
    } else if (!inClass) {
      if (ch === "[") {
        inClass = true;
        classStart = core[i + 1] === "^" ? i + 2 : i + 1;
        if (core[i + 1] === "^") {
          out += "[^";
          i += 1;
          continue;
        }
      }
      out += ch;
    } else if (ch === "]" && i > classStart) {
      inClass = false;
      out += ch;
    } else if (ch === "-") {
      out += i === classStart || core[i + 1] === "]" ? "\\-" : "-";
    } else {
      out += "()[{}/|".includes(ch) ? `\\${ch}` : ch;
    }
  }
  return out;
}

function compiles(pattern, flags) {
  try {
    return new RegExp(`^(?:${pattern})$`, flags);
  } catch {
    return null;
  }
}

/** The pattern of ``property`` of the request schema ``name`` as {html, regex} (regex anchored like the
 * HTML attribute), or null when the schema sets none or the browser cannot compile it. */
export async function requestPattern(name, property) {
  const doc = await openApi();
  const schema = resolve(doc, { $ref: `#/components/schemas/${name}` });
  const field = resolve(doc, (schema.properties || {})[property]);
  if (typeof field.pattern !== "string") return null;
  const html = htmlPattern(field.pattern);
  const regex = compiles(html, "v") || compiles(html, "u");
  return regex ? { html, regex } : null;
}
