// SPDX-License-Identifier: Apache-2.0
/**
 * Checks a parsed document against a schema node: types, enums, patterns, identifiers, durations,
 * unknown keys and conditional rules. It collects every problem and returns a copy of the value with
 * defaults filled in; invalid values are left out (or replaced by their default) so later
 * cross-reference checks can still run without cascading errors.
 */
import { isIP } from "node:net";
import { parseDurationMs } from "../shared/duration.js";
import { parseHostPort } from "./host-port.js";
import { identifierProblem } from "./identifier.js";
import type { PathProblem, PathSegment } from "./path-problem.js";
import type {
  ArrayNode,
  DurationNode,
  IntegerNode,
  MapNode,
  ObjectNode,
  ObjectRule,
  SchemaNode,
  StringNode,
} from "./schema-dsl.js";

/** The checked value (defaults applied) and every problem found. */
export interface CheckResult {
  value: unknown;
  problems: PathProblem[];
}

/** Checks `value` against `node`; never throws on bad input. */
export function checkSchema(
  node: SchemaNode,
  value: unknown,
  path: readonly PathSegment[] = [],
): CheckResult {
  const problems: PathProblem[] = [];
  return { value: check(node, value, path, problems), problems };
}

/** True for a JSON object (not an array, not null). */
export function isJsonObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A deep copy with plain prototypes (jsonc-parser builds null-prototype objects). */
export function plainJson(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(plainJson);
  if (isJsonObject(v))
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plainJson(x)]));
  return v;
}

/** Names the JSON type of a value for messages. */
export function describeJson(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return "an object";
  return `a ${typeof v}`;
}

function check(
  node: SchemaNode,
  value: unknown,
  path: readonly PathSegment[],
  problems: PathProblem[],
): unknown {
  switch (node.type) {
    case "object":
      return checkObject(node, value, path, problems);
    case "map":
      return checkMap(node, value, path, problems);
    case "array":
      return checkArray(node, value, path, problems);
    case "string":
      return checkString(node, value, path, problems);
    case "duration":
      return checkDuration(node, value, path, problems);
    case "integer":
      return checkInteger(node, value, path, problems);
    case "boolean":
      if (typeof value === "boolean") return value;
      problems.push({ path, message: `expected a boolean, got ${describeJson(value)}` });
      return undefined;
    case "json":
      if (node.shape === "object" && !isJsonObject(value)) {
        problems.push({ path, message: `expected an object, got ${describeJson(value)}` });
        return undefined;
      }
      return plainJson(value);
  }
}

/** Checks a present or absent field, falling back to its default. */
function checkField(
  node: SchemaNode,
  value: unknown,
  path: readonly PathSegment[],
  problems: PathProblem[],
): unknown {
  if (value === undefined) {
    if (node.required) problems.push({ path, message: "is required" });
    return node.default === undefined
      ? undefined
      : check(node, structuredClone(node.default), path, []);
  }
  const out = check(node, value, path, problems);
  if (out === undefined && node.default !== undefined)
    return check(node, structuredClone(node.default), path, []);
  return out;
}

function checkSchemaKey(
  value: unknown,
  path: readonly PathSegment[],
  problems: PathProblem[],
): void {
  if (typeof value !== "string") {
    problems.push({
      path: [...path, "$schema"],
      message: `expected a string, got ${describeJson(value)}`,
    });
  }
}

function checkObject(
  node: ObjectNode,
  value: unknown,
  path: readonly PathSegment[],
  problems: PathProblem[],
): unknown {
  if (!isJsonObject(value)) {
    problems.push({ path, message: `expected an object, got ${describeJson(value)}` });
    return undefined;
  }
  const known = Object.keys(node.fields);
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (Object.hasOwn(node.fields, key)) continue;
    if (key === "$schema" && node.allowSchemaKey) {
      checkSchemaKey(v, path, problems);
      if (typeof v === "string") out.$schema = v;
      continue;
    }
    const hint = suggest(key, known);
    problems.push({
      path: [...path, key],
      at: "key",
      message: `unknown key "${key}"${hint ? ` (did you mean "${hint}"?)` : ""}`,
    });
  }
  for (const [name, field] of Object.entries(node.fields)) {
    const r = checkField(field, value[name], [...path, name], problems);
    if (r !== undefined) out[name] = r;
  }
  for (const rule of node.rules ?? []) applyRule(rule, value, out, path, problems);
  return out;
}

function applyRule(
  rule: ObjectRule,
  input: Record<string, unknown>,
  out: Record<string, unknown>,
  path: readonly PathSegment[],
  problems: PathProblem[],
): void {
  const cond = out[rule.when.field];
  if (typeof cond !== "string" || !rule.when.in.includes(cond)) return;
  const when = `when ${rule.when.field} is "${cond}"`;
  for (const f of rule.require ?? []) {
    if (input[f] === undefined)
      problems.push({ path: [...path, f], message: `is required ${when}` });
  }
  for (const f of rule.forbid ?? []) {
    if (input[f] === undefined) continue;
    problems.push({ path: [...path, f], at: "key", message: `is not allowed ${when}` });
    delete out[f];
  }
  for (const [f, shape] of Object.entries(rule.shapes ?? {})) {
    // A required field that is missing was reported above; do not judge its default as well.
    if (out[f] === undefined || (input[f] === undefined && rule.require?.includes(f))) continue;
    const sub: PathProblem[] = [];
    const r = check(shape, out[f], [...path, f], sub);
    for (const p of sub) problems.push({ ...p, message: `${p.message} ${when}` });
    if (r === undefined) delete out[f];
    else out[f] = r;
  }
}

function checkMap(
  node: MapNode,
  value: unknown,
  path: readonly PathSegment[],
  problems: PathProblem[],
): unknown {
  if (!isJsonObject(value)) {
    problems.push({ path, message: `expected an object, got ${describeJson(value)}` });
    return undefined;
  }
  const entries: Array<[string, unknown]> = [];
  for (const [key, v] of Object.entries(value)) {
    if (key === "$schema" && node.allowSchemaKey) {
      checkSchemaKey(v, path, problems);
      continue;
    }
    const keyProblem = mapKeyProblem(node, key);
    if (keyProblem) problems.push({ path: [...path, key], at: "key", message: keyProblem });
    const r = check(node.values, v, [...path, key], problems);
    // Entries with a bad name are kept so references to them do not cascade into more problems.
    if (r !== undefined) entries.push([key, r]);
  }
  if (node.minEntries !== undefined && entries.length < node.minEntries) {
    problems.push({
      path,
      message: `must have at least ${node.minEntries} ${node.minEntries === 1 ? "entry" : "entries"}`,
    });
  }
  return Object.fromEntries(entries);
}

function mapKeyProblem(node: MapNode, key: string): string | undefined {
  const what = `${node.keys.name} name "${key}"`;
  if (key === "") return `${node.keys.name} name must not be empty`;
  if (node.keys.format === "identifier") {
    const p = identifierProblem(key);
    return p && `invalid ${what}: ${p}`;
  }
  if (node.keys.pattern !== undefined && !new RegExp(node.keys.pattern, "u").test(key)) {
    return `invalid ${what}: ${node.keys.patternHint ?? `must match ${node.keys.pattern}`}`;
  }
  return undefined;
}

function checkArray(
  node: ArrayNode,
  value: unknown,
  path: readonly PathSegment[],
  problems: PathProblem[],
): unknown {
  if (!Array.isArray(value)) {
    problems.push({ path, message: `expected an array, got ${describeJson(value)}` });
    return undefined;
  }
  const out: unknown[] = [];
  const seen = new Map<string, number>();
  value.forEach((v: unknown, i) => {
    const r = check(node.items, v, [...path, i], problems);
    if (r === undefined) return;
    if (node.uniqueItems) {
      const k = JSON.stringify(r);
      const first = seen.get(k);
      if (first !== undefined) {
        problems.push({ path: [...path, i], message: `duplicate of item ${first} (${k})` });
        return;
      }
      seen.set(k, i);
    }
    out.push(r);
  });
  if (node.minItems !== undefined && value.length < node.minItems) {
    problems.push({
      path,
      message: `must have at least ${node.minItems} item${node.minItems === 1 ? "" : "s"}`,
    });
  }
  return out;
}

function checkString(
  node: StringNode,
  value: unknown,
  path: readonly PathSegment[],
  problems: PathProblem[],
): unknown {
  if (typeof value !== "string") {
    problems.push({ path, message: `expected a string, got ${describeJson(value)}` });
    return undefined;
  }
  const fail = (message: string): undefined => {
    problems.push({ path, message });
    return undefined;
  };
  if (node.enum && !node.enum.includes(value)) {
    const hint = suggest(value, node.enum);
    const allowed =
      node.enum.length === 1
        ? `"${node.enum[0]}"`
        : `one of ${node.enum.map((e) => `"${e}"`).join(", ")}`;
    return fail(`must be ${allowed} (got "${value}")${hint ? `; did you mean "${hint}"?` : ""}`);
  }
  if (node.minLength !== undefined && value.length < node.minLength)
    return fail("must not be empty");
  if (node.pattern !== undefined && !new RegExp(node.pattern, "u").test(value)) {
    return fail(`invalid value "${value}": ${node.patternHint ?? `must match ${node.pattern}`}`);
  }
  switch (node.format) {
    case "identifier": {
      const p = identifierProblem(value);
      return p ? fail(`invalid identifier "${value}": ${p}`) : value;
    }
    case "host-port":
      return parseHostPort(value)
        ? value
        : fail(
            `invalid address "${value}": want host:port with a port from 0 to 65535 (e.g. "0.0.0.0:8990")`,
          );
    case "ip":
      return isIP(value) ? value : fail(`invalid IP address "${value}"`);
    case undefined:
      return value;
  }
}

function checkDuration(
  node: DurationNode,
  value: unknown,
  path: readonly PathSegment[],
  problems: PathProblem[],
): unknown {
  if (typeof value !== "string") {
    problems.push({
      path,
      message: `expected a duration string such as "90s", got ${describeJson(value)}`,
    });
    return undefined;
  }
  const ms = parseDurationMs(value);
  let message: string | undefined;
  if (ms === undefined) {
    message = `invalid duration "${value}": use Go syntax such as "90s", "1h30m" or "504h"`;
    if (/[0-9]d/.test(value)) message += ` ("d" is not a unit)`;
  } else if (node.min === "non-negative" && ms < 0) {
    message = `must not be negative (got "${value}")`;
  } else if (node.min === "positive" && ms <= 0) {
    message = `must be greater than 0 (got "${value}")`;
  }
  if (message === undefined) return value;
  problems.push({ path, message });
  return undefined;
}

function checkInteger(
  node: IntegerNode,
  value: unknown,
  path: readonly PathSegment[],
  problems: PathProblem[],
): unknown {
  let message: string | undefined;
  if (typeof value !== "number" || !Number.isInteger(value)) {
    message = `expected an integer, got ${typeof value === "number" ? String(value) : describeJson(value)}`;
  } else if (node.minimum !== undefined && value < node.minimum) {
    message = `must be at least ${node.minimum} (got ${value})`;
  } else if (node.maximum !== undefined && value > node.maximum) {
    message = `must be at most ${node.maximum} (got ${value})`;
  }
  if (message === undefined) return value;
  problems.push({ path, message });
  return undefined;
}

/** The closest of `candidates` to `word` (edit distance ≤ 2), for "did you mean" hints. */
export function suggest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    // The distance is at least the length difference: skip the quadratic work (a hostile file
    // may carry a key of megabytes).
    if (Math.abs(word.length - c.length) >= bestDistance) continue;
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  // Optimal string alignment: adjacent transpositions count as one edit ("wbe" → "web").
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
