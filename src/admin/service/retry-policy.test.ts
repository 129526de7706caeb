// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type ErrorCode, NstanceError } from "../../shared/errors.js";
import { callOutcome, leaderHint, nextAttempt } from "./retry-policy.js";

const err = (code: ErrorCode, message: string): NstanceError => new NstanceError(code, message);

const REFUSED =
  "No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:8993. Resolution note: ";
const NOT_LEADER = "not the shard leader; the leader is s2 (operator localhost:2)";
const NO_LEADER = "not the shard leader; no leader elected yet";

describe("callOutcome", () => {
  const table: Array<[string, NstanceError, string]> = [
    ["connection refused", err("unavailable", REFUSED), "not_run"],
    [
      "connection reset before a connection",
      err("unavailable", "No connection established. Last error: read ECONNRESET"),
      "not_run",
    ],
    ["a standby's refusal", err("precondition_failed", NOT_LEADER), "not_run"],
    ["no leader yet", err("precondition_failed", NO_LEADER), "not_run"],
    [
      "a leader whose reconciler is not running",
      err(
        "unavailable",
        "this server leads the shard but its reconciler is not running (starting up or handing over); retry shortly",
      ),
      "not_run",
    ],
    ["the connection broke mid-call", err("unavailable", "Connection dropped"), "unknown"],
    [
      "a server stopping mid-call",
      err("unavailable", "server is shutting down; reconnect"),
      "unknown",
    ],
    ["the deadline passed", err("deadline_exceeded", "Deadline exceeded"), "unknown"],
    [
      "a rejected client certificate",
      err("unavailable", "No connection established. Last error: Failed to connect"),
      "failed",
    ],
    [
      "a server certificate for another name",
      err(
        "unavailable",
        "No connection established. Last error: Hostname/IP does not match certificate's altnames",
      ),
      "failed",
    ],
    ["another precondition", err("precondition_failed", "conditional write lost"), "failed"],
    ["not found", err("not_found", "group x not found"), "failed"],
    ["already exists", err("already_exists", "group x already exists"), "failed"],
  ];
  for (const [name, e, want] of table) {
    it(`${name}: ${want}`, () => assert.equal(callOutcome(e), want));
  }
});

describe("leaderHint", () => {
  it("reads the Operator address a refusal names", () => {
    assert.equal(leaderHint(NOT_LEADER), "localhost:2");
    assert.equal(
      leaderHint("not the shard leader; the leader is s2 (operator [::1]:8993)"),
      "[::1]:8993",
    );
  });
  it("is undefined without one", () => {
    assert.equal(leaderHint("not the shard leader; the leader is s2 at 10.0.0.2:8991"), undefined);
    assert.equal(leaderHint(NO_LEADER), undefined);
    assert.equal(leaderHint("group (operator x:1) not found"), undefined);
  });
});

describe("nextAttempt", () => {
  const refused = err("unavailable", REFUSED);
  const base = { addressCount: 2, elapsedMs: 0, windowMs: 30_000 };

  it("moves to the next address at once, then backs off 200 ms doubling to 2 s after each pass", () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14].map((attempts) =>
      nextAttempt(refused, { ...base, attempts }),
    );
    assert.deepEqual(delays, [0, 200, 0, 400, 0, 800, 0, 1_600, 0, 2_000, 0, 2_000, 0, 2_000]);
  });

  it("backs off after every attempt with a single address", () => {
    const delays = [1, 2, 3].map((attempts) =>
      nextAttempt(refused, { ...base, addressCount: 1, attempts }),
    );
    assert.deepEqual(delays, [200, 400, 800]);
  });

  it("stops when the next attempt could not start within the window", () => {
    assert.equal(nextAttempt(refused, { ...base, attempts: 2, elapsedMs: 29_700 }), 200);
    assert.equal(nextAttempt(refused, { ...base, attempts: 2, elapsedMs: 29_800 }), undefined);
    assert.equal(nextAttempt(refused, { ...base, attempts: 1, elapsedMs: 30_000 }), undefined);
  });

  it("never retries a call whose outcome is unknown or that failed for good", () => {
    for (const e of [
      err("unavailable", "Connection dropped"),
      err("deadline_exceeded", "Deadline exceeded"),
      err("not_found", "group x not found"),
    ]) {
      assert.equal(nextAttempt(e, { ...base, attempts: 1 }), undefined, e.message);
    }
  });

  it("retries a read whose outcome is unknown, but not a read that failed for good", () => {
    const dropped = err("unavailable", "Connection dropped");
    assert.equal(nextAttempt(dropped, { ...base, attempts: 1, readOnly: true }), 0);
    assert.equal(nextAttempt(dropped, { ...base, attempts: 2, readOnly: true }), 200);
    const late = err("deadline_exceeded", "Deadline exceeded");
    assert.equal(nextAttempt(late, { ...base, attempts: 1, readOnly: true }), 0);
    assert.equal(
      nextAttempt(late, { ...base, attempts: 1, elapsedMs: 30_000, readOnly: true }),
      undefined,
      "not once the window has passed",
    );
    const missing = err("not_found", "group x not found");
    assert.equal(nextAttempt(missing, { ...base, attempts: 1, readOnly: true }), undefined);
  });

  it("retries a standby's refusal on the other address, or with one address while no leader is known", () => {
    const notLeader = err("precondition_failed", NOT_LEADER);
    assert.equal(nextAttempt(notLeader, { ...base, attempts: 1 }), 0);
    assert.equal(nextAttempt(notLeader, { ...base, addressCount: 1, attempts: 1 }), undefined);
    const noLeader = err("precondition_failed", NO_LEADER);
    assert.equal(nextAttempt(noLeader, { ...base, addressCount: 1, attempts: 1 }), 200);
  });

  it("uses the given backoff", () => {
    const backoff = { initialMs: 10, maxMs: 15 };
    assert.deepEqual(
      [2, 4, 6].map((attempts) => nextAttempt(refused, { ...base, attempts, backoff })),
      [10, 15, 15],
    );
  });
});
