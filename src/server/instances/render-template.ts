// SPDX-License-Identifier: Apache-2.0
/**
 * A minimal subset of Go's text/template for userdata and provider `args` (reference §5.2): field
 * paths such as `{{ .Instance.ID }}` or `{{ .Vars.listen_port }}`, with `{{-` / `-}}` trimming
 * the whitespace beside them. Anything else (pipelines, `if`, `range`, functions) is refused with
 * a clear error rather than rendered wrongly, and so is a path that names nothing.
 */
import { NstanceError } from "../../shared/errors.js";

/** Data a template reads: nested objects of strings (numbers and booleans print as text). */
export type TemplateData = { readonly [key: string]: TemplateValue };
/** A value in {@link TemplateData}. */
export type TemplateValue = string | number | boolean | TemplateData;

const ACTION = /\{\{(-?)\s*(.*?)\s*(-?)\}\}/gs;
const PATH = /^(\.[A-Za-z_][A-Za-z0-9_-]*)+$/;

/**
 * Renders `text` with `data`. `what` names the template in errors (`userdata`, `args.image`).
 * Throws NstanceError `invalid_argument` for unsupported actions and unknown paths.
 */
export function renderTemplate(text: string, data: TemplateData, what: string): string {
  if (!text.includes("{{")) return text;
  let out = "";
  let last = 0;
  for (const m of text.matchAll(ACTION)) {
    let before = text.slice(last, m.index);
    if (m[1] === "-") before = before.trimEnd();
    out += before;
    out += lookup(m[2] ?? "", data, what);
    last = m.index + m[0].length;
    if (m[3] === "-") {
      const rest = text.slice(last);
      last += rest.length - rest.trimStart().length;
    }
  }
  out += text.slice(last);
  return out;
}

/** Renders every string leaf of a JSON value (object keys stay as they are). */
export function renderStrings<T>(value: T, data: TemplateData, what: string): T {
  if (typeof value === "string") return renderTemplate(value, data, what) as T;
  if (Array.isArray(value)) {
    return value.map((v, i) => renderStrings(v, data, `${what}[${i}]`)) as T;
  }
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = renderStrings(v, data, `${what}.${k}`);
    return out as T;
  }
  return value;
}

function lookup(expr: string, data: TemplateData, what: string): string {
  if (!PATH.test(expr)) {
    throw new NstanceError(
      "invalid_argument",
      `${what}: unsupported template action {{ ${expr} }} (only field paths such as {{ .Instance.ID }} are supported)`,
    );
  }
  let v: TemplateValue | undefined = data;
  for (const name of expr.slice(1).split(".")) {
    v = v !== undefined && typeof v === "object" ? v[name] : undefined;
    if (v === undefined) {
      throw new NstanceError("invalid_argument", `${what}: {{ ${expr} }} names no value`);
    }
  }
  if (typeof v === "object") {
    throw new NstanceError("invalid_argument", `${what}: {{ ${expr} }} is not a single value`);
  }
  return String(v);
}
