// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type ErrorCode, NstanceError, StorageError } from "../shared/errors.js";
import { EXIT_CODES, exitCodeFor, exitCodeForResults } from "./exit-code.js";
import type { ShardResult } from "./service/admin-service.js";
import { RemoteError } from "./service/remote-error.js";
import { UsageError } from "./usage-error.js";

const remote = (code: ErrorCode, message = "x"): RemoteError =>
  new RemoteError("shard s1", "h:1", new NstanceError(code, message), 30_000);

describe("exitCodeFor", () => {
  const cases: Array<[string, unknown, number]> = [
    ["usage error", new UsageError("bad flag"), 2],
    ["local invalid argument (bad key file)", new NstanceError("invalid_argument", "x"), 2],
    ["server's INVALID_ARGUMENT", remote("invalid_argument"), 1],
    ["server's FAILED_PRECONDITION (not leader)", remote("precondition_failed"), 1],
    ["server's PERMISSION_DENIED", remote("permission_denied"), 1],
    ["server's UNAUTHENTICATED", remote("unauthenticated"), 1],
    ["server's INTERNAL", remote("internal"), 1],
    ["already exists", remote("already_exists"), 1],
    ["server's NOT_FOUND", remote("not_found"), 4],
    ["missing storage object", new NstanceError("not_found", "x"), 4],
    ["unreachable server", remote("unavailable"), 3],
    ["deadline exceeded", remote("deadline_exceeded"), 3],
    ["storage failure", new StorageError("get", "k", "boom", true), 3],
    ["unexpected error", new Error("bug"), 1],
  ];
  for (const [name, err, code] of cases) {
    it(`${name} → ${code}`, () => assert.equal(exitCodeFor(err), code));
  }
});

describe("exitCodeForResults", () => {
  const ok: ShardResult<number> = { shard: "a", address: "h:1", ok: true, value: 1 };
  const failed = (code: ErrorCode): ShardResult<number> => ({
    shard: "b",
    address: "h:2",
    ok: false,
    error: remote(code),
  });

  it("is 0 when every shard succeeded", () => {
    assert.equal(exitCodeForResults([ok, ok]), EXIT_CODES.ok);
  });

  it("is the failing shards' code when they agree", () => {
    assert.equal(exitCodeForResults([ok, failed("unavailable")]), EXIT_CODES.unavailable);
    assert.equal(
      exitCodeForResults([failed("not_found"), failed("not_found")]),
      EXIT_CODES.notFound,
    );
  });

  it("is 1 when failing shards disagree", () => {
    assert.equal(
      exitCodeForResults([failed("unavailable"), failed("not_found")]),
      EXIT_CODES.failed,
    );
  });
});
