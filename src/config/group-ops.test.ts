// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, NstanceError } from "../shared/errors.js";
import { applyGroupDelete, applyGroupUpsert, serializeDynamicGroups } from "./group-ops.js";
import { buildEffectiveConfig, parseDynamicGroups, parseStaticConfig } from "./load-config.js";
import type { DynamicGroups } from "./server-config.js";

const config = parseStaticConfig(
  JSON.stringify({
    cluster: { id: "c1", secrets: { provider: "memory" } },
    shard: {
      id: "s1",
      infra: { provider: "fake" },
      subnet_pools: { main: ["sub-1"], dyn: ["sub-2"], other: ["sub-3"] },
      dynamic_subnet_pools: ["dyn", "main"],
    },
    load_balancers: { lb: { provider: "fake" } },
    templates: {
      web: { kind: "web", arch: "amd64", subnet_pool: "main" },
      bare: { kind: "bar", arch: "amd64" },
    },
    groups: { default: { web: { template: "web", size: 2, vars: { a: "1" } } } },
  }),
  "config.jsonc",
);

/** Runs `fn`, expecting a ConfigError; returns its problems as `path: message`. */
function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.code, "invalid_argument");
    return err.problems.map((p) => `${p.path}: ${p.message}`);
  }
  assert.fail("expected a ConfigError");
}

describe("applyGroupUpsert", () => {
  it("stores only size, instance_type and vars for a static group, merging vars per key", () => {
    let d: DynamicGroups = {};
    d = applyGroupUpsert(d, config, "default", "web", {
      size: 5,
      vars: { b: "2" },
      template: "web",
    });
    d = applyGroupUpsert(d, config, "default", "web", { instance_type: "big", vars: { c: "3" } });
    assert.deepStrictEqual(d, {
      default: { web: { size: 5, instance_type: "big", vars: { b: "2", c: "3" } } },
    });
    const web = buildEffectiveConfig(config, d).groups.find((g) => g.key === "web")!;
    assert.deepStrictEqual(web.vars, { a: "1", b: "2", c: "3" });
    assert.equal(web.size, 5);
  });

  it("rejects restricted fields that differ on a static group", () => {
    assert.deepEqual(
      problemsOf(() =>
        applyGroupUpsert({}, config, "default", "web", { template: "bare", drain_timeout: "0s" }),
      ),
      [
        'groups.default.web.template: "template" is restricted for static groups and cannot be changed here (static value: "web"); only size, instance_type and vars can be overridden',
        'groups.default.web.drain_timeout: "drain_timeout" is restricted for static groups and cannot be changed here (static value: "5m"); only size, instance_type and vars can be overridden',
      ],
    );
  });

  it("requires a template for a new group and pins the template's subnet pool", () => {
    assert.deepEqual(
      problemsOf(() => applyGroupUpsert({}, config, "team", "batch", { size: 1 })),
      ["groups.team.batch.template: is required for groups that are not in the static config"],
    );
    const d = applyGroupUpsert({}, config, "team", "batch", { template: "web", size: 1 });
    assert.deepStrictEqual(d, {
      team: { batch: { template: "web", size: 1, subnet_pool: "main" } },
    });
  });

  it("names the problem when a new group's template has no subnet pool", () => {
    assert.deepEqual(
      problemsOf(() => applyGroupUpsert({}, config, "team", "x", { template: "bare" })),
      ['groups.team.x.subnet_pool: no subnet pool: set subnet_pool here or on template "bare"'],
    );
    assert.deepEqual(
      problemsOf(() =>
        applyGroupUpsert({}, config, "team", "x", { template: "bare", subnet_pool: "other" }),
      ),
      [
        'groups.team.x.subnet_pool: subnet pool "other" is not allowed for dynamic groups (shard.dynamic_subnet_pools: dyn, main)',
      ],
    );
    const d = applyGroupUpsert({}, config, "team", "x", {
      template: "bare",
      subnet_pool: "dyn",
      load_balancers: ["lb"],
    });
    assert.equal(
      buildEffectiveConfig(config, d).groups.find((g) => g.key === "x")?.subnetPool,
      "dyn",
    );
  });

  it("updates an existing dynamic group: fields replace, vars merge, args deep-merge", () => {
    let d = applyGroupUpsert({}, config, "team", "batch", {
      template: "web",
      size: 1,
      vars: { a: "1" },
      args: { disk: { size: 10 } },
    });
    d = applyGroupUpsert(d, config, "team", "batch", {
      size: 3,
      vars: { b: "2" },
      args: { disk: { type: "ssd" } },
    });
    assert.deepStrictEqual(d.team?.batch, {
      template: "web",
      size: 3,
      subnet_pool: "main",
      vars: { a: "1", b: "2" },
      args: { disk: { size: 10, type: "ssd" } },
    });
  });

  it("validates names and field types", () => {
    assert.deepEqual(
      problemsOf(() => applyGroupUpsert({}, config, "Team", "b--x", { template: "web", size: -2 })),
      [
        'groups.Team: invalid tenant name "Team": must contain only lowercase letters, digits and hyphens, and start and end with a letter or digit',
        'groups.Team.b--x: invalid group name "b--x": must not contain "--"',
        "groups.Team.b--x.size: must be at least 0 (got -2)",
      ],
    );
    assert.deepEqual(
      problemsOf(() =>
        applyGroupUpsert({}, config, "team", "y", { template: "web", drain_timeout: "3d" }),
      ),
      [
        'groups.team.y.drain_timeout: invalid duration "3d": use Go syntax such as "90s", "1h30m" or "504h" ("d" is not a unit)',
      ],
    );
  });

  it("does not modify its input", () => {
    const before: DynamicGroups = { team: { a: { template: "web", size: 1 } } };
    const copy = structuredClone(before);
    applyGroupUpsert(before, config, "team", "a", { size: 2 });
    applyGroupUpsert(before, config, "team", "b", { template: "web" });
    assert.deepStrictEqual(before, copy);
  });
});

describe("applyGroupDelete", () => {
  it("removes a dynamic group and drops an empty tenant", () => {
    const d = applyGroupUpsert({}, config, "team", "batch", { template: "web" });
    assert.deepStrictEqual(applyGroupDelete(d, config, "team", "batch"), {});
  });

  it("removes only the override of a static group", () => {
    const d = applyGroupUpsert({}, config, "default", "web", { size: 9 });
    const after = applyGroupDelete(d, config, "default", "web");
    assert.deepStrictEqual(after, {});
    assert.equal(buildEffectiveConfig(config, after).groups[0]?.size, 2);
  });

  it("refuses a static group without override and reports unknown groups", () => {
    assert.throws(
      () => applyGroupDelete({}, config, "default", "web"),
      (err: unknown) =>
        err instanceof NstanceError &&
        err.code === "invalid_argument" &&
        /static config/.test(err.message),
    );
    assert.throws(
      () => applyGroupDelete({}, config, "team", "nope"),
      (err: unknown) => err instanceof NstanceError && err.code === "not_found",
    );
  });
});

describe("serializeDynamicGroups", () => {
  it("sorts tenants and groups, orders fields, and round-trips through parseDynamicGroups", () => {
    const d: DynamicGroups = {
      zeta: { b: { size: 1, template: "web" }, a: { vars: { x: "1" }, template: "web", size: 2 } },
      alpha: { web: { size: 3 } },
    };
    const text = serializeDynamicGroups(d);
    assert.equal(
      text,
      `{
  "alpha": {
    "web": {
      "size": 3
    }
  },
  "zeta": {
    "a": {
      "template": "web",
      "size": 2,
      "vars": {
        "x": "1"
      }
    },
    "b": {
      "template": "web",
      "size": 1
    }
  }
}
`,
    );
    assert.deepStrictEqual(parseDynamicGroups(text, "g.json"), JSON.parse(text));
  });

  it("serialises an empty file as {}", () => {
    assert.equal(serializeDynamicGroups({}), "{}\n");
  });
});
