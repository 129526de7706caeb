// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { silentLogger } from "../../shared/logger.js";
import type { ServerHeartbeat } from "../server-registry.js";
import type { LeaderRef, Leadership } from "./api-context.js";
import { LeaderOperatorAddresses } from "./leader-operator-addresses.js";
import { notLeaderMessage } from "./require-leader.js";

function heartbeat(
  id: string,
  operator: string,
  stale = false,
): ServerHeartbeat & { stale: boolean } {
  return {
    id,
    shard: "s",
    version: "v",
    role: "standby",
    term: 1,
    addresses: { operator, election: `${id}:8991` },
    started_at: "",
    updated_at: "",
    stale,
  };
}

function standbyOf(leader: LeaderRef | undefined): Leadership {
  return { isLeader: () => false, leader: () => leader };
}

describe("notLeaderMessage", () => {
  const ref = { id: "s2", addr: "10.0.0.2:8991", term: 3 };
  it("names the leader's Operator address when known", () => {
    assert.equal(
      notLeaderMessage(standbyOf({ ...ref, operatorAddr: "10.0.0.2:8993" })),
      "not the shard leader; the leader is s2 (operator 10.0.0.2:8993)",
    );
  });
  it("falls back to the election address, then to none", () => {
    assert.equal(
      notLeaderMessage(standbyOf(ref)),
      "not the shard leader; the leader is s2 at 10.0.0.2:8991",
    );
    assert.equal(
      notLeaderMessage(standbyOf(undefined)),
      "not the shard leader; no leader elected yet",
    );
  });
});

describe("LeaderOperatorAddresses", () => {
  it("adds the leader's Operator address from the live heartbeats, re-reading at most once per interval", async () => {
    let now = 0;
    let lists = 0;
    let beats = [heartbeat("s1", "h1:8993"), heartbeat("s2", "h2:8993", true)];
    const book = new LeaderOperatorAddresses({
      source: {
        list: async () => {
          lists++;
          return beats;
        },
      },
      refreshMs: 5_000,
      logger: silentLogger,
      now: () => now,
    });
    let leader: LeaderRef = { id: "s1", addr: "h1:8991", term: 1 };
    const wrapped = book.wrap(standbyOf(leader));
    try {
      assert.deepEqual(wrapped.leader(), leader, "unknown at first: no address added");
      await book.refresh();
      await new Promise((resolve) => setImmediate(resolve)); // the background re-read settles
      assert.deepEqual(wrapped.leader(), { ...leader, operatorAddr: "h1:8993" });
      assert.equal(wrapped.isLeader(), false);
      leader = { id: "s2", addr: "h2:8991", term: 2 };
      const moved = book.wrap(standbyOf(leader));
      assert.equal(moved.leader()?.operatorAddr, undefined, "a stale heartbeat gives no address");
      const before = lists;
      beats = [heartbeat("s2", "h2:9993")];
      moved.leader();
      assert.equal(lists, before, "no re-read within the interval");
      now = 5_000;
      moved.leader();
      await book.stop();
      assert.equal(lists, before + 1, "one re-read after the interval");
      assert.equal(moved.leader()?.operatorAddr, "h2:9993");
    } finally {
      await book.stop();
    }
  });

  it("keeps the last map when the heartbeats cannot be read", async () => {
    let fail = false;
    const book = new LeaderOperatorAddresses({
      source: {
        list: async () => {
          if (fail) throw new Error("storage down");
          return [heartbeat("s1", "h1:8993")];
        },
      },
      logger: silentLogger,
    });
    await book.refresh();
    fail = true;
    await book.refresh();
    assert.equal(book.operatorOf("s1"), "h1:8993");
    await book.stop();
  });
});
