// SPDX-License-Identifier: Apache-2.0
// Issue 6 "Done when", end to end with the `local` provider: a real nstance-server process whose
// instances are real nstance-agent processes. A group of 3 comes up registered and reporting; it
// is scaled 3→5→1 through the Operator API (`nstance-admin group scale`), and scale-down removes
// the oldest first. The invariants (size + 1, one rotation draining, replacement first) are
// sampled throughout and checked over the whole recorded history at the end.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { FLEET_GROUP, type FleetRow, leaveReason, TestFleet } from "./local-fleet-fixture.js";

describe("local fleet: registration and scaling", { concurrency: false }, () => {
  let tf: TestFleet;
  let first: FleetRow[] = [];

  before(async () => {
    tf = await TestFleet.start({ name: "scale", size: 3 });
  });
  after(async () => {
    await tf?.stop();
  });

  it("a group of 3 comes up: every agent registers and reports health", async (t) => {
    const startedAt = Date.now();
    first = await tf.waitSettled(3);
    t.diagnostic(`3 agents registered and reporting after ${Date.now() - startedAt} ms`);

    const agents = await tf.agents();
    assert.deepEqual(
      agents.map((a) => a.id),
      first.map((r) => r.id).sort(),
      "one agent process per instance",
    );
    assert.equal(new Set(agents.map((a) => a.pid)).size, 3, "three distinct processes");
    for (const r of first) {
      assert.ok(r.healthAt !== undefined && r.healthAt >= r.registeredAt!, `${r.id} reported`);
      assert.equal(r.health?.instance_id, r.id, "the report is the instance's own");
      const log = await tf.fleet.agentLog(r.id);
      assert.ok(
        log.some((l) => l.msg === "Registered"),
        `${r.id}'s agent says it registered`,
      );
    }
    // The operator sees the same: size 3, 3 actual, the provider's handles of these instances.
    const status = await tf.groupStatus();
    assert.equal(status.size, 3);
    assert.equal(status.actual_size, 3);
    assert.deepEqual(
      [...status.provider_ids].sort(),
      first.map((r) => `nstance-agent-${r.id}`).sort(),
    );
  });

  it("scales 3→5, keeping the first three", async (t) => {
    const startedAt = Date.now();
    await tf.scale(5);
    const five = await tf.waitSettled(5);
    t.diagnostic(`5 registered after ${Date.now() - startedAt} ms`);
    const ids = five.map((r) => r.id);
    for (const r of first) assert.ok(ids.includes(r.id), `${r.id} kept`);
    assert.equal(
      tf.rows().filter((r) => r.deletedAt !== undefined).length,
      0,
      "scale-up deletes nothing",
    );
    assert.ok(tf.sampler.maxAliveAgents <= 6, `max ${tf.sampler.maxAliveAgents} agents`);
  });

  it("scales 5→1, removing the oldest first through drain", async (t) => {
    const five = tf.live();
    assert.equal(five.length, 5);
    const startedAt = Date.now();
    await tf.scale(1);
    const [survivor] = await tf.waitSettled(1, "1 instance left, its agent the only one running");
    tf.settled();
    t.diagnostic(`scaled down to 1 after ${Date.now() - startedAt} ms`);

    // The youngest stays; the four oldest left for scale-down, each through a drain.
    assert.equal(survivor!.id, five.at(-1)!.id, "the newest instance is the one kept");
    const decisions = tf.decisions();
    const byId = new Map(tf.rows().map((r) => [r.id, r]));
    for (const old of five.slice(0, 4)) {
      const row = byId.get(old.id)!;
      assert.ok(row.deletedAt !== undefined, `${old.id} deleted`);
      assert.equal(leaveReason(row, decisions), "scale-down");
      assert.ok(row.drainStartedAt !== undefined, `${old.id} was drained before deletion`);
      assert.ok(row.deletedAt >= row.drainStartedAt, `${old.id} deleted after its drain began`);
    }
    // Their processes are gone and their directories with them (logs kept under deleted/).
    const agents = await tf.agents();
    assert.deepEqual(
      agents.map((a) => a.id),
      [survivor!.id],
    );
    const status = await tf.groupStatus();
    assert.equal(status.size, 1);
    assert.equal(status.actual_size, 1);
  });

  it("kept every invariant throughout", async (t) => {
    await tf.sampler.sample();
    t.diagnostic(
      `${tf.sampler.samples} samples, at most ${tf.sampler.maxAliveAgents} agents alive at once`,
    );
    assert.deepEqual(tf.sampler.violations, []);
    assert.deepEqual(tf.historyViolations(), []);
    assert.equal(
      tf.rows().length,
      5,
      `no instance beyond the five scale-up made: ${FLEET_GROUP} ${JSON.stringify(tf.rows().map((r) => r.id))}`,
    );
  });
});
