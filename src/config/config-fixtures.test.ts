// SPDX-License-Identifier: Apache-2.0
// Every broken config in test/fixtures/config is broken in exactly one way; each must be reported
// with its JSON path at the exact line:column of the offending key or value.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parseStaticConfig, validateConfigText, validateGroupsText } from "./load-config.js";

const DIR = new URL("../../test/fixtures/config/", import.meta.url);
const read = (name: string): string => readFileSync(new URL(name, DIR), "utf8");

interface Case {
  file: string;
  path: string;
  line: number;
  column: number;
  /** A fragment the message must contain. */
  message: string;
}

const CASES: Case[] = [
  {
    file: "unknown-template-wbe.jsonc",
    path: "groups.default.web.template",
    line: 27,
    column: 28,
    message: 'unknown template "wbe" (did you mean "web"?)',
  },
  {
    file: "bad-identifier-shard-id.jsonc",
    path: "shard.id",
    line: 6,
    column: 11,
    message: 'invalid identifier "Local_1"',
  },
  {
    file: "duplicate-bind-addresses.jsonc",
    path: "server.bind.operator",
    line: 3,
    column: 99,
    message: "conflicts with server.bind.registration",
  },
  {
    file: "bad-duration-21d.jsonc",
    path: "shard.expiry.forced_age",
    line: 10,
    column: 55,
    message: '"d" is not a unit',
  },
  {
    file: "expiry-eligible-not-less-than-forced.jsonc",
    path: "shard.expiry.eligible_age",
    line: 10,
    column: 33,
    message: "must be less than forced_age",
  },
  {
    file: "gc-registration-timeout-not-greater-than-interval.jsonc",
    path: "shard.garbage_collection.registration_timeout",
    line: 9,
    column: 71,
    message: "must be greater than interval",
  },
  {
    file: "unknown-subnet-pool.jsonc",
    path: "groups.default.web.subnet_pool",
    line: 27,
    column: 61,
    message: 'unknown subnet pool "dflt"',
  },
  {
    file: "unknown-key-typo.jsonc",
    path: "groups.default.web.sise",
    line: 27,
    column: 35,
    message: 'unknown key "sise" (did you mean "size"?)',
  },
  {
    file: "syntax-trailing-garbage.jsonc",
    path: "",
    line: 31,
    column: 1,
    message: "syntax error: expected end of file",
  },
  {
    file: "wrong-type-size-string.jsonc",
    path: "groups.default.web.size",
    line: 27,
    column: 43,
    message: "expected an integer, got a string",
  },
  // A missing key is reported at the object that should hold it.
  {
    file: "missing-required-cluster-id.jsonc",
    path: "cluster.id",
    line: 4,
    column: 14,
    message: "is required",
  },
  {
    file: "bad-template-kind.jsonc",
    path: "templates.web.kind",
    line: 17,
    column: 15,
    message: "must be exactly 3 lowercase letters",
  },
  {
    file: "unknown-load-balancer.jsonc",
    path: "groups.default.web.load_balancers[0]",
    line: 27,
    column: 65,
    message: 'unknown load balancer "frnt" (did you mean "front"?)',
  },
  {
    file: "bad-host-port.jsonc",
    path: "server.bind.health",
    line: 3,
    column: 35,
    message: 'invalid address "127.0.0.1:99999"',
  },
  {
    file: "encryption-key-missing-for-object-storage.jsonc",
    path: "cluster.secrets.encryption_key",
    line: 4,
    column: 42,
    message: 'is required when provider is "object-storage"',
  },
  {
    file: "certificate-file-unknown-certificate-template.jsonc",
    path: 'templates.web.files["web.crt"].template',
    line: 21,
    column: 57,
    message: 'unknown certificate template "web-srv"',
  },
  {
    file: "subnet-in-two-pools.jsonc",
    path: "shard.subnet_pools.spare[0]",
    line: 8,
    column: 58,
    message: 'already in pool "default"',
  },
  {
    file: "leader-timeout-not-greater-than-frequent-interval.jsonc",
    path: "shard.leader_election.leader_timeout",
    line: 11,
    column: 71,
    message: "must be greater than frequent_interval",
  },
  {
    file: "wrong-arch-enum.jsonc",
    path: "templates.web.arch",
    line: 18,
    column: 15,
    message: 'must be one of "amd64", "arm64" (got "x86_64")',
  },
  // The second occurrence of the key is the one reported.
  {
    file: "duplicate-key.jsonc",
    path: "groups.default.web.size",
    line: 27,
    column: 46,
    message: 'duplicate key "size"',
  },
  { file: "empty-file.jsonc", path: "", line: 1, column: 1, message: "the file is empty" },
  // Groups files, validated against valid-static.jsonc.
  {
    file: "groups-restricted-template-override.jsonc",
    path: "groups.default.web.template",
    line: 4,
    column: 37,
    message: '"template" is restricted for static groups',
  },
  {
    file: "groups-dynamic-group-without-template.jsonc",
    path: "groups.default.batch.template",
    line: 5,
    column: 14,
    message: "is required for groups that are not in the static config",
  },
  {
    file: "groups-bad-tenant-name.jsonc",
    path: "groups.Team_A",
    line: 3,
    column: 3,
    message: 'invalid tenant name "Team_A"',
  },
  {
    file: "groups-unknown-key-typo.jsonc",
    path: "groups.default.web.instance_typ",
    line: 4,
    column: 25,
    message: 'did you mean "instance_type"?',
  },
];

describe("config fixtures", () => {
  const staticConfig = parseStaticConfig(read("valid-static.jsonc"), "valid-static.jsonc");

  it("the base fixture is valid", () => {
    assert.deepEqual(validateConfigText(read("valid-static.jsonc"), "valid-static.jsonc"), []);
  });

  it("every fixture file has a case", () => {
    const files = readdirSync(DIR).filter(
      (f) => f.endsWith(".jsonc") && f !== "valid-static.jsonc",
    );
    assert.deepEqual(files.sort(), CASES.map((c) => c.file).sort());
    assert.ok(CASES.length >= 14);
  });

  for (const c of CASES) {
    it(`${c.file}: ${c.path || "(file)"} at ${c.line}:${c.column}`, () => {
      const text = read(c.file);
      const problems = c.file.startsWith("groups-")
        ? validateGroupsText(staticConfig, text, c.file)
        : validateConfigText(text, c.file);
      assert.equal(
        problems.length,
        1,
        `expected one problem, got:\n${problems.map((p) => JSON.stringify(p)).join("\n")}`,
      );
      const [p] = problems;
      assert.equal(p!.path, c.path);
      assert.equal(p!.file, c.file);
      assert.deepEqual([p!.line, p!.column], [c.line, c.column]);
      assert.ok(
        p!.message.includes(c.message),
        `message ${JSON.stringify(p!.message)} lacks ${JSON.stringify(c.message)}`,
      );
    });
  }
});
