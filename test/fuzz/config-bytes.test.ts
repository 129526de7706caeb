// SPDX-License-Identifier: Apache-2.0
// Config fuzzing, byte level: the examples and fixtures with characters flipped, inserted and
// deleted, truncated, with pieces copied, deep nesting, a BOM or CRLF line ends, through the real
// loader. Never a crash (only ConfigError), never a hang, every rejection located.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  BYTE_MUTATOR,
  CASE_BOUND_MS,
  checkStaticText,
  fuzzConfigFiles,
  staticSeeds,
} from "./config-mutations.js";
import { fuzzRuns } from "./fuzz-runs.js";

const STATIC_RUNS = 3_000;
const GROUPS_RUNS = 1_500;

describe("config loader under byte-level mutation", () => {
  const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();

  it(`static configs (${fuzzRuns(STATIC_RUNS)} cases)`, (t) => {
    t.diagnostic(fuzzConfigFiles("static", BYTE_MUTATOR, STATIC_RUNS).summary());
  });

  it(`dynamic groups files (${fuzzRuns(GROUPS_RUNS)} cases)`, (t) => {
    t.diagnostic(fuzzConfigFiles("groups", BYTE_MUTATOR, GROUPS_RUNS).summary());
  });

  it("deep nesting anywhere is a located ConfigError, not a stack overflow", () => {
    const [example] = staticSeeds();
    for (const depth of [100, 1_000, 100_000]) {
      for (const [open, close] of [
        ["[", "]"],
        ['{"a":', "}"],
      ] as const) {
        for (const closed of [true, false]) {
          const deep = `${open.repeat(depth)}1${closed ? close.repeat(depth) : ""}`;
          const inArgs = example!.text.replace('"vars": {', `"vars": { "deep": ${deep},`);
          for (const text of [deep, inArgs]) {
            const o = checkStaticText(text);
            assert.equal(o.accepted, false, `depth ${depth} accepted`);
          }
        }
      }
    }
  });

  it("a megabyte-long unknown key is reported without quadratic work", () => {
    // Found by this fuzzer: the "did you mean" hint compared the key with every known key by edit
    // distance, quadratic in the key's length (seconds for a 50 kB key).
    const [example] = staticSeeds();
    const key = "k".repeat(1_000_000);
    const o = checkStaticText(example!.text.replace('"shard": {', `"shard": { "${key}": 1,`));
    assert.equal(o.accepted, false);
    assert.ok(o.elapsedMs < CASE_BOUND_MS, `took ${Math.round(o.elapsedMs)} ms`);
  });

  it("no mutation reached Object.prototype", () => {
    assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), prototypeKeys);
    assert.equal(({} as Record<string, unknown>).x, undefined);
  });
});
