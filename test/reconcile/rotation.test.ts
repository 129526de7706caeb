// SPDX-License-Identifier: Apache-2.0
/**
 * Rotations: an infrastructure change (instance_type) and `eligible_age` expiry replace every
 * instance one at a time, each replacement created (and registered) before the old one drains,
 * with never more than size + 1 instances.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { getInstance, listInstanceDecisions } from "../../src/db/instances-table.js";
import { startReconcileFixture, waitFor } from "./reconcile-fixture.js";

describe("rotations", () => {
  it("rotates a drifted group one instance at a time, through drain", async () => {
    const f = await startReconcileFixture({ ackAfterMs: 30 });
    try {
      await waitFor(
        "3 registered instances",
        () =>
          f.live().length === 3 &&
          f.live().every((r) => getInstance(f.db, r.id)?.registeredAt !== undefined),
      );
      await f.reconciler().whenIdle();
      const before = f.live().map((r) => r.id);
      const oldHash = f.group("web")!.infraHash;

      await f.configStore.upsertGroup("default", "web", { instance_type: "large" });
      const newHash = f.group("web")!.infraHash;
      assert.notEqual(newHash, oldHash);
      await waitFor("every instance on the new infra hash", () => {
        const live = f.live();
        return live.length === 3 && live.every((r) => r.infraHash === newHash);
      });
      await f.reconciler().whenIdle();

      assert.ok(before.every((id) => getInstance(f.db, id)?.deletedAt !== undefined));
      assert.equal(f.provider.counters().creates, 6, "exactly one replacement per instance");
      for (const id of f.live().map((r) => r.id)) {
        assert.equal(getInstance(f.db, id)?.instanceType, "large");
      }
      for (const id of before) {
        const decisions = listInstanceDecisions(f.db, id).map((d) => `${d.decision}:${d.reason}`);
        assert.deepEqual(decisions.slice(-4), [
          "replacement_started:config-drift",
          "drain_notified:config-drift",
          "drain_acked:config-drift",
          "deleted:drain-acked",
        ]);
      }
      // One at a time: each drain notice follows the previous instance's deletion.
      const notices = f.drainEvents.filter((e) => e.status === "pending_deletion");
      assert.equal(notices.length, 3);
      assert.deepEqual(f.checker.violations, []);
      assert.ok((f.checker.maxCounted.get("default/web") ?? 0) <= 4);
    } finally {
      await f.close();
    }
  });

  it("replaces every instance past eligible_age with never more than size + 1 alive", async () => {
    const f = await startReconcileFixture({
      configEdits: [
        [["shard", "expiry"], { eligible_age: "2s" }],
        [["groups", "default", "web", "drain_timeout"], "0s"],
      ],
    });
    try {
      await waitFor("3 instances", () => f.live().length === 3);
      const originals = f.live().map((r) => r.id);
      await waitFor(
        "every original instance replaced",
        () => originals.every((id) => getInstance(f.db, id)?.deletedAt !== undefined),
        30_000,
      );
      await waitFor("group whole", () => f.live().length === 3);
      for (const id of originals) {
        const history = listInstanceDecisions(f.db, id);
        assert.equal(history.at(-1)?.decision, "deleted");
        assert.equal(history.at(-1)?.reason, "eligible-expiry");
        const replacement = history.find((d) => d.decision === "replacement_started")?.evidence
          .replacement_id as string;
        assert.ok(replacement, `${id} had a replacement`);
        assert.ok(
          getInstance(f.db, replacement)!.createdAt < getInstance(f.db, id)!.deletedAt!,
          "replacement created before the old instance was deleted",
        );
      }
      assert.deepEqual(f.checker.violations, []);
      assert.ok(
        (f.checker.maxAlive.get("default/web") ?? 0) <= 4,
        "never more than size + 1 alive",
      );
    } finally {
      await f.close();
    }
  });
});
