// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ElectionStatus } from "../../election/lockfile-elector.js";
import type { CallHealthSnapshot } from "../metrics/call-health.js";
import {
  configCheck,
  electionCheck,
  grpcCheck,
  providerCheck,
  sqliteCheck,
  storageCheck,
} from "./server-checks.js";

const NOW = 1_000_000;
const health = (o: Partial<CallHealthSnapshot> = {}): CallHealthSnapshot => ({
  calls: 10,
  failures: 0,
  consecutiveFailures: 0,
  lastOkAt: NOW - 2000,
  recentFailures: 0,
  ...o,
});

describe("configCheck", () => {
  const cases: Array<[string, Parameters<typeof configCheck>[0], string, RegExp]> = [
    ["loading", { phase: "loading" }, "down", /loading configuration/],
    [
      "failed",
      { phase: "failed", failure: "configuration failed to load: nope" },
      "down",
      /failed to load: nope/,
    ],
    ["stopping", { phase: "stopping" }, "down", /shutting down/],
    ["from storage", { phase: "ready", source: "storage", etag: "e1" }, "ok", /etag e1/],
    ["from cache", { phase: "ready", source: "cache", etag: "e1" }, "degraded", /local cache/],
  ];
  for (const [name, input, status, re] of cases) {
    it(name, () => {
      const r = configCheck(input);
      assert.equal(r.status, status);
      assert.match(r.message, re);
    });
  }
});

describe("storageCheck", () => {
  const cases: Array<[string, CallHealthSnapshot | undefined, string, RegExp]> = [
    ["not opened", undefined, "down", /not opened/],
    ["healthy", health(), "ok", /10 operations, last success 2s ago/],
    [
      "one failure just now",
      health({ consecutiveFailures: 1, recentFailures: 1, lastError: "put x: timeout" }),
      "degraded",
      /1 failed operations in the last 60s; last: put x: timeout/,
    ],
    [
      "recovered, failures still in the window",
      health({ consecutiveFailures: 0, recentFailures: 2, lastError: "e" }),
      "degraded",
      /2 failed/,
    ],
    [
      "three in a row",
      health({ consecutiveFailures: 3, recentFailures: 3, lastError: "get y: ECONNREFUSED" }),
      "down",
      /last 3 operations failed \(last success 2s ago\): get y: ECONNREFUSED/,
    ],
  ];
  for (const [name, h, status, re] of cases) {
    it(name, () => {
      const r = storageCheck(h, { now: NOW });
      assert.equal(r.status, status);
      assert.match(r.message, re);
    });
  }
});

describe("providerCheck", () => {
  it("down only before the provider exists; failures degrade", () => {
    assert.equal(providerCheck(undefined, undefined, { now: NOW }).status, "down");
    assert.equal(providerCheck("fake", health(), { now: NOW }).status, "ok");
    const bad = providerCheck(
      "aws",
      health({ consecutiveFailures: 50, recentFailures: 50, lastError: "createInstance: 503" }),
      { now: NOW },
    );
    assert.equal(bad.status, "degraded");
    assert.match(
      bad.message,
      /^aws: 50 failed calls in the last 60s \(50 in a row\); last: createInstance: 503$/,
    );
  });
});

describe("sqliteCheck", () => {
  it("ok, failing, slow and missing", () => {
    assert.deepEqual(
      sqliteCheck(() => 4),
      { status: "ok", message: "4 instance rows" },
    );
    const failed = sqliteCheck(() => {
      throw new Error("database is locked");
    });
    assert.equal(failed.status, "down");
    assert.match(failed.message, /database is locked/);
    const slow = sqliteCheck(
      () => {
        const until = performance.now() + 20;
        while (performance.now() < until) {}
        return 1;
      },
      { slowMs: 5 },
    );
    assert.equal(slow.status, "degraded");
    assert.equal(sqliteCheck(undefined).status, "down");
  });
});

describe("electionCheck", () => {
  const st = (o: Partial<ElectionStatus>): ElectionStatus => ({
    state: "follower",
    isLeader: false,
    term: 3,
    leader: undefined,
    ...o,
  });
  const cases: Array<[string, Parameters<typeof electionCheck>[0], string, RegExp]> = [
    ["disabled", { enabled: false }, "ok", /disabled/],
    ["not created", { enabled: true }, "down", /not started/],
    ["stopped", { enabled: true, status: st({ state: "stopped" }) }, "down", /not running/],
    [
      "leader",
      { enabled: true, status: st({ state: "leader", isLeader: true }) },
      "ok",
      /leader \(term 3\)/,
    ],
    [
      "standby with a leader",
      { enabled: true, status: st({ leader: { id: "s2", addr: "x:1", term: 3 } }) },
      "ok",
      /standby; leader s2 \(term 3\)/,
    ],
    ["standby, no leader", { enabled: true, status: st({}) }, "degraded", /no leader known/],
    ["candidate", { enabled: true, status: st({ state: "candidate" }) }, "degraded", /taking over/],
    [
      "resigning",
      { enabled: true, status: st({ state: "resigning" }) },
      "degraded",
      /stepping down/,
    ],
  ];
  for (const [name, input, status, re] of cases) {
    it(name, () => {
      const r = electionCheck(input);
      assert.equal(r.status, status);
      assert.match(r.message, re);
    });
  }
});

describe("grpcCheck", () => {
  it("down until bound, then lists the addresses", () => {
    assert.equal(grpcCheck(undefined).status, "down");
    assert.deepEqual(grpcCheck({ registration: "a:1", operator: "a:2" }), {
      status: "ok",
      message: "listening: registration=a:1, operator=a:2",
    });
  });
});
