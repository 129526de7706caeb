// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { envNameFor, parseServerArgs } from "./server-settings.js";

const base = ["--id", "s1", "--shard", "us-west-2a", "--storage", "file", "--bucket", "/tmp/b"];

describe("parseServerArgs", () => {
  it("applies the seed's defaults", () => {
    const c = parseServerArgs(base, {}, "1.2.3");
    assert.equal(c.kind, "run");
    if (c.kind !== "run") return;
    assert.equal(c.settings.prefix, "shard/us-west-2a/");
    assert.equal(c.settings.cachedir, "./cache");
    assert.equal(c.settings.logLevel, "info");
    assert.deepEqual(c.settings.bindOverrides, {});
  });

  const usageCases: Array<{ name: string; argv: string[]; re: RegExp }> = [
    { name: "missing id", argv: base.slice(2), re: /missing required flag --id$/m },
    {
      name: "missing several",
      argv: ["--id", "x"],
      re: /missing required flags --shard, --storage, --bucket/,
    },
    {
      name: "unknown storage",
      argv: [...base.slice(0, 5), "ftp", ...base.slice(6)],
      re: /unknown storage kind "ftp"/,
    },
    { name: "unknown flag", argv: [...base, "--nope"], re: /unknown option '--nope'/ },
    {
      name: "bad log level",
      argv: [...base, "--log-level", "loud"],
      re: /valid: debug, info, warn, error/,
    },
    {
      name: "bad bind",
      argv: [...base, "--bind-health", "nope"],
      re: /invalid --bind-health "nope"/,
    },
    {
      name: "bare validate without storage",
      argv: ["--validate"],
      re: /missing required flags --shard, --storage, --bucket/,
    },
  ];
  for (const tc of usageCases) {
    it(`exits 2 with a one-line reason: ${tc.name}`, () => {
      const c = parseServerArgs(tc.argv, {}, "1.2.3");
      assert.equal(c.kind, "exit");
      if (c.kind !== "exit") return;
      assert.equal(c.code, 2);
      assert.match(c.stderr ?? "", tc.re);
      assert.match(c.stderr ?? "", /Run 'nstance-server --help' for usage\.\n$/);
      assert.equal((c.stderr ?? "").trim().split("\n").length, 2);
    });
  }

  it("prints the version", () => {
    assert.deepEqual(parseServerArgs(["--version"], {}, "1.2.3"), {
      kind: "exit",
      code: 0,
      stdout: "nstance-server 1.2.3\n",
    });
  });

  it("--validate with a path needs no storage flags", () => {
    const c = parseServerArgs(["--validate", "examples/local.jsonc"], {}, "1");
    assert.deepEqual(c, {
      kind: "validate-file",
      path: "examples/local.jsonc",
      logLevel: "info",
      logFormat: "json",
    });
  });

  it("bare --validate needs shard, storage and bucket but not id", () => {
    const c = parseServerArgs(
      ["--shard", "a", "--storage", "s3", "--bucket", "b", "--validate"],
      {},
      "1",
    );
    assert.equal(c.kind, "validate-remote");
    if (c.kind === "validate-remote") assert.equal(c.prefix, "shard/a/");
  });

  it("environment fills flags that were not given, and flags win", () => {
    const env = {
      [envNameFor("--bind-health")]: "127.0.0.1:9990",
      NSTANCE_CACHEDIR: "/var/c",
      NSTANCE_ID: "env-id",
    };
    const c = parseServerArgs([...base, "--cachedir", "./cache"], env, "1");
    assert.equal(c.kind, "run");
    if (c.kind !== "run") return;
    assert.equal(c.settings.bindOverrides.health, "127.0.0.1:9990");
    // Given explicitly (even equal to the default), the flag wins over the environment.
    assert.equal(c.settings.cachedir, "./cache");
    assert.equal(c.settings.id, "s1");
  });

  it("-v enables debug", () => {
    const c = parseServerArgs([...base, "-v"], {}, "1");
    assert.equal(c.kind === "run" && c.settings.logLevel, "debug");
  });
});
