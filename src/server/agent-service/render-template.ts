// SPDX-License-Identifier: Apache-2.0
/**
 * The small subset of Go's text/template that file and certificate templates use: literal text
 * with `{{ .A.B }}` field lookups, `{{ index .Vars "key" }}` for keys that are not identifiers,
 * `{{/* comments *\/}}`, and the `{{-` / `-}}` whitespace trim markers. Anything else is refused
 * with a clear message rather than rendered wrongly.
 *
 * Differs from Go: a missing key is an error (Go prints `<no value>` for a missing map key), so a
 * typo in a variable name cannot ship a broken file to every instance.
 */
import { NstanceError } from "../../shared/errors.js";

/** A value templates can look into: strings, numbers and booleans print; objects nest. */
export type TemplateValue =
  | string
  | number
  | boolean
  | { readonly [key: string]: TemplateValue | undefined };

/** The root object of a template (`.`). */
export type TemplateRoot = { readonly [key: string]: TemplateValue | undefined };

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

function fail(name: string, message: string): NstanceError {
  return new NstanceError("invalid_argument", `template ${name}: ${message}`);
}

function isObject(v: TemplateValue | undefined): v is { readonly [key: string]: TemplateValue } {
  return typeof v === "object" && v !== null;
}

/** Looks `path` (e.g. `["Vars", "port"]`) up in `root`. */
function lookup(root: TemplateRoot, path: readonly string[], name: string): TemplateValue {
  let current: TemplateValue | undefined = root;
  let shown = "";
  for (const seg of path) {
    if (!isObject(current)) throw fail(name, `${shown || "."} is not an object`);
    shown += `.${seg}`;
    if (!Object.hasOwn(current, seg) || current[seg] === undefined) {
      throw fail(name, `${shown} is not defined`);
    }
    current = current[seg];
  }
  if (current === undefined) throw fail(name, `${shown || "."} is not defined`);
  return current;
}

/** Splits `.A.B` into `["A", "B"]`; `.` alone is the root. */
function parseField(text: string, name: string): string[] {
  if (text === ".") return [];
  const segs = text.slice(1).split(".");
  for (const s of segs) {
    if (!IDENT.test(s)) throw fail(name, `invalid field reference ${JSON.stringify(text)}`);
  }
  return segs;
}

/** Evaluates one action (the text between the delimiters, trimmed). */
function evaluate(action: string, root: TemplateRoot, name: string): string {
  let value: TemplateValue;
  if (action.startsWith(".")) {
    value = lookup(root, parseField(action, name), name);
  } else {
    const m = /^index\s+(\.[A-Za-z0-9_.]*)\s+"((?:[^"\\]|\\.)*)"$/.exec(action);
    if (!m) throw fail(name, `unsupported action {{ ${action} }}`);
    const container = lookup(root, parseField(m[1]!, name), name);
    const key = JSON.parse(`"${m[2]!}"`) as string;
    if (!isObject(container)) throw fail(name, `${m[1]} is not an object`);
    if (!Object.hasOwn(container, key) || container[key] === undefined) {
      throw fail(name, `${m[1]} has no key ${JSON.stringify(key)}`);
    }
    value = container[key];
  }
  if (isObject(value)) throw fail(name, `{{ ${action} }} is an object, not a printable value`);
  return String(value);
}

/**
 * Renders `template` with `root` as `.`. Throws NstanceError `invalid_argument` naming the template
 * (`name`, e.g. the file name) for an unclosed action, an unsupported action, or an undefined field.
 */
export function renderTemplate(template: string, root: TemplateRoot, name = "template"): string {
  let out = "";
  let pos = 0;
  for (;;) {
    const open = template.indexOf("{{", pos);
    if (open < 0) {
      out += template.slice(pos);
      return out;
    }
    let text = template.slice(pos, open);
    let start = open + 2;
    // "{{- " trims the whitespace before the action (Go requires the space after the dash).
    if (/^- /.test(template.slice(start, start + 2))) {
      text = text.replace(/\s+$/, "");
      start += 1;
    }
    out += text;
    const close = template.indexOf("}}", start);
    if (close < 0) throw fail(name, `unclosed action at offset ${open}`);
    let end = close;
    let trimAfter = false;
    if (template.slice(close - 2, close) === " -") {
      trimAfter = true;
      end = close - 1;
    }
    const action = template.slice(start, end).trim();
    if (!(action.startsWith("/*") && action.endsWith("*/"))) {
      out += evaluate(action, root, name);
    }
    pos = close + 2;
    if (trimAfter) {
      while (pos < template.length && /\s/.test(template[pos]!)) pos++;
    }
  }
}
