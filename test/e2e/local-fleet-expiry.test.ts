// SPDX-License-Identifier: Apache-2.0
// Issue 6 "Done when", end to end with the `local` provider: with `expiry.eligible_age` set, every
// instance is replaced once it reaches that age, one at a time (opportunistic expiry), never
// before it, each after its replacement registered, with never more than size + 1 agents alive.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type FleetRow, leaveReason, TestFleet } from "./local-fleet-fixture.js";

const SIZE = 3;
/** Long enough for the group to settle first, short enough to keep the test quick. */
const ELIGIBLE_AGE_MS = 10_000;

describe("local fleet: eligible_age expiry replaces every instance", { concurrency: false }, () => {
  let tf: TestFleet;
  let first: FleetRow[] = [];

  before(async () => {
    tf = await TestFleet.start({
      name: "expiry",
      size: SIZE,
      edits: [[["shard", "expiry"], { eligible_age: `${ELIGIBLE_AGE_MS / 1000}s` }]],
    });
    first = await tf.waitSettled(SIZE);
  });
  after(async () => {
    await tf?.stop();
  });

  it("replaces each original instance at or after its eligible age, oldest first", async (t) => {
    const firstIds = new Set(first.map((r) => r.id));
    const startedAt = Date.now();
    await tf.waitFor("every original instance expired and deleted", () =>
      tf.rows().every((r) => !firstIds.has(r.id) || r.deletedAt !== undefined),
    );
    t.diagnostic(`the ${SIZE} originals were gone ${Date.now() - startedAt} ms after settling`);

    const rows = new Map(tf.rows().map((r) => [r.id, r]));
    const decisions = tf.decisions();
    const olds = first.map((r) => rows.get(r.id)!);
    for (const old of olds) {
      assert.equal(leaveReason(old, decisions), "eligible-expiry", old.id);
      assert.ok(old.drainStartedAt !== undefined, `${old.id} drained`);
      assert.ok(
        old.drainStartedAt - old.createdAt >= ELIGIBLE_AGE_MS,
        `${old.id} expired at age ${old.drainStartedAt - old.createdAt} ms, not before ${ELIGIBLE_AGE_MS}`,
      );
      const repl = rows.get(old.replacedBy ?? "");
      assert.ok(repl, `${old.id} has a replacement`);
      assert.ok(
        repl.registeredAt !== undefined && repl.registeredAt <= old.drainStartedAt,
        `${old.id}'s replacement registered before the drain began`,
      );
    }
    assert.deepEqual(
      [...olds].sort((a, b) => a.drainStartedAt! - b.drainStartedAt!).map((r) => r.id),
      olds.map((r) => r.id),
      "oldest expired first",
    );
    // The group is whole again (its new instances expire in turn later; that goes on).
    await tf.waitFor(`${SIZE} instances alive and registered`, () => {
      const live = tf.live();
      return live.length >= SIZE && live.every((r) => r.registeredAt !== undefined);
    });
  });

  it("never had more than size + 1 alive, and kept every invariant", async (t) => {
    await tf.sampler.sample();
    t.diagnostic(
      `${tf.sampler.samples} samples, at most ${tf.sampler.maxAliveAgents} agents alive at once`,
    );
    assert.ok(tf.sampler.maxAliveAgents <= SIZE + 1, `max ${tf.sampler.maxAliveAgents} agents`);
    assert.deepEqual(tf.sampler.violations, []);
    assert.deepEqual(tf.historyViolations(), []);
  });
});
