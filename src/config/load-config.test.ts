// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parseDurationMs } from "../shared/duration.js";
import { ConfigError } from "../shared/errors.js";
import {
  DEFAULT_BIND,
  DEFAULT_GARBAGE_COLLECTION,
  DEFAULT_LEADER_ELECTION,
  DEFAULT_REQUEST_TIMEOUT,
} from "./config-schema.js";
import {
  buildEffectiveConfig,
  parseDynamicGroups,
  parseStaticConfig,
  validateConfigText,
  validateGroupsText,
} from "./load-config.js";

const example = (name: string): string =>
  readFileSync(new URL(`../../examples/${name}`, import.meta.url), "utf8");

/** A small valid config; `patch` edits its JSON text. */
function minimal(extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    cluster: { id: "c1", secrets: { provider: "memory" } },
    shard: { id: "s1", infra: { provider: "fake" }, subnet_pools: { a: ["sub-a"], b: ["sub-b"] } },
    defaults: {
      args: { image: "img-1", net: { mtu: 1500, tags: ["x"] } },
      vars: { env: "dev", tier: "d" },
    },
    templates: {
      web: {
        kind: "web",
        arch: "amd64",
        subnet_pool: "a",
        args: { net: { mtu: 9000 } },
        vars: { tier: "t" },
      },
      api: { kind: "api", arch: "arm64" },
    },
    groups: { default: { web: { template: "web", size: 2, vars: { g: "1" } } } },
    ...extra,
  });
}

describe("examples", () => {
  for (const name of ["local.jsonc", "aws.jsonc"]) {
    it(`${name} validates and compiles`, () => {
      assert.deepEqual(validateConfigText(example(name), name), []);
      parseStaticConfig(example(name), name);
    });
  }

  it("groups.jsonc merges over local.jsonc", () => {
    const config = parseStaticConfig(example("local.jsonc"), "local.jsonc");
    const text = example("groups.jsonc");
    assert.deepEqual(validateGroupsText(config, text, "groups.jsonc"), []);
    const eff = buildEffectiveConfig(config, parseDynamicGroups(text, "groups.jsonc"));
    assert.deepEqual(
      eff.groups.map((g) => [g.tenant, g.key, g.size, g.isStatic, g.overridden]),
      [
        ["default", "batch", 1, false, false],
        ["default", "web", 2, true, true],
      ],
    );
    assert.equal(config.shard.infra.provider, "local");
    assert.equal(config.groups.default?.web?.size, 3);
  });
});

describe("parseStaticConfig", () => {
  it("fills every default and compiles durations to milliseconds", () => {
    const c = parseStaticConfig(minimal(), "m.jsonc");
    assert.deepEqual(c.server.bind, DEFAULT_BIND);
    assert.deepEqual(c.server.advertise, {
      health: ":8990",
      election: ":8991",
      registration: ":8992",
      operator: ":8993",
      agent: ":8994",
    });
    assert.equal(c.shard.requestTimeoutMs, parseDurationMs(DEFAULT_REQUEST_TIMEOUT));
    assert.equal(c.shard.requestTimeoutMs, 30_000);
    assert.equal(c.shard.createRateLimitMs, 0);
    assert.equal(c.shard.healthCheckIntervalMs, 60_000);
    assert.equal(c.shard.defaultDrainTimeoutMs, 300_000);
    assert.equal(c.shard.shutdownTimeoutMs, 10_000);
    assert.deepEqual(c.shard.garbageCollection, {
      intervalMs: parseDurationMs(DEFAULT_GARBAGE_COLLECTION.interval),
      registrationTimeoutMs: 300_000,
      deletedRecordRetentionMs: 1_800_000,
    });
    assert.deepEqual(c.shard.expiry, {});
    const le = {
      enabled: true,
      frequentIntervalMs: parseDurationMs(DEFAULT_LEADER_ELECTION.frequent_interval),
      infrequentIntervalMs: 30_000,
      leaderTimeoutMs: 6_000,
    };
    assert.deepEqual(c.shard.leaderElection, le);
    assert.deepEqual(c.cluster.leaderElection, le);
    assert.deepEqual(c.cluster.secrets, { provider: "memory", prefix: "secret/" });
    assert.deepEqual(c.shard.dynamicSubnetPools, []);
    assert.deepEqual(c.loadBalancers, {});
    assert.equal(c.templates.api?.size, 1);
    assert.deepEqual(c.templates.api?.files, {});
    assert.equal(c.groups.default?.web?.drainTimeoutMs, undefined);
    assert.deepEqual(c.groups.default?.web?.loadBalancers, []);
  });

  it("advertise defaults follow the bind ports; explicit advertise addresses are kept", () => {
    const c = parseStaticConfig(
      minimal({
        server: { bind: { agent: "127.0.0.1:9100" }, advertise: { operator: "10.0.0.5:8993" } },
      }),
      "m.jsonc",
    );
    assert.equal(c.server.bind.agent, "127.0.0.1:9100");
    assert.equal(c.server.advertise.agent, ":9100");
    assert.equal(c.server.advertise.operator, "10.0.0.5:8993");
  });

  it("expiry 0s means disabled, like an absent value", () => {
    const c = parseStaticConfig(
      minimal({
        shard: {
          id: "s1",
          infra: { provider: "fake" },
          subnet_pools: { a: ["sub-a"] },
          expiry: { eligible_age: "0s", forced_age: "504h", ondemand_age: "1h30m" },
        },
      }),
      "m.jsonc",
    );
    assert.deepEqual(c.shard.expiry, { forcedAgeMs: 504 * 3_600_000, ondemandAgeMs: 5_400_000 });
  });

  it("accepts comments, trailing commas and a $schema key", () => {
    const text = `// comment\n{\n  "$schema": "../schema/config.schema.json", /* block */\n${minimal().slice(1, -1)},\n}\n`;
    assert.equal(parseStaticConfig(text, "c.jsonc").cluster.id, "c1");
  });

  it("returns plain, frozen objects that share nothing with the input", () => {
    const c = parseStaticConfig(minimal(), "m.jsonc");
    assert.deepStrictEqual(c.defaults.args, { image: "img-1", net: { mtu: 1500, tags: ["x"] } });
    assert.ok(Object.isFrozen(c.defaults.args));
    assert.throws(() => {
      (c.shard as { id: string }).id = "x";
    }, TypeError);
  });

  it("throws one ConfigError listing every problem, located", () => {
    const text = minimal({
      templates: { web: { kind: "WEB", arch: "amd64", subnet_pool: "zz" } },
      groups: { default: { web: { template: "wbe", size: -1 } } },
    });
    let err: unknown;
    try {
      parseStaticConfig(text, "bad.jsonc");
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ConfigError);
    assert.equal(err.code, "invalid_argument");
    assert.deepEqual(err.problems.map((p) => p.path).sort(), [
      "groups.default.web.size",
      "groups.default.web.template",
      "templates.web.kind",
      "templates.web.subnet_pool",
    ]);
    for (const p of err.problems) {
      assert.equal(p.file, "bad.jsonc");
      assert.equal(p.line, 1); // minimal() is one line
      assert.ok((p.column ?? 0) > 1);
    }
    assert.match(err.message, /^4 configuration problems:\n {2}bad\.jsonc:1:\d+: /);
  });

  it("rejects each provider's missing requirements", () => {
    const aws = minimal({
      shard: {
        id: "s1",
        infra: { provider: "aws", region: "us-west-2" },
        subnet_pools: { a: ["sub-a"] },
      },
    });
    assert.deepEqual(
      validateConfigText(aws, "a.jsonc").map((p) => `${p.path}: ${p.message}`),
      [
        'shard.infra.zone: is required when provider is "aws"',
        'groups.default.web.instance_type: is required for provider "aws": set instance_type here or on template "web"',
      ],
    );
    const proxmox = minimal({
      shard: { id: "s1", infra: { provider: "proxmox" }, subnet_pools: { a: ["vmbr0"] } },
    });
    assert.deepEqual(
      validateConfigText(proxmox, "p.jsonc").map((p) => p.message),
      [
        'StoragePool is required in args for provider "proxmox"',
        'exactly one of TemplateVMID and TemplateName is required in args for provider "proxmox"',
      ],
    );
  });

  it("checks conditional file and userdata rules", () => {
    const text = minimal({
      templates: {
        web: {
          kind: "web",
          arch: "amd64",
          subnet_pool: "a",
          files: {
            "a.env": { kind: "env", template: "X=1" },
            "b.txt": { kind: "storage", source: "x/{{ .Instance.ID }}", template: "t" },
            ".hidden": { kind: "string", template: "x" },
          },
          userdata: { encoding: "gzip", content: "https://example.com/u.gz" },
        },
      },
    });
    assert.deepEqual(
      validateConfigText(text, "f.jsonc")
        .map((p) => `${p.path}: ${p.message}`)
        .sort(),
      [
        "templates.web.files[\".hidden\"]: invalid file name \".hidden\": must be a plain file name (letters, digits, '.', '_', '-'; no path, no leading dot)",
        'templates.web.files["a.env"].template: expected an object, got a string when kind is "env"',
        'templates.web.files["b.txt"].template: is not allowed when kind is "storage"',
        'templates.web.userdata.source: must be "url" (got "inline") when encoding is "gzip"',
      ].sort(),
    );
  });

  it("reports bind conflicts across wildcard and specific hosts, but not for port 0", () => {
    const conflict = minimal({
      server: { bind: { health: "0.0.0.0:7000", agent: "127.0.0.1:7000" } },
    });
    assert.deepEqual(
      validateConfigText(conflict, "b.jsonc").map((p) => p.path),
      ["server.bind.agent"],
    );
    const zeros = minimal({
      server: {
        bind: {
          health: "127.0.0.1:0",
          election: "127.0.0.1:0",
          registration: "127.0.0.1:0",
          operator: "127.0.0.1:0",
          agent: "127.0.0.1:0",
        },
      },
    });
    assert.deepEqual(validateConfigText(zeros, "z.jsonc"), []);
  });
});

describe("parseDynamicGroups", () => {
  it("treats empty text as no groups", () => {
    assert.deepEqual(parseDynamicGroups("", "g.jsonc"), {});
    assert.deepEqual(parseDynamicGroups("{}", "g.jsonc"), {});
  });

  it("applies no defaults: absent fields stay absent", () => {
    const d = parseDynamicGroups('{"default": {"web": {"size": 4}}}', "g.jsonc");
    assert.deepStrictEqual(d, { default: { web: { size: 4 } } });
  });

  it("throws located problems with the groups. path prefix", () => {
    assert.throws(
      () => parseDynamicGroups('{\n  "default": {\n    "web": { "size": "x" }\n  }\n}', "g.jsonc"),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.deepEqual(err.problems, [
          {
            path: "groups.default.web.size",
            message: "expected an integer, got a string",
            file: "g.jsonc",
            line: 3,
            column: 22,
          },
        ]);
        return true;
      },
    );
  });
});

describe("buildEffectiveConfig", () => {
  const config = parseStaticConfig(minimal(), "m.jsonc");

  it("merges args deeply and vars flat: defaults → template → group", () => {
    const [web] = buildEffectiveConfig(config, {}).groups;
    assert.deepStrictEqual(web!.args, { image: "img-1", net: { mtu: 9000, tags: ["x"] } });
    assert.deepStrictEqual(web!.vars, { env: "dev", tier: "t", g: "1" });
    assert.equal(web!.subnetPool, "a");
    assert.equal(web!.kind, "web");
    assert.equal(web!.drainTimeoutMs, 300_000);
    assert.match(web!.runtimeHash, /^sha256:[0-9a-f]{64}$/);
    assert.match(web!.infraHash, /^sha256:[0-9a-f]{64}$/);
  });

  it("takes only size, instance_type and vars (per key) from a dynamic override", () => {
    const eff = buildEffectiveConfig(config, {
      default: {
        web: { size: 7, instance_type: "big", vars: { g: "2", extra: "y" }, template: "web" },
      },
    });
    const web = eff.groups[0]!;
    assert.equal(web.size, 7);
    assert.equal(web.instanceType, "big");
    assert.deepStrictEqual(web.vars, { env: "dev", tier: "t", g: "2", extra: "y" });
    assert.equal(web.template, "web");
    assert.ok(web.isStatic && web.overridden);
  });

  it("rejects each restricted field that differs from the static group", () => {
    const dynamic = {
      default: {
        web: {
          template: "api",
          subnet_pool: "b",
          args: { image: "other" },
          drain_timeout: "1s",
          load_balancers: ["x"],
        },
      },
    };
    assert.throws(
      () => buildEffectiveConfig(config, dynamic, { groupsFile: "g.jsonc" }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.deepEqual(
          err.problems.map((p) => p.path),
          ["template", "subnet_pool", "args", "drain_timeout", "load_balancers"].map(
            (f) => `groups.default.web.${f}`,
          ),
        );
        for (const p of err.problems) {
          assert.match(p.message, /is restricted for static groups/);
          assert.equal(p.file, "g.jsonc");
        }
        return true;
      },
    );
  });

  it("accepts restricted fields equal to the static (effective) value", () => {
    const eff = buildEffectiveConfig(config, {
      default: {
        web: {
          template: "web",
          subnet_pool: "a",
          args: {},
          drain_timeout: "5m",
          load_balancers: [],
        },
      },
    });
    assert.equal(eff.groups.length, 1);
  });

  it("uses dynamic-only groups as written, with the template's pool and size 0 by default", () => {
    const eff = buildEffectiveConfig(config, { team: { batch: { template: "web" } } });
    const batch = eff.groups.find((g) => g.key === "batch")!;
    assert.equal(batch.isStatic, false);
    assert.equal(batch.size, 0);
    assert.equal(batch.subnetPool, "a");
  });

  it("locates dynamic group problems in the groups text", () => {
    const text = '{\n  "team": {\n    "batch": { "template": "api" }\n  }\n}';
    assert.throws(
      () =>
        buildEffectiveConfig(config, parseDynamicGroups(text, "g.jsonc"), {
          groupsFile: "g.jsonc",
          groupsText: text,
        }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.deepEqual(err.problems, [
          {
            path: "groups.team.batch.subnet_pool",
            message: 'no subnet pool: set subnet_pool here or on template "api"',
            file: "g.jsonc",
            line: 3,
            column: 14,
          },
        ]);
        return true;
      },
    );
  });

  it("restricts dynamic groups to dynamic_subnet_pools when set", () => {
    const restricted = parseStaticConfig(
      minimal({
        shard: {
          id: "s1",
          infra: { provider: "fake" },
          subnet_pools: { a: ["sub-a"], b: ["sub-b"] },
          dynamic_subnet_pools: ["b"],
        },
      }),
      "m.jsonc",
    );
    assert.throws(
      () => buildEffectiveConfig(restricted, { t: { x: { template: "web" } } }),
      /not allowed for dynamic groups/,
    );
    assert.equal(
      buildEffectiveConfig(restricted, { t: { x: { template: "web", subnet_pool: "b" } } }).groups
        .length,
      2,
    );
  });
});
