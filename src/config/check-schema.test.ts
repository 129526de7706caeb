// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkSchema, suggest } from "./check-schema.js";
import { deepMerge } from "./deep-merge.js";
import { addressesConflict, parseHostPort } from "./host-port.js";
import { identifierProblem } from "./identifier.js";
import { formatPath } from "./path-problem.js";
import { arr, duration, int, map, obj, oneOf, str } from "./schema-dsl.js";

describe("checkSchema", () => {
  const node = obj("root", {
    name: str("n", { required: true }),
    mode: oneOf("m", ["fast", "slow"], { default: "slow" }),
    wait: duration("w", { default: "5s", min: "positive" }),
    nested: obj("n", { count: int("c", { default: 1, minimum: 0 }) }, { default: {} }),
    tags: arr("t", str("x"), { uniqueItems: true }),
    items: map("i", { name: "item", format: "identifier" }, int("v")),
  });

  it("fills defaults recursively and copies plain values", () => {
    const r = checkSchema(node, { name: "x" });
    assert.deepEqual(r.problems, []);
    assert.deepStrictEqual(r.value, { name: "x", mode: "slow", wait: "5s", nested: { count: 1 } });
  });

  it("collects every problem with its path, and falls back to defaults for invalid values", () => {
    const r = checkSchema(node, {
      mode: "fsat",
      wait: "0s",
      nested: { count: 1.5, extra: true },
      tags: ["a", "b", "a"],
      items: { ok: 1, "Not-OK": 2 },
    });
    assert.deepEqual(
      r.problems.map((p) => [formatPath(p.path), p.message, p.at ?? "value"]),
      [
        ["name", "is required", "value"],
        ["mode", 'must be one of "fast", "slow" (got "fsat"); did you mean "fast"?', "value"],
        ["wait", 'must be greater than 0 (got "0s")', "value"],
        ["nested.extra", 'unknown key "extra"', "key"],
        ["nested.count", "expected an integer, got 1.5", "value"],
        ["tags[2]", 'duplicate of item 0 ("a")', "value"],
        [
          "items.Not-OK",
          'invalid item name "Not-OK": must contain only lowercase letters, digits and hyphens, and start and end with a letter or digit',
          "key",
        ],
      ],
    );
    assert.deepStrictEqual(r.value, {
      mode: "slow",
      wait: "5s",
      nested: { count: 1 },
      tags: ["a", "b"],
      items: { ok: 1, "Not-OK": 2 },
    });
  });

  it("keeps a __proto__ map key an ordinary key", () => {
    const r = checkSchema(map("m", { name: "k" }, int("v")), JSON.parse('{"__proto__": 1}'));
    assert.deepEqual(Object.keys(r.value as object), ["__proto__"]);
    assert.equal(Object.getPrototypeOf(r.value), Object.prototype);
  });

  it("names JSON types in type errors", () => {
    const r = checkSchema(obj("o", { a: str("a"), b: arr("b", int("i")), c: obj("c", {}) }), {
      a: null,
      b: {},
      c: [],
    });
    assert.deepEqual(
      r.problems.map((p) => p.message),
      [
        "expected a string, got null",
        "expected an array, got an object",
        "expected an object, got an array",
      ],
    );
  });
});

describe("suggest", () => {
  it("finds close names including transpositions, and nothing for distant ones", () => {
    assert.equal(suggest("wbe", ["web", "api"]), "web");
    assert.equal(suggest("templte", ["template", "size"]), "template");
    assert.equal(suggest("zzzzzz", ["template", "size"]), undefined);
  });
});

describe("identifierProblem", () => {
  it("accepts the identifier shape and explains each rejection", () => {
    for (const ok of ["a", "us-west-2a", "0", "a-b-c", "x".repeat(32)])
      assert.equal(identifierProblem(ok), undefined, ok);
    assert.match(identifierProblem("x".repeat(33))!, /at most 32/);
    assert.match(identifierProblem("a--b")!, /"--"/);
    for (const bad of ["-a", "a-", "A", "a_b", "a.b", ""]) assert.ok(identifierProblem(bad), bad);
  });
});

describe("parseHostPort", () => {
  it("parses IPv4, bracketed IPv6, names and empty hosts", () => {
    assert.deepEqual(parseHostPort("0.0.0.0:8990"), { host: "0.0.0.0", port: 8990 });
    assert.deepEqual(parseHostPort("[::1]:8992"), { host: "::1", port: 8992 });
    assert.deepEqual(parseHostPort(":8993"), { host: "", port: 8993 });
    assert.deepEqual(parseHostPort("localhost:0"), { host: "localhost", port: 0 });
    for (const bad of [
      "8990",
      "host:",
      "host:65536",
      "::1:80",
      "[::1:80",
      "a b:1",
      "[1.2.3.4]:80",
      "h:-1",
    ]) {
      assert.equal(parseHostPort(bad), undefined, bad);
    }
  });

  it("detects conflicts through wildcard hosts", () => {
    const hp = (s: string) => parseHostPort(s)!;
    assert.ok(addressesConflict(hp("0.0.0.0:80"), hp("127.0.0.1:80")));
    assert.ok(addressesConflict(hp(":80"), hp("[::1]:80")));
    assert.ok(!addressesConflict(hp("127.0.0.1:80"), hp("127.0.0.2:80")));
    assert.ok(!addressesConflict(hp("127.0.0.1:0"), hp("127.0.0.1:0")));
  });
});

describe("deepMerge", () => {
  it("merges objects recursively and replaces everything else, without touching inputs", () => {
    const a = { x: { y: 1, z: [1, 2] }, k: "a" };
    const b = { x: { z: [3] }, k: { o: true } };
    assert.deepStrictEqual(deepMerge(a, undefined, b), { x: { y: 1, z: [3] }, k: { o: true } });
    assert.deepStrictEqual(a, { x: { y: 1, z: [1, 2] }, k: "a" });
  });
});

describe("formatPath", () => {
  it("quotes keys that are not plain words", () => {
    assert.equal(
      formatPath(["templates", "web", "files", "ca.crt", "key", "name"]),
      'templates.web.files["ca.crt"].key.name',
    );
    assert.equal(formatPath(["default", "web"], "groups"), "groups.default.web");
    assert.equal(formatPath(["pools", "a", 0]), "pools.a[0]");
    assert.equal(formatPath([]), "");
  });
});
