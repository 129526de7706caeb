// SPDX-License-Identifier: Apache-2.0
// Issue 6 "Done when", end to end with the `local` provider: a config refresh that changes the
// group's `instance_type` (infrastructure drift) rotates the group one instance at a time, oldest
// first: each replacement is created and registered before the instance it replaces drains, at
// most size + 1 agents run at any moment, and no two rotations drain at once.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  FLEET_GROUP,
  FLEET_TENANT,
  type FleetRow,
  leaveReason,
  TestFleet,
} from "./local-fleet-fixture.js";

const SIZE = 3;

describe("local fleet: an instance_type change rotates the group", { concurrency: false }, () => {
  let tf: TestFleet;
  let first: FleetRow[] = [];

  before(async () => {
    tf = await TestFleet.start({
      name: "drift",
      size: SIZE,
      edits: [[["groups", FLEET_TENANT, FLEET_GROUP, "instance_type"], "small"]],
    });
    first = await tf.waitSettled(SIZE);
  });
  after(async () => {
    await tf?.stop();
  });

  it("replaces every instance, one at a time, with the new instance type", async (t) => {
    const oldHash = tf.infraHash();
    assert.ok(first.every((r) => r.instanceType === "small"));
    const startedAt = Date.now();
    await tf.changeConfig([[["groups", FLEET_TENANT, FLEET_GROUP, "instance_type"], "large"]]);
    await tf.waitFor("the group's infra hash to change (instance_type is part of it)", () => {
      const h = tf.infraHash();
      return h !== undefined && h !== oldHash;
    });

    const firstIds = new Set(first.map((r) => r.id));
    await tf.waitFor("every original instance replaced", () =>
      tf.rows().every((r) => !firstIds.has(r.id) || r.deletedAt !== undefined),
    );
    const now = await tf.waitSettled(SIZE, `${SIZE} new instances registered and reporting`);
    t.diagnostic(`rotated ${SIZE} instances in ${Date.now() - startedAt} ms`);

    // The new instances run the new type, as the provider was asked.
    assert.ok(now.every((r) => !firstIds.has(r.id) && r.instanceType === "large"));
    const agents = await tf.agents();
    assert.deepEqual(
      agents.map((a) => [a.id, a.instanceType, a.alive]),
      now.map((r) => [r.id, "large", true]).sort(),
    );

    // Each original left for config-drift through a drain, after its replacement had registered,
    // oldest first, and the next rotation began only after the previous one finished.
    const rows = new Map(tf.rows().map((r) => [r.id, r]));
    const decisions = tf.decisions();
    const olds = first.map((r) => rows.get(r.id)!);
    for (const old of olds) {
      assert.equal(leaveReason(old, decisions), "config-drift", old.id);
      assert.ok(old.drainStartedAt !== undefined, `${old.id} drained`);
      const repl = rows.get(old.replacedBy ?? "");
      assert.ok(repl, `${old.id} has a replacement`);
      assert.equal(repl.instanceType, "large");
      assert.ok(
        repl.registeredAt !== undefined && repl.registeredAt <= old.drainStartedAt,
        `${old.id}'s replacement registered before the drain began`,
      );
    }
    const drainOrder = [...olds].sort((a, b) => a.drainStartedAt! - b.drainStartedAt!);
    assert.deepEqual(
      drainOrder.map((r) => r.id),
      olds.map((r) => r.id),
      "oldest rotated first",
    );
    for (let i = 1; i < olds.length; i++) {
      const prev = olds[i - 1]!;
      const next = rows.get(olds[i]!.replacedBy!)!;
      assert.ok(
        next.createdAt >= prev.deletedAt!,
        `rotation of ${olds[i]!.id} began (${next.createdAt}) after ${prev.id} was gone (${prev.deletedAt})`,
      );
    }
    assert.equal(tf.rows().length, 2 * SIZE, "exactly one replacement per instance");
  });

  it("kept every invariant throughout", async (t) => {
    await tf.sampler.sample();
    t.diagnostic(
      `${tf.sampler.samples} samples, at most ${tf.sampler.maxAliveAgents} agents alive at once`,
    );
    assert.ok(tf.sampler.maxAliveAgents <= SIZE + 1, `max ${tf.sampler.maxAliveAgents} agents`);
    assert.deepEqual(tf.sampler.violations, []);
    assert.deepEqual(tf.historyViolations(), []);
  });
});
