// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import {
  envNameFor,
  parseServerArgs,
  readSettingsFile,
  SETTING_SPECS,
  type ServerCommand,
  type ServerSettings,
} from "./server-settings.js";

const base = ["--id", "s1", "--shard", "us-west-2a", "--storage", "file", "--bucket", "/tmp/b"];

/** A fake file system for `--config`: path → text. */
function files(map: Record<string, string>): (path: string) => string {
  return (path) => {
    const text = map[path];
    if (text === undefined) throw new Error(`ENOENT: no such file or directory, open '${path}'`);
    return text;
  };
}

function run(
  argv: string[],
  env: Record<string, string> = {},
  fs: Record<string, string> = {},
): ServerSettings {
  const c = parseServerArgs(argv, env, "1.2.3", files(fs));
  if (c.kind !== "run") assert.fail(`expected run, got ${JSON.stringify(c)}`);
  return c.settings;
}

function usageOf(c: ServerCommand): string {
  assert.equal(c.kind, "exit");
  if (c.kind !== "exit") return "";
  assert.equal(c.code, 2);
  return c.stderr ?? "";
}

describe("parseServerArgs", () => {
  it("applies the seed's defaults", () => {
    const s = run(base);
    assert.equal(s.prefix, "shard/us-west-2a/");
    assert.equal(s.cachedir, "./cache");
    assert.equal(s.logLevel, "info");
    assert.equal(s.logFormat, "json");
    assert.equal(s.heartbeatIntervalMs, 5000);
    assert.equal(s.heartbeatTtlMs, 30_000);
    assert.deepEqual(s.bindOverrides, {});
  });

  const usageCases: Array<{
    name: string;
    argv: string[];
    env?: Record<string, string>;
    re: RegExp;
  }> = [
    { name: "missing id", argv: base.slice(2), re: /missing required flag --id$/m },
    {
      name: "missing several",
      argv: ["--id", "x"],
      re: /missing required flags --shard, --storage, --bucket/,
    },
    {
      name: "unknown storage",
      argv: [...base.slice(0, 5), "ftp", ...base.slice(6)],
      re: /invalid --storage "ftp" \(valid: s3, gcs, file\)/,
    },
    { name: "unknown flag", argv: [...base, "--nope"], re: /unknown option '--nope'/ },
    {
      name: "bad log level",
      argv: [...base, "--log-level", "loud"],
      re: /invalid --log-level "loud" \(valid: debug, info, warn, error\)/,
    },
    {
      name: "bad log format",
      argv: [...base, "--log-format", "xml"],
      re: /invalid --log-format "xml" \(valid: json, text\)/,
    },
    {
      name: "bad log level in the environment names the variable",
      argv: base,
      env: { NSTANCE_LOG_LEVEL: "verbose" },
      re: /invalid NSTANCE_LOG_LEVEL "verbose" \(valid: debug, info, warn, error\)/,
    },
    {
      name: "bad bind",
      argv: [...base, "--bind-health", "nope"],
      re: /invalid --bind-health "nope" \(want host:port/,
    },
    {
      name: "bad duration",
      argv: [...base, "--heartbeat-interval", "5d"],
      re: /invalid --heartbeat-interval "5d" \(want a Go duration/,
    },
    {
      name: "ttl not above interval",
      argv: [...base, "--heartbeat-ttl", "5s"],
      re: /--heartbeat-ttl must be longer than --heartbeat-interval/,
    },
    {
      name: "bad boolean in the environment",
      argv: base,
      env: { NSTANCE_DEBUG: "maybe" },
      re: /invalid NSTANCE_DEBUG "maybe" \(want true or false\)/,
    },
    {
      name: "bare validate without storage",
      argv: ["--validate"],
      re: /missing required flags --shard, --storage, --bucket/,
    },
  ];
  for (const tc of usageCases) {
    it(`exits 2 with a one-line reason: ${tc.name}`, () => {
      const err = usageOf(parseServerArgs(tc.argv, tc.env ?? {}, "1.2.3"));
      assert.match(err, tc.re);
      assert.match(err, /Run 'nstance-server --help' for usage\.\n$/);
      assert.equal(err.trim().split("\n").length, 2);
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
    const s = run([...base, "--cachedir", "./cache"], env);
    assert.equal(s.bindOverrides.health, "127.0.0.1:9990");
    // Given explicitly (even equal to the default), the flag wins over the environment.
    assert.equal(s.cachedir, "./cache");
    assert.equal(s.id, "s1");
  });

  it("-v enables debug", () => {
    assert.equal(run([...base, "-v"]).logLevel, "debug");
  });
});

describe("settings precedence: defaults < --config file < environment < flags", () => {
  const FILE = "/etc/nstance/server.jsonc";
  const fileText = `// nstance-server settings
{
  "$schema": "editors-only.json",
  "id": "file-id",
  "shard": "file-shard",
  "storage": "s3",
  "bucket": "file-bucket",
  "cachedir": "/file/cache",
  "log_format": "text",
  "heartbeat_interval": "2s",
  "bind": { "health": "10.0.0.1:8990", "agent": "10.0.0.1:8994" },
}
`;
  const fs = { [FILE]: fileText };

  it("the file fills every setting it names; defaults fill the rest", () => {
    const s = run(["--config", FILE], {}, fs);
    assert.equal(s.id, "file-id");
    assert.equal(s.shard, "file-shard");
    assert.equal(s.storage, "s3");
    assert.equal(s.bucket, "file-bucket");
    assert.equal(s.prefix, "shard/file-shard/");
    assert.equal(s.cachedir, "/file/cache");
    assert.equal(s.logFormat, "text");
    assert.equal(s.logLevel, "info");
    assert.equal(s.heartbeatIntervalMs, 2000);
    assert.equal(s.heartbeatTtlMs, 30_000);
    assert.deepEqual(s.bindOverrides, { health: "10.0.0.1:8990", agent: "10.0.0.1:8994" });
  });

  const cases: Array<{
    name: string;
    argv: string[];
    env: Record<string, string>;
    cachedir: string;
    health: string;
  }> = [
    { name: "file only", argv: [], env: {}, cachedir: "/file/cache", health: "10.0.0.1:8990" },
    {
      name: "environment over file",
      argv: [],
      env: { NSTANCE_CACHEDIR: "/env/cache", NSTANCE_BIND_HEALTH: "10.0.0.2:8990" },
      cachedir: "/env/cache",
      health: "10.0.0.2:8990",
    },
    {
      name: "flag over environment and file",
      argv: ["--cachedir", "/flag/cache", "--bind-health", "10.0.0.3:8990"],
      env: { NSTANCE_CACHEDIR: "/env/cache", NSTANCE_BIND_HEALTH: "10.0.0.2:8990" },
      cachedir: "/flag/cache",
      health: "10.0.0.3:8990",
    },
    {
      name: "a flag given with the default value still overrides the file",
      argv: ["--cachedir", "./cache"],
      env: {},
      cachedir: "./cache",
      health: "10.0.0.1:8990",
    },
    {
      name: "an empty environment value counts as unset",
      argv: [],
      env: { NSTANCE_CACHEDIR: "" },
      cachedir: "/file/cache",
      health: "10.0.0.1:8990",
    },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      const s = run(["--config", FILE, ...tc.argv], tc.env, fs);
      assert.equal(s.cachedir, tc.cachedir);
      assert.equal(s.bindOverrides.health, tc.health);
    });
  }

  it("a flag given with the default log format overrides the file's text", () => {
    assert.equal(run(["--config", FILE, "--log-format", "json"], {}, fs).logFormat, "json");
    assert.equal(run(["--config", FILE], { NSTANCE_LOG_FORMAT: "json" }, fs).logFormat, "json");
  });

  it("NSTANCE_CONFIG names the file when --config is not given; --config wins", () => {
    const other = "/other.jsonc";
    const both = { ...fs, [other]: fileText.replace("file-id", "other-id") };
    assert.equal(run([], { NSTANCE_CONFIG: FILE }, both).id, "file-id");
    assert.equal(run(["--config", other], { NSTANCE_CONFIG: FILE }, both).id, "other-id");
  });

  const debugCases: Array<{
    name: string;
    file: string;
    argv?: string[];
    env?: Record<string, string>;
    level: string;
  }> = [
    { name: "file debug", file: `{"debug": true}`, level: "debug" },
    {
      name: "flag log level over file debug",
      file: `{"debug": true}`,
      argv: ["--log-level", "warn"],
      level: "warn",
    },
    {
      name: "env debug over file log level",
      file: `{"log_level": "error"}`,
      env: { NSTANCE_DEBUG: "1" },
      level: "debug",
    },
    {
      name: "env debug=false keeps the file's level",
      file: `{"debug": true, "log_level": "warn"}`,
      env: { NSTANCE_DEBUG: "false" },
      level: "warn",
    },
  ];
  for (const tc of debugCases) {
    it(`debug vs log level: ${tc.name}`, () => {
      const s = run(["--config", "/s.jsonc", ...base, ...(tc.argv ?? [])], tc.env ?? {}, {
        "/s.jsonc": tc.file,
      });
      assert.equal(s.logLevel, tc.level);
    });
  }

  const fileErrors: Array<{ name: string; text: string; re: RegExp }> = [
    {
      name: "invalid log level, located, listing the valid ones",
      text: `{\n  "log_level": "loud"\n}\n`,
      re: /^nstance-server: \/s\.jsonc:2:16: log_level: must be one of "debug", "info", "warn", "error" \(got "loud"\)$/m,
    },
    {
      name: "unknown key with a suggestion",
      text: `{\n  "cachdir": "/x"\n}\n`,
      re: /\/s\.jsonc:2:3: cachdir: unknown key "cachdir" \(did you mean "cachedir"\?\)/,
    },
    {
      name: "syntax error",
      text: `{\n  "id": "a"\n  "shard": "b"\n}\n`,
      re: /\/s\.jsonc:3:3: syntax error: expected ','/,
    },
    {
      name: "bad bind address",
      text: `{"bind": {"health": "nope"}}`,
      re: /\/s\.jsonc:1:21: bind\.health: invalid address "nope"/,
    },
    {
      name: "wrong type",
      text: `{"debug": "yes"}`,
      re: /\/s\.jsonc:1:11: debug: expected a boolean, got a string/,
    },
    {
      name: "flag-only keys are not settings",
      text: `{"config": "/other.jsonc"}`,
      re: /\/s\.jsonc:1:2: config: unknown key "config"/,
    },
  ];
  for (const tc of fileErrors) {
    it(`an invalid file exits 2: ${tc.name}`, () => {
      const err = usageOf(
        parseServerArgs(["--config", "/s.jsonc"], {}, "1", files({ "/s.jsonc": tc.text })),
      );
      assert.match(err, tc.re);
      assert.match(err, /Run 'nstance-server --help' for usage\.\n$/);
    });
  }

  it("a missing file exits 2 naming it", () => {
    const err = usageOf(parseServerArgs(["--config", "/nope.jsonc"], {}, "1", files({})));
    assert.match(err, /\/nope\.jsonc: cannot read settings file: ENOENT/);
  });

  it("a file problem is reported even when flags would override the key", () => {
    const err = usageOf(
      parseServerArgs(
        ["--config", "/s.jsonc", ...base, "--log-level", "info"],
        {},
        "1",
        files({ "/s.jsonc": `{"log_level": "loud"}` }),
      ),
    );
    assert.match(err, /\/s\.jsonc:1:15: log_level/);
  });
});

describe("one schema for flags, file keys and environment", () => {
  it("every setting flag has a file key and a variable, and every flag is a setting", () => {
    const help = parseServerArgs(["--help"], {}, "1");
    assert.equal(help.kind, "exit");
    const text = help.kind === "exit" ? (help.stdout ?? "") : "";
    const flags = new Set([...text.matchAll(/(?:^|\s)(--[a-z][a-z-]*)/g)].map((m) => m[1]!));
    const modes = new Set(["--version", "--validate", "--config", "--help"]);
    const settingFlags = [...flags].filter((f) => !modes.has(f)).sort();
    assert.deepEqual(settingFlags, SETTING_SPECS.map((s) => s.flag).sort());
    for (const s of SETTING_SPECS) {
      assert.equal(s.flag, `--${s.key.replaceAll(".", "-").replaceAll("_", "-")}`);
      assert.equal(s.env, envNameFor(s.flag));
      assert.ok(
        text.replace(/\s+/g, " ").includes(`key ${s.key})`),
        `help names the file key of ${s.flag}`,
      );
    }
  });

  it("a file setting every key is accepted and each value arrives", () => {
    const values: Record<string, unknown> = {
      id: "i",
      shard: "sh",
      storage: "gcs",
      bucket: "bk",
      prefix: "p/{shard}/",
      cachedir: "/c",
      advertise_host: "h.example",
      debug: false,
      log_level: "warn",
      log_format: "text",
      heartbeat_interval: "1s",
      heartbeat_ttl: "9s",
      "bind.health": "1.1.1.1:1",
      "bind.election": "1.1.1.1:2",
      "bind.registration": "1.1.1.1:3",
      "bind.operator": "1.1.1.1:4",
      "bind.agent": "1.1.1.1:5",
    };
    assert.deepEqual(Object.keys(values).sort(), SETTING_SPECS.map((s) => s.key).sort());
    const doc: Record<string, unknown> = { bind: {} };
    for (const [k, v] of Object.entries(values)) {
      if (k.startsWith("bind.")) (doc.bind as Record<string, unknown>)[k.slice(5)] = v;
      else doc[k] = v;
    }
    const r = readSettingsFile("/all.jsonc", files({ "/all.jsonc": JSON.stringify(doc) }));
    assert.ok("values" in r, JSON.stringify(r));
    if ("values" in r) assert.deepEqual(Object.fromEntries(r.values), values);
    const s = run(["--config", "/all.jsonc"], {}, { "/all.jsonc": JSON.stringify(doc) });
    assert.equal(s.prefix, "p/sh/");
    assert.equal(s.advertiseHost, "h.example");
    assert.equal(s.heartbeatTtlMs, 9000);
    assert.equal(s.bindOverrides.registration, "1.1.1.1:3");
  });

  it("docs/operations.md documents every setting's flag, key and variable", () => {
    const doc = readFileSync(new URL("../../docs/operations.md", import.meta.url), "utf8");
    for (const s of SETTING_SPECS) {
      for (const name of [s.flag, `\`${s.key}\``, s.env]) {
        assert.ok(doc.includes(name), `docs/operations.md mentions ${name}`);
      }
    }
  });
});
