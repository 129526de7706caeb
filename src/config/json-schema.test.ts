// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parseDurationMs } from "../shared/duration.js";
import { DEFAULT_BIND, DEFAULT_DRAIN_TIMEOUT, DEFAULT_LEADER_ELECTION } from "./config-schema.js";
import { generatedConfigFiles } from "./generated-files.js";
import { IDENTIFIER_MAX_LENGTH, IDENTIFIER_PATTERN, isIdentifier } from "./identifier.js";
import { DURATION_PATTERN, toGroupsJsonSchema, toJsonSchema } from "./json-schema.js";
import { INFRA_PROVIDERS } from "./server-config.js";

const repoFile = (path: string): string =>
  readFileSync(new URL(`../../${path}`, import.meta.url), "utf8");

// biome-ignore lint/suspicious/noExplicitAny: JSON Schema documents are navigated by deep paths.
type Schema = Record<string, any>;

/** Every subschema of `s` (depth first). */
function* walk(s: unknown): Generator<Schema> {
  if (Array.isArray(s)) for (const x of s) yield* walk(x);
  else if (s !== null && typeof s === "object") {
    yield s as Schema;
    for (const v of Object.values(s)) yield* walk(v);
  }
}

describe("generated files", () => {
  for (const [path, content] of Object.entries(generatedConfigFiles())) {
    it(`${path} is committed and up to date (npm run schema)`, () => {
      assert.equal(repoFile(path), content, `${path} is stale: run npm run schema`);
    });
  }
});

describe("toJsonSchema", () => {
  const schema = toJsonSchema() as Schema;
  const resolve = (s: Schema): Schema =>
    typeof s.$ref === "string" ? (schema.$defs[s.$ref.replace("#/$defs/", "")] as Schema) : s;

  it("is draft 2020-12 and closes every object with known fields", () => {
    assert.equal(schema.$schema, "https://json-schema.org/draft/2020-12/schema");
    let objects = 0;
    for (const s of walk(schema)) {
      if (s.type === "object" && s.properties !== undefined && s.propertyNames === undefined) {
        objects++;
        assert.equal(s.additionalProperties, false, JSON.stringify(Object.keys(s.properties)));
      }
    }
    assert.ok(objects > 15, `only ${objects} closed objects`);
  });

  it("carries defaults, enums, descriptions and required keys from the schema", () => {
    const shard = schema.properties.shard;
    assert.deepEqual(shard.required, ["id", "infra", "subnet_pools"]);
    assert.deepEqual(shard.properties.infra.properties.provider.enum, [...INFRA_PROVIDERS]);
    assert.equal(shard.properties.default_drain_timeout.default, DEFAULT_DRAIN_TIMEOUT);
    assert.equal(
      schema.properties.server.properties.bind.properties.health.default,
      DEFAULT_BIND.health,
    );
    const le = resolve(shard.properties.leader_election);
    assert.equal(le.properties.leader_timeout.default, DEFAULT_LEADER_ELECTION.leader_timeout);
    assert.equal(typeof shard.properties.leader_election.description, "string");
    assert.ok(schema.properties.$schema, "a top-level $schema key is allowed");
  });

  it("expresses the conditional file rules", () => {
    const file = schema.$defs.FileConfig as Schema;
    const secret = (file.allOf as Schema[]).find((r) =>
      r.if.properties.kind.enum.includes("secret"),
    )!;
    assert.deepEqual(secret.then.required, ["source"]);
    assert.equal(secret.then.properties.template, false);
  });

  it("its duration pattern agrees with the parser on valid and invalid samples", () => {
    const re = new RegExp(DURATION_PATTERN, "u");
    for (const ok of ["0", "0s", "90s", "1h30m", "504h", "250ms", "1.5h", "10us", "3µs"]) {
      assert.ok(re.test(ok), ok);
      assert.notEqual(parseDurationMs(ok), undefined, ok);
    }
    for (const bad of ["21d", "", "5", "1 h", "h", "-5s", "1h-5m"]) {
      assert.ok(!re.test(bad), bad);
    }
  });

  it("its identifier pattern agrees with isIdentifier (property)", () => {
    const re = new RegExp(IDENTIFIER_PATTERN, "u");
    const ident = fc.string({
      unit: fc.constantFrom("a", "z", "0", "9", "-", "A", "_"),
      maxLength: 40,
    });
    fc.assert(
      fc.property(ident, (s) => {
        assert.equal(
          re.test(s) && s.length <= IDENTIFIER_MAX_LENGTH,
          isIdentifier(s),
          JSON.stringify(s),
        );
      }),
      { numRuns: 500 },
    );
  });

  it("the groups schema allows $schema and uses the dynamic group definition", () => {
    const g = toGroupsJsonSchema() as Schema;
    assert.ok(g.properties.$schema);
    assert.equal(g.additionalProperties.additionalProperties.$ref, "#/$defs/DynamicGroupConfig");
    assert.equal(
      g.$defs.DynamicGroupConfig.required,
      undefined,
      "template is optional in the groups file",
    );
    assert.equal(
      g.$defs.DynamicGroupConfig.properties.size.default,
      undefined,
      "no defaults in the groups file",
    );
  });

  it("the examples point at the committed schemas", () => {
    for (const [example, target] of [
      ["examples/local.jsonc", "../schema/config.schema.json"],
      ["examples/aws.jsonc", "../schema/config.schema.json"],
      ["examples/groups.jsonc", "../schema/groups.schema.json"],
    ] as const) {
      assert.ok(repoFile(example).includes(`"$schema": "${target}"`), example);
    }
  });
});
