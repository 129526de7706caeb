// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import {
  afterServerReached,
  INITIAL_RECONNECT_STATE,
  planReconnect,
  type ReconnectEvent,
  type ReconnectState,
  type StreamFailureKind,
  streamFailureKind,
} from "./reconnect-plan.js";

const NAMED = {
  code: status.FAILED_PRECONDITION,
  details: "not the shard leader; the leader is s1 (operator localhost:8993)",
};
const NO_LEADER = {
  code: status.FAILED_PRECONDITION,
  details: "not the shard leader; no leader elected yet",
};
const DOWN = { code: status.UNAVAILABLE, details: "connect ECONNREFUSED" };

describe("streamFailureKind", () => {
  for (const [name, err, want] of [
    ["ended by the server", undefined, "ended"],
    ["unreachable", DOWN, "unreachable"],
    ["standby naming the leader", NAMED, "standby_named_leader"],
    ["standby without a leader", NO_LEADER, "standby"],
    [
      "named leader in the message only",
      { code: status.FAILED_PRECONDITION, message: `9 FAILED_PRECONDITION: ${NAMED.details}` },
      "standby_named_leader",
    ],
    ["another precondition", { code: status.FAILED_PRECONDITION, details: "bad" }, "other"],
    ["permission denied", { code: status.PERMISSION_DENIED, details: "x" }, "other"],
    ["a plain error", new Error("boom"), "other"],
  ] as Array<[string, unknown, StreamFailureKind]>) {
    it(name, () => assert.equal(streamFailureKind(err), want));
  }
});

/** Replays failures through planReconnect; returns [immediate, backoffAttempt] per step. */
function replay(
  steps: Array<Partial<ReconnectEvent> & { fromAddr: string; toAddr: string }>,
  addrCount = 2,
  start: ReconnectState = INITIAL_RECONNECT_STATE,
): { plans: Array<[boolean, number]>; state: ReconnectState } {
  let state = start;
  const plans: Array<[boolean, number]> = [];
  for (const s of steps) {
    const plan = planReconnect(state, {
      upMs: 0,
      failure: DOWN,
      addrCount,
      stableAfterMs: 30_000,
      ...s,
    });
    state = plan.state;
    plans.push([plan.immediate, plan.backoffAttempt]);
  }
  return { plans, state };
}

describe("planReconnect", () => {
  it("one server down: backoff grows (seed 003), and a stable stream starts it over", () => {
    const a = { fromAddr: "a", toAddr: "a" };
    const { plans } = replay([a, a, a, { ...a, upMs: 30_000 }, a], 1);
    assert.deepEqual(plans, [
      [false, 0],
      [false, 1],
      [false, 2],
      [false, 0],
      [false, 1],
    ]);
  });

  it("moving to another server starts from the initial delay, whatever the last one's count", () => {
    const a = { fromAddr: "a", toAddr: "a" };
    const { plans } = replay([a, a, a, a, { fromAddr: "a", toAddr: "b" }]);
    assert.deepEqual(plans.at(-1), [false, 0]);
  });

  it("every address down: exponential backoff per server, alternating", () => {
    const ab = { fromAddr: "a", toAddr: "b" };
    const ba = { fromAddr: "b", toAddr: "a" };
    const { plans } = replay([ab, ba, ab, ba, ab, ba, ab]);
    assert.deepEqual(
      plans.map(([, k]) => k),
      [0, 0, 0, 1, 1, 2, 2],
    );
    assert.ok(plans.every(([immediate]) => !immediate));
  });

  it("a standby naming the leader sends the stream on at once, once round the addresses", () => {
    // The soak's failover: the old leader is dead, the standby still names it.
    const named = (fromAddr: string, toAddr: string) => ({ fromAddr, toAddr, failure: NAMED });
    const two = replay([named("b", "a"), named("a", "b"), named("b", "a")]);
    assert.deepEqual(two.plans, [
      [true, 0],
      [false, 0],
      [true, 0],
    ]);
    const three = replay([named("a", "b"), named("b", "c"), named("c", "a")], 3);
    assert.deepEqual(
      three.plans.map(([immediate]) => immediate),
      [true, true, false],
    );
  });

  it("a standby naming the leader on the only address backs off", () => {
    const { plans } = replay([{ fromAddr: "a", toAddr: "a", failure: NAMED }], 1);
    assert.deepEqual(plans, [[false, 0]]);
  });

  it("a standby with no leader, or a stream the server ended, backs off", () => {
    const { plans } = replay([
      { fromAddr: "a", toAddr: "b", failure: NO_LEADER },
      { fromAddr: "b", toAddr: "b", failure: undefined },
    ]);
    assert.deepEqual(plans, [
      [false, 0],
      [false, 0],
    ]);
  });

  it("the chaos soak's sequence: standby, dead leader, standby, then the leader", () => {
    // Old behaviour: one shared attempt count (5, 10, 20, 40, 60 s …). Now each server keeps its
    // own: the retry after meeting the dead leader again waits the initial delay.
    const { plans } = replay([
      { fromAddr: "a", toAddr: "b", failure: DOWN },
      { fromAddr: "b", toAddr: "a", failure: NAMED },
      { fromAddr: "a", toAddr: "b", failure: DOWN },
      { fromAddr: "b", toAddr: "a", failure: NAMED },
    ]);
    assert.deepEqual(plans, [
      [false, 0],
      [true, 0],
      [false, 0],
      [true, 0],
    ]);
  });
});

describe("afterServerReached", () => {
  it("clears the reached server's count and the immediate run, and only those", () => {
    const a = { fromAddr: "a", toAddr: "a" };
    const b = { fromAddr: "b", toAddr: "b" };
    const { state } = replay([a, a, a, b, b, { fromAddr: "b", toAddr: "a", failure: NAMED }]);
    assert.equal(state.immediateInARow, 1);
    const reached = afterServerReached(state, "a");
    assert.equal(reached.failures.get("a"), undefined);
    assert.equal(reached.failures.get("b"), 3);
    assert.equal(reached.immediateInARow, 0);
    assert.equal(state.failures.get("a"), 3, "the input is not modified");
    const next = planReconnect(reached, {
      fromAddr: "a",
      toAddr: "a",
      upMs: 0,
      failure: DOWN,
      addrCount: 2,
      stableAfterMs: 30_000,
    });
    assert.equal(next.backoffAttempt, 0, "a fresh count after the server was reached");
  });

  it("returns the same state when there is nothing to clear", () => {
    assert.equal(afterServerReached(INITIAL_RECONNECT_STATE, "a"), INITIAL_RECONNECT_STATE);
  });
});
