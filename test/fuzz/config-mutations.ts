// SPDX-License-Identifier: Apache-2.0
/**
 * Test support for the config fuzzers: the seed corpus (examples/*.jsonc, test/fixtures/config),
 * mutation plans as fast-check arbitraries (byte-level: flips, inserts, truncation, deep nesting;
 * tree-level: wrong types, huge numbers, duplicated and hostile keys, unicode), and the checks every
 * mutated file must pass through the real loader: only ConfigError, every problem located
 * (`file:line:column` and a JSON path), validation and loading agree, and no case is slow.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import fc from "fast-check";
import { type Node, parseTree } from "jsonc-parser";
import {
  buildEffectiveConfig,
  parseDynamicGroups,
  parseStaticConfig,
  validateConfigText,
  validateGroupsText,
} from "../../src/config/load-config.js";
import type { ServerConfig } from "../../src/config/server-config.js";
import { ConfigError, type ConfigProblem } from "../../src/shared/errors.js";
import { fuzzParameters } from "./fuzz-runs.js";

/** Time one case may take before it counts as a hang (generous: a loaded CI machine). */
export const CASE_BOUND_MS = 5_000;

const EXAMPLES = new URL("../../examples/", import.meta.url);
const FIXTURES = new URL("../fixtures/config/", import.meta.url);

/** A seed file: its name and text. */
export interface SeedFile {
  name: string;
  text: string;
}

/**
 * An index into `seeds`, three times as likely to pick a seed that `isValid` accepts: mutations of
 * valid files explore what the loader accepts, not only its refusals.
 */
export function seedIndex(
  seeds: readonly SeedFile[],
  isValid: (s: SeedFile) => boolean,
): fc.Arbitrary<number> {
  const valid = seeds.flatMap((s, i) => (isValid(s) ? [i] : []));
  const any = fc.nat({ max: seeds.length - 1 });
  return valid.length === 0
    ? any
    : fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...valid) }, { weight: 1, arbitrary: any });
}

/** True when a static config seed validates cleanly. */
export const isValidStatic = (s: SeedFile): boolean =>
  validateConfigText(s.text, s.name).length === 0;

function readDir(dir: URL, pick: (name: string) => boolean): SeedFile[] {
  return readdirSync(dir)
    .filter(pick)
    .sort()
    .map((name) => ({ name, text: readFileSync(new URL(name, dir), "utf8") }));
}

/** Static config seeds: the examples and every static fixture (valid and broken). */
export function staticSeeds(): SeedFile[] {
  return [
    ...readDir(EXAMPLES, (n) => n.endsWith(".jsonc") && n !== "groups.jsonc"),
    ...readDir(FIXTURES, (n) => n.endsWith(".jsonc") && !n.startsWith("groups-")),
  ];
}

/** A dynamic groups seed with the static config it goes with. */
export interface GroupsSeed extends SeedFile {
  config: ServerConfig;
}

/** True when a groups seed validates cleanly against its static config. */
export const isValidGroups = (s: SeedFile): boolean =>
  validateGroupsText((s as GroupsSeed).config, s.text, s.name).length === 0;

/** Dynamic groups seeds, each with the static config it goes with. */
export function groupsSeeds(): GroupsSeed[] {
  const local = parseStaticConfig(
    readFileSync(new URL("local.jsonc", EXAMPLES), "utf8"),
    "local.jsonc",
  );
  const fixtureStatic = parseStaticConfig(
    readFileSync(new URL("valid-static.jsonc", FIXTURES), "utf8"),
    "valid-static.jsonc",
  );
  return [
    ...readDir(EXAMPLES, (n) => n === "groups.jsonc").map((s) => ({ ...s, config: local })),
    ...readDir(FIXTURES, (n) => n.startsWith("groups-")).map((s) => ({
      ...s,
      config: fixtureStatic,
    })),
  ];
}

// ---------------------------------------------------------------------------------------------
// Values and keys that stress the loader.

/** Numbers at and beyond the edges of what JSON and JavaScript represent. */
const HUGE_NUMBERS = [
  "1e309",
  "-1e309",
  "1e-400",
  "9007199254740993",
  "-9007199254740993",
  "123456789012345678901234567890",
  "-0",
  "0.5",
  "-1",
  "0",
  "2147483648",
  "4294967296",
  "1e21",
  "0e0",
  "1E+2",
];

/** Strings shaped like the config's typed strings (durations, addresses, names, templates). */
const TYPED_STRINGS = [
  "0s",
  "-1s",
  "1.5h",
  "1h30m",
  "21d",
  "1e3s",
  "h",
  "99999999999999999999h",
  "9007199254740993ms",
  "10µs",
  "1ns",
  "1m-1s",
  "",
  " ",
  ":0",
  ":99999",
  "[::1]:8990",
  "::1:8990",
  "localhost:-1",
  "a:b:c",
  "0.0.0.0:8990",
  "Local_1",
  "a".repeat(64),
  "web",
  "default",
  "{{",
  "{{ .Instance.ID",
  "{{ .Nope.Nope }}",
  "{{ range .Vars }}{{ end }}",
  '{{ .Vars.x | printf "%q" }}',
  "constructor",
  "__proto__",
  "toString",
  "hasOwnProperty",
  "file:///etc/passwd",
  "../../etc/passwd",
  "\u0000",
  "\ud800",
  "\u202e\u2028\ufeff",
  "\u{1f600}",
];

/** Object keys that break naive code (prototype keys, empty, separators, control characters). */
const HOSTILE_KEYS = [
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "",
  " ",
  "a.b",
  "a/b",
  "../x",
  "ä",
  "\u0000",
  "\ud800",
  "$schema",
  "x".repeat(300),
];

/** JSON text of a value of any type, biased towards the shapes above. */
export const jsonText: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
  { weight: 3, arbitrary: fc.constantFrom(...HUGE_NUMBERS) },
  { weight: 3, arbitrary: fc.constantFrom(...TYPED_STRINGS).map((s) => JSON.stringify(s)) },
  {
    weight: 2,
    arbitrary: fc.string({ unit: "binary", maxLength: 24 }).map((s) => JSON.stringify(s)),
  },
  { weight: 1, arbitrary: fc.constantFrom("true", "false", "null", "{}", "[]", '""') },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom("a", "1", "\u00e9", "{{ .Vars.x }}"), fc.integer({ min: 1, max: 5 }))
      .map(([c, e]) => JSON.stringify(c.repeat(10 ** e))),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 1, max: 5_000 }), fc.boolean())
      .map(([n, obj]) =>
        obj ? `${'{"a":'.repeat(n)}1${"}".repeat(n)}` : `${"[".repeat(n)}${"]".repeat(n)}`,
      ),
  },
);

/** An object key: a hostile one or any string. */
const keyText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...HOSTILE_KEYS),
  fc.string({ unit: "binary", maxLength: 12 }),
);

/** Fragments inserted into or swapped into the text by byte-level mutations. */
const fragment: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "{",
    "}",
    "[",
    "]",
    '"',
    ":",
    ",",
    "/*",
    "*/",
    "//",
    "\n",
    "\r\n",
    "\\",
    "\\u",
    "\\ud800",
    "\u0000",
    "\ufeff",
    "\u2028",
    "\ud83d",
    "-",
    "e",
    ".",
    "0",
    "Infinity",
    "NaN",
    "'",
    "`",
  ),
  fc.string({ unit: "binary", maxLength: 6 }),
  fc.string({ unit: "grapheme", maxLength: 6 }),
);

/**
 * A position in a text as a fraction of its length, so plans do not depend on the text. Unbiased:
 * fast-check's default bias would put nearly every mutation at the start of the file.
 */
const at = fc.noBias(fc.integer({ min: 0, max: 1_000_000 })).map((n) => n / 1_000_001);

/** One byte-level mutation. */
export type ByteMutation =
  | { op: "replace"; at: number; text: string }
  | { op: "insert"; at: number; text: string }
  | { op: "delete"; at: number; length: number }
  | { op: "truncate"; at: number }
  | { op: "copy"; from: number; length: number; to: number }
  | { op: "nest"; at: number; depth: number; object: boolean; closed: boolean }
  | { op: "bom" }
  | { op: "crlf" };

/** Arbitrary byte-level mutation. */
export const byteMutation: fc.Arbitrary<ByteMutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant("replace"), at, text: fragment }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("insert"), at, text: fragment }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("delete"),
      at,
      length: fc.integer({ min: 1, max: 40 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("truncate"), at }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("copy"),
      from: at,
      length: fc.integer({ min: 1, max: 200 }),
      to: at,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("nest"),
      at,
      depth: fc.oneof(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1_000, max: 20_000 })),
      object: fc.boolean(),
      closed: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ op: "bom" as const }) },
  { weight: 1, arbitrary: fc.constant({ op: "crlf" as const }) },
);

const offsetIn = (text: string, fraction: number): number => Math.floor(fraction * text.length);

/** Applies one byte-level mutation. */
export function applyByteMutation(text: string, m: ByteMutation): string {
  switch (m.op) {
    case "replace": {
      const i = offsetIn(text, m.at);
      return text.slice(0, i) + m.text + text.slice(i + Math.max(1, m.text.length));
    }
    case "insert": {
      const i = offsetIn(text, m.at);
      return text.slice(0, i) + m.text + text.slice(i);
    }
    case "delete": {
      const i = offsetIn(text, m.at);
      return text.slice(0, i) + text.slice(i + m.length);
    }
    case "truncate":
      return text.slice(0, offsetIn(text, m.at));
    case "copy": {
      const from = offsetIn(text, m.from);
      const piece = text.slice(from, from + m.length);
      const to = offsetIn(text, m.to);
      return text.slice(0, to) + piece + text.slice(to);
    }
    case "nest": {
      const i = offsetIn(text, m.at);
      const open = m.object ? '{"a":'.repeat(m.depth) : "[".repeat(m.depth);
      const close = m.closed ? (m.object ? "}" : "]").repeat(m.depth) : "";
      return `${text.slice(0, i)}${open}1${close}${text.slice(i)}`;
    }
    case "bom":
      return `\ufeff${text}`;
    case "crlf":
      return text.replace(/\n/g, "\r\n");
  }
}

/** One mutation of the syntax tree (nodes picked by fraction of the node list). */
export type TreeMutation =
  | { op: "set"; node: number; value: string }
  | { op: "duplicate-key"; node: number; value: string | undefined }
  | { op: "rename"; node: number; key: string }
  | { op: "remove"; node: number }
  | { op: "add"; node: number; key: string; value: string }
  | { op: "wrap"; node: number; object: boolean }
  | { op: "move-key"; node: number; to: number };

/** Arbitrary tree mutation. */
export const treeMutation: fc.Arbitrary<TreeMutation> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant("set"), node: at, value: jsonText }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("duplicate-key"),
      node: at,
      value: fc.option(jsonText, { nil: undefined }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("rename"), node: at, key: keyText }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("remove"), node: at }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant("add"), node: at, key: keyText, value: jsonText }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("wrap"), node: at, object: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("move-key"), node: at, to: at }) },
);

function collect(root: Node): { values: Node[]; properties: Node[]; objects: Node[] } {
  const values: Node[] = [];
  const properties: Node[] = [];
  const objects: Node[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (n.type === "property") properties.push(n);
    else values.push(n);
    if (n.type === "object") objects.push(n);
    // A property's first child is its key: mutate keys through the property, not as a value.
    const children = n.type === "property" ? (n.children ?? []).slice(1) : (n.children ?? []);
    stack.push(...children);
  }
  return { values, properties, objects };
}

const pick = <T>(xs: readonly T[], fraction: number): T | undefined =>
  xs.length === 0 ? undefined : xs[Math.min(xs.length - 1, Math.floor(fraction * xs.length))];

const splice = (text: string, offset: number, length: number, insert: string): string =>
  text.slice(0, offset) + insert + text.slice(offset + length);

/**
 * Applies one tree mutation to a text that parses (else returns it unchanged). Edits are made on
 * the text, so comments and formatting elsewhere survive.
 */
export function applyTreeMutation(text: string, m: TreeMutation): string {
  let root: Node | undefined;
  try {
    root = parseTree(text, [], { allowTrailingComma: true });
  } catch {
    // An earlier mutation nested the text too deep for jsonc-parser's recursion: keep it as is.
    return text;
  }
  if (root === undefined) return text;
  const { values, properties, objects } = collect(root);
  switch (m.op) {
    case "set": {
      const n = pick(values, m.node)!;
      return splice(text, n.offset, n.length, m.value);
    }
    case "duplicate-key": {
      const p = pick(properties, m.node);
      if (!p) return text;
      const key = text.slice(
        p.children![0]!.offset,
        p.children![0]!.offset + p.children![0]!.length,
      );
      const copy =
        m.value === undefined ? text.slice(p.offset, p.offset + p.length) : `${key}: ${m.value}`;
      return splice(text, p.offset + p.length, 0, `, ${copy}`);
    }
    case "rename": {
      const p = pick(properties, m.node);
      if (!p) return text;
      const k = p.children![0]!;
      return splice(text, k.offset, k.length, JSON.stringify(m.key));
    }
    case "remove": {
      const p = pick(properties, m.node);
      if (!p) return text;
      // Trailing commas are allowed, so removing the property text alone stays well formed.
      const end = p.offset + p.length;
      const comma = text.slice(end).match(/^\s*,/);
      return splice(text, p.offset, p.length + (comma ? comma[0].length : 0), "");
    }
    case "add": {
      const o = pick(objects, m.node);
      if (!o) return text;
      return splice(text, o.offset + 1, 0, `${JSON.stringify(m.key)}: ${m.value},`);
    }
    case "wrap": {
      const n = pick(values, m.node)!;
      const inner = text.slice(n.offset, n.offset + n.length);
      return splice(text, n.offset, n.length, m.object ? `{"x": ${inner}}` : `[${inner}]`);
    }
    case "move-key": {
      const p = pick(properties, m.node);
      const o = pick(objects, m.to);
      if (!p || !o || (o.offset >= p.offset && o.offset < p.offset + p.length)) return text;
      const prop = text.slice(p.offset, p.offset + p.length);
      // Insert first when the target comes later, so the removal offsets stay valid.
      if (o.offset > p.offset) {
        return splice(splice(text, o.offset + 1, 0, `${prop},`), p.offset, p.length, "");
      }
      return splice(splice(text, p.offset, p.length, ""), o.offset + 1, 0, `${prop},`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The checks.

/** What a case came to, for the figures. */
export interface CaseOutcome {
  accepted: boolean;
  elapsedMs: number;
  /** The problems of a rejected case. */
  problems: readonly ConfigProblem[];
}

/** Runs `fn`, failing the case on anything thrown that is not a ConfigError. */
function onlyConfigErrors<T>(what: string, fn: () => T): T | ConfigError {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    const e = err as Error;
    assert.fail(`${what} crashed with ${e?.name}: ${e?.message}\n${e?.stack ?? ""}`);
  }
}

/** Problems whose JSON path may be empty: syntax errors and a root that is not an object. */
const WHOLE_FILE = /^(syntax error|the file is empty|expected an object)/;

/** Asserts that every problem names `file`, a line:column inside `text`, and a JSON path. */
export function assertLocated(
  problems: readonly ConfigProblem[],
  text: string,
  file: string,
): void {
  assert.ok(problems.length > 0, "a rejection carries at least one problem");
  const lines = text.split("\n");
  for (const p of problems) {
    const where = JSON.stringify(p);
    assert.equal(p.file, file, `problem names the file: ${where}`);
    assert.ok(
      Number.isInteger(p.line) && p.line! >= 1 && p.line! <= lines.length,
      `line: ${where}`,
    );
    const lineLength = lines[p.line! - 1]!.length;
    assert.ok(
      Number.isInteger(p.column) && p.column! >= 1 && p.column! <= lineLength + 1,
      `column within line ${p.line} (length ${lineLength}): ${where}`,
    );
    assert.equal(typeof p.path, "string");
    assert.ok(p.path !== "" || WHOLE_FILE.test(p.message), `problem has a JSON path: ${where}`);
    assert.ok(p.message.length > 0, `problem has a message: ${where}`);
  }
}

/**
 * Checks one static config text through validateConfigText, parseStaticConfig and
 * buildEffectiveConfig: no crash, a located rejection, agreement between validation and loading.
 */
export function checkStaticText(text: string, file = "fuzz.jsonc"): CaseOutcome {
  const started = performance.now();
  // One analysis per case: loading reports exactly what validation reports (they share it).
  const loaded = onlyConfigErrors("parseStaticConfig", () => parseStaticConfig(text, file));
  let problems: readonly ConfigProblem[] = [];
  if (loaded instanceof ConfigError) {
    problems = loaded.problems;
    assertLocated(problems, text, file);
  } else {
    assert.deepEqual(validateConfigText(text, file), [], "loading passed, validation failed");
    const merged = onlyConfigErrors("buildEffectiveConfig", () => buildEffectiveConfig(loaded, {}));
    assert.ok(
      !(merged instanceof ConfigError),
      `valid config has invalid static groups: ${merged}`,
    );
  }
  const elapsedMs = performance.now() - started;
  assert.ok(elapsedMs < CASE_BOUND_MS, `case took ${Math.round(elapsedMs)} ms`);
  return { accepted: problems.length === 0, elapsedMs, problems };
}

/**
 * Checks one dynamic groups text against a valid static config through parseDynamicGroups,
 * validateGroupsText and buildEffectiveConfig.
 */
export function checkGroupsText(
  config: ServerConfig,
  text: string,
  file = "groups.jsonc",
): CaseOutcome {
  const started = performance.now();
  const problems = onlyConfigErrors("validateGroupsText", () =>
    validateGroupsText(config, text, file),
  );
  assert.ok(Array.isArray(problems), "validateGroupsText returns problems, never throws");
  const dynamic = onlyConfigErrors("parseDynamicGroups", () => parseDynamicGroups(text, file));
  if (!(dynamic instanceof ConfigError)) {
    const merged = onlyConfigErrors("buildEffectiveConfig", () =>
      buildEffectiveConfig(config, dynamic, { groupsFile: file, groupsText: text }),
    );
    if (problems.length === 0) {
      assert.ok(!(merged instanceof ConfigError), `validation passed, merging failed: ${merged}`);
    } else {
      assert.ok(merged instanceof ConfigError, "validation failed, merging passed");
    }
  } else {
    assert.ok(problems.length > 0, "parsing failed, validation passed");
  }
  if (problems.length > 0) assertLocated(problems, text.trim() === "" ? "{}" : text, file);
  const elapsedMs = performance.now() - started;
  assert.ok(elapsedMs < CASE_BOUND_MS, `case took ${Math.round(elapsedMs)} ms`);
  return { accepted: problems.length === 0, elapsedMs, problems };
}

/** Running figures of a fuzz property. */
export class FuzzTally {
  cases = 0;
  accepted = 0;
  rejected = 0;
  maxMs = 0;
  totalMs = 0;

  /** Counts one outcome. */
  add(o: CaseOutcome): void {
    this.cases++;
    if (o.accepted) this.accepted++;
    else this.rejected++;
    this.maxMs = Math.max(this.maxMs, o.elapsedMs);
    this.totalMs += o.elapsedMs;
  }

  /** One line for the test's diagnostics. */
  summary(): string {
    const mean = this.cases > 0 ? this.totalMs / this.cases : 0;
    return `${this.cases} cases: ${this.accepted} accepted, ${this.rejected} rejected; per case mean ${mean.toFixed(2)} ms, max ${this.maxMs.toFixed(1)} ms`;
  }
}

/** A way to mutate seed files: one mutation's arbitrary, how to apply it, how many per case. */
export interface Mutator<M> {
  mutation: fc.Arbitrary<M>;
  apply: (text: string, m: M) => string;
  maxMutations: number;
}

/** Byte-level mutations, 1–4 per case. */
export const BYTE_MUTATOR: Mutator<ByteMutation> = {
  mutation: byteMutation,
  apply: applyByteMutation,
  maxMutations: 4,
};

/** Tree-level mutations, 1–3 per case. */
export const TREE_MUTATOR: Mutator<TreeMutation> = {
  mutation: treeMutation,
  apply: applyTreeMutation,
  maxMutations: 3,
};

/**
 * Fuzzes the static config seeds or the groups file seeds with `mutator`: `runs` cases (or
 * `NSTANCE_FUZZ_RUNS`), each checked through the real loader. Both outcomes, accepted and
 * rejected, must occur for the run to mean anything. Returns the figures.
 */
export function fuzzConfigFiles<M>(
  which: "static" | "groups",
  mutator: Mutator<M>,
  runs: number,
): FuzzTally {
  const tally = new FuzzTally();
  const seeds: SeedFile[] = which === "static" ? staticSeeds() : groupsSeeds();
  const check = (s: SeedFile, text: string): CaseOutcome =>
    which === "static" ? checkStaticText(text) : checkGroupsText((s as GroupsSeed).config, text);
  fc.assert(
    fc.property(
      seedIndex(seeds, which === "static" ? isValidStatic : isValidGroups),
      fc.array(mutator.mutation, { minLength: 1, maxLength: mutator.maxMutations }),
      (seed, mutations) => {
        const s = seeds[seed]!;
        tally.add(check(s, mutations.reduce(mutator.apply, s.text)));
      },
    ),
    fuzzParameters(runs),
  );
  assert.ok(tally.rejected > 0 && tally.accepted > 0, tally.summary());
  return tally;
}
