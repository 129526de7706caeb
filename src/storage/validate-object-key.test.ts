// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NstanceError } from "../shared/errors.js";
import { objectKeyProblem, validateKeyPrefix, validateObjectKey } from "./validate-object-key.js";

describe("validateObjectKey", () => {
  for (const key of [
    "a",
    "shard/us-west-2a/leader.json",
    "instance/default.0190-abc.json",
    ".hidden",
    "a/..b",
    "a/b..",
    "ü/ñ",
  ]) {
    it(`accepts ${JSON.stringify(key)}`, () => assert.equal(objectKeyProblem(key), undefined));
  }
  const bad: Array<[string, RegExp]> = [
    ["", /empty/],
    ["/etc/passwd", /relative/],
    ["a//b", /empty path segment/],
    ["a/", /end with/],
    ["..", /"\.\." path segment/],
    ["a/../../b", /"\.\." path segment/],
    ["./a", /"\." path segment/],
    ["a\\b", /backslash/],
    ["a\0b", /NUL/],
    ["d/.nstance-tmp-1-abc", /reserved/],
    [`${"x".repeat(256)}`, /255 bytes/],
  ];
  for (const [key, why] of bad) {
    it(`rejects ${JSON.stringify(key)}`, () => {
      assert.throws(
        () => validateObjectKey(key),
        (err: unknown) =>
          err instanceof NstanceError && err.code === "invalid_argument" && why.test(err.message),
      );
    });
  }
});

describe("validateKeyPrefix", () => {
  for (const prefix of [
    "",
    "shard/",
    "shard/us-west-2a/instance/",
    "instance/web.",
    "a/.",
    "a/..",
  ]) {
    it(`accepts ${JSON.stringify(prefix)}`, () => validateKeyPrefix(prefix));
  }
  for (const prefix of ["/", "/abs", "../", "a//", "a/../b/"]) {
    it(`rejects ${JSON.stringify(prefix)}`, () => {
      assert.throws(() => validateKeyPrefix(prefix), /invalid key prefix/);
    });
  }
});
