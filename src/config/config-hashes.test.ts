// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { canonicalJson } from "./canonical-json.js";
import { infraHash, runtimeHash, sha256Hash } from "./config-hashes.js";
import { buildEffectiveConfig, parseStaticConfig } from "./load-config.js";
import type { EffectiveGroup } from "./server-config.js";

// biome-ignore lint/suspicious/noExplicitAny: test configs are edited freely through deep paths.
type Obj = Record<string, any>;

/** A static config whose template and group can be edited per test. */
function config(edit: (c: Obj) => void = () => {}): Obj {
  const c: Obj = {
    cluster: { id: "c1", secrets: { provider: "memory" } },
    shard: { id: "s1", infra: { provider: "fake" }, subnet_pools: { a: ["sub-a"], b: ["sub-b"] } },
    certificates: { srv: { kind: "server" } },
    defaults: { vars: { env: "dev" }, args: { image: "img" } },
    templates: {
      web: {
        kind: "web",
        arch: "amd64",
        subnet_pool: "a",
        instance_type: "small",
        vars: { port: "80" },
        args: { disk: { size: 10, type: "ssd" } },
        files: { "a.env": { kind: "env", template: { A: "1" } } },
        userdata: { content: "#!/bin/sh\n" },
      },
    },
    groups: { default: { web: { template: "web", size: 2 } } },
  };
  edit(c);
  return c;
}

function group(c: Obj): EffectiveGroup {
  const parsed = parseStaticConfig(JSON.stringify(c), "c.json");
  return buildEffectiveConfig(parsed, {}).groups[0]!;
}

/** Rebuilds an object with its keys in reverse order, at every level. */
function reversed(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reversed);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(
      Object.entries(v)
        .reverse()
        .map(([k, x]) => [k, reversed(x)]),
    );
  }
  return v;
}

describe("canonicalJson", () => {
  it("sorts keys at every level and keeps array order", () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [3, 1], c: null } }),
      '{"a":{"c":null,"d":[3,1]},"b":1}',
    );
  });

  it("drops undefined properties like JSON.stringify", () => {
    assert.equal(canonicalJson({ a: undefined, b: [undefined] }), '{"b":[null]}');
  });

  it("does not depend on key order (property)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        assert.equal(canonicalJson(reversed(v)), canonicalJson(v));
        assert.deepEqual(JSON.parse(canonicalJson(v)), JSON.parse(JSON.stringify(v)));
      }),
      { numRuns: 200 },
    );
  });
});

describe("group hashes", () => {
  const base = group(config());

  it("are sha256 of the canonical JSON of the documented fields", () => {
    assert.equal(base.runtimeHash, sha256Hash({ vars: base.vars, files: base.files }));
    assert.equal(
      base.infraHash,
      sha256Hash({
        args: base.args,
        instance_type: "small",
        subnet_pool: "a",
        userdata: { source: "inline", encoding: "plain", content: "#!/bin/sh\n" },
        kind: "web",
        arch: "amd64",
      }),
    );
    assert.equal(base.runtimeHash, runtimeHash({ vars: base.vars, files: base.files }));
  });

  it("are stable across key order in the config file", () => {
    const again = group(reversed(config()) as Obj);
    assert.equal(again.runtimeHash, base.runtimeHash);
    assert.equal(again.infraHash, base.infraHash);
  });

  it("omit absent userdata rather than hashing null", () => {
    const noUserdata = group(config((c) => delete c.templates.web.userdata));
    assert.equal(
      noUserdata.infraHash,
      infraHash({
        args: noUserdata.args,
        instanceType: "small",
        subnetPool: "a",
        kind: "web",
        arch: "amd64",
      }),
    );
    assert.notEqual(noUserdata.infraHash, base.infraHash);
  });

  const cases: Array<{
    name: string;
    edit: (c: Obj) => void;
    runtime: boolean;
    infra: boolean;
  }> = [
    {
      name: "group vars",
      edit: (c) => (c.groups.default.web.vars = { x: "1" }),
      runtime: true,
      infra: false,
    },
    {
      name: "template vars",
      edit: (c) => (c.templates.web.vars.port = "81"),
      runtime: true,
      infra: false,
    },
    {
      name: "default vars",
      edit: (c) => (c.defaults.vars.env = "prod"),
      runtime: true,
      infra: false,
    },
    {
      name: "template files",
      edit: (c) => (c.templates.web.files["b.txt"] = { kind: "string", template: "x" }),
      runtime: true,
      infra: false,
    },
    {
      name: "group args",
      edit: (c) => (c.groups.default.web.args = { disk: { size: 20 } }),
      runtime: false,
      infra: true,
    },
    {
      name: "default args",
      edit: (c) => (c.defaults.args.image = "img-2"),
      runtime: false,
      infra: true,
    },
    {
      name: "group instance_type",
      edit: (c) => (c.groups.default.web.instance_type = "large"),
      runtime: false,
      infra: true,
    },
    {
      name: "template instance_type",
      edit: (c) => (c.templates.web.instance_type = "medium"),
      runtime: false,
      infra: true,
    },
    {
      name: "group subnet_pool",
      edit: (c) => (c.groups.default.web.subnet_pool = "b"),
      runtime: false,
      infra: true,
    },
    {
      name: "userdata",
      edit: (c) => (c.templates.web.userdata.content = "#!/bin/bash\n"),
      runtime: false,
      infra: true,
    },
    {
      name: "defaults userdata (shadowed by the template's)",
      edit: (c) => (c.defaults.userdata = { content: "ignored" }),
      runtime: false,
      infra: false,
    },
    { name: "kind", edit: (c) => (c.templates.web.kind = "www"), runtime: false, infra: true },
    { name: "arch", edit: (c) => (c.templates.web.arch = "arm64"), runtime: false, infra: true },
    { name: "size", edit: (c) => (c.groups.default.web.size = 9), runtime: false, infra: false },
    {
      name: "drain_timeout",
      edit: (c) => (c.groups.default.web.drain_timeout = "1m"),
      runtime: false,
      infra: false,
    },
  ];
  for (const tc of cases) {
    it(`${tc.name}: runtime ${tc.runtime ? "changes" : "stays"}, infra ${tc.infra ? "changes" : "stays"}`, () => {
      const g = group(config(tc.edit));
      assert.equal(g.runtimeHash !== base.runtimeHash, tc.runtime, "runtime hash");
      assert.equal(g.infraHash !== base.infraHash, tc.infra, "infra hash");
    });
  }
});
