// SPDX-License-Identifier: Apache-2.0
// Config fuzzing, tree level: the examples and fixtures with values of the wrong type, huge and
// negative numbers, hostile and duplicated keys, unicode, moved and removed properties, through
// the real loader. The file stays well-formed JSONC, so these cases reach the schema, the
// cross-reference checks, compilation and the merge of dynamic groups.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  applyGroupDelete,
  applyGroupUpsert,
  type GroupUpsert,
  serializeDynamicGroups,
} from "../../src/config/group-ops.js";
import { buildEffectiveConfig, parseDynamicGroups } from "../../src/config/load-config.js";
import type { DynamicGroups } from "../../src/config/server-config.js";
import { NstanceError } from "../../src/shared/errors.js";
import {
  applyTreeMutation,
  checkGroupsText,
  checkStaticText,
  fuzzConfigFiles,
  groupsSeeds,
  jsonText,
  staticSeeds,
  TREE_MUTATOR,
} from "./config-mutations.js";
import { fuzzParameters, fuzzRuns } from "./fuzz-runs.js";

const STATIC_RUNS = 3_500;
const GROUPS_RUNS = 2_000;
const UPSERT_RUNS = 1_000;

/** JSON text to a value; texts JSON.parse refuses (deep, `1e309`) stay strings. */
function parseLoosely(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

describe("config loader under tree-level mutation", () => {
  const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();

  it(`static configs (${fuzzRuns(STATIC_RUNS)} cases)`, (t) => {
    t.diagnostic(fuzzConfigFiles("static", TREE_MUTATOR, STATIC_RUNS).summary());
  });

  it(`dynamic groups files (${fuzzRuns(GROUPS_RUNS)} cases)`, (t) => {
    t.diagnostic(fuzzConfigFiles("groups", TREE_MUTATOR, GROUPS_RUNS).summary());
  });

  it(`operator group edits (${fuzzRuns(UPSERT_RUNS)} cases): refused with a typed error, or a loadable file`, (t) => {
    // Starting points the server could hold: groups files that load cleanly, and none at all.
    const loadable = groupsSeeds().filter((s) => {
      try {
        buildEffectiveConfig(s.config, parseDynamicGroups(s.text, s.name));
        return true;
      } catch {
        return false;
      }
    });
    const seeds = [...loadable, ...loadable.map((s) => ({ ...s, name: "empty", text: "{}" }))];
    assert.ok(loadable.length > 0);
    const hostile = jsonText.map(parseLoosely);
    const name = fc.oneof(
      { weight: 4, arbitrary: fc.constantFrom("default", "web", "batch", "other", "new-group") },
      { weight: 2, arbitrary: fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/) },
      { weight: 1, arbitrary: fc.constantFrom("constructor", "__proto__", "toString", "", "A") },
      { weight: 1, arbitrary: fc.string({ maxLength: 70 }) },
    );
    const fields = (hostility: number) => {
      const field = <T>(good: fc.Arbitrary<T>) =>
        hostility === 0 ? good : fc.oneof({ weight: 3, arbitrary: good }, hostile);
      return fc.record(
        {
          template: field(fc.constantFrom("web", "api", "nope", "constructor")),
          size: field(fc.integer({ min: -1, max: 20 })),
          instance_type: field(fc.constantFrom("t3.small", "", "x".repeat(300))),
          subnet_pool: field(fc.constantFrom("default", "spare", "loopback", "nope")),
          vars: field(fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }))),
          args: field(fc.jsonValue({ maxDepth: 2 })),
          drain_timeout: field(fc.constantFrom("0s", "5s", "1h", "-1s", "21d", "")),
          load_balancers: field(fc.constantFrom([], ["front"], ["nope"])),
        },
        { requiredKeys: [] },
      );
    };
    // Plausible edits get accepted; well-typed ones reach the merge rules; hostile ones the schema.
    const plausible = fc.record(
      {
        template: fc.constant("web"),
        size: fc.nat({ max: 10 }),
        vars: fc.dictionary(fc.stringMatching(/^[a-z_]{1,8}$/), fc.string({ maxLength: 8 })),
      },
      { requiredKeys: [] },
    );
    const upsert = fc.oneof(
      { weight: 3, arbitrary: plausible },
      { weight: 2, arbitrary: fields(0) },
      { weight: 2, arbitrary: fields(1) },
    );
    let accepted = 0;
    let refused = 0;
    fc.assert(
      fc.property(
        fc.nat({ max: seeds.length - 1 }),
        name,
        name,
        upsert,
        fc.boolean(),
        (seed, tenant, key, update, remove) => {
          const s = seeds[seed]!;
          const current = parseDynamicGroups(s.text, s.name);
          let next: DynamicGroups;
          try {
            next = remove
              ? applyGroupDelete(current, s.config, tenant, key)
              : applyGroupUpsert(current, s.config, tenant, key, update as GroupUpsert);
          } catch (err) {
            assert.ok(err instanceof NstanceError, `untyped error: ${String(err)}`);
            refused++;
            return;
          }
          accepted++;
          // What the server would write must load again, with every group resolved.
          const text = serializeDynamicGroups(next);
          buildEffectiveConfig(s.config, parseDynamicGroups(text, "groups.jsonc"));
        },
      ),
      fuzzParameters(UPSERT_RUNS),
    );
    t.diagnostic(`${accepted} edits accepted, ${refused} refused`);
    assert.ok(accepted > 0 && refused > 0);
  });

  it("prototype keys in every object are refused or kept as plain data", () => {
    const [example] = staticSeeds();
    for (const key of ["__proto__", "constructor", "prototype"]) {
      for (let node = 0; node < 1; node += 0.01) {
        const text = applyTreeMutation(example!.text, {
          op: "add",
          node,
          key,
          value: '{"polluted": true}',
        });
        checkStaticText(text);
      }
    }
    // Found by this fuzzer: `constructor` is a valid group name, and a lookup by name found
    // Object's constructor, so a dynamic group of that name crashed the merge.
    const [groups] = groupsSeeds();
    const named = (body: string) => `{"default": {"constructor": ${body}}}`;
    assert.equal(checkGroupsText(groups!.config, named('{"template": "web"}')).accepted, true);
    assert.equal(checkGroupsText(groups!.config, named('{"size": 1}')).accepted, false);
    assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), prototypeKeys);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});
