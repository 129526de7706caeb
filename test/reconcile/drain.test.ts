// SPDX-License-Identifier: Apache-2.0
/**
 * Drain coordination: a deleted group scales to 0 through `pending_deletion` notices; an
 * acknowledged instance is deleted at once, an unacknowledged one at its deadline. Unhealthy
 * instances are replaced first, then drained (or deleted at once when the VM is gone).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { getInstance, listInstanceDecisions } from "../../src/db/instances-table.js";
import { drainSnapshot } from "../../src/reconcile/drain-snapshot.js";
import { startReconcileFixture, waitFor } from "./reconcile-fixture.js";

const DRAIN_MS = 3000;

describe("drain coordination", () => {
  it("drains a deleted group: the acked instance goes at once, the other at its deadline", async () => {
    // A deleted group's own config is gone: its instances drain for `default_drain_timeout`.
    const f = await startReconcileFixture({
      configEdits: [
        [["groups", "default", "web", "size"], 0],
        [["shard", "default_drain_timeout"], `${DRAIN_MS}ms`],
      ],
    });
    try {
      await f.configStore.upsertGroup("default", "batch", {
        template: "web",
        size: 2,
      });
      await waitFor("2 registered batch instances", () => {
        const live = f.live("batch");
        return (
          live.length === 2 &&
          live.every((r) => getInstance(f.db, r.id)?.registeredAt !== undefined)
        );
      });
      await f.reconciler().whenIdle();
      const [a, b] = f.live("batch").map((r) => r.id) as [string, string];

      const deletedAt = Date.now();
      await f.configStore.deleteGroup("default", "batch");
      await waitFor(
        "2 drain notices",
        () => f.drainEvents.filter((e) => e.status === "pending_deletion").length === 2,
      );
      const notices = f.drainEvents.filter((e) => e.status === "pending_deletion");
      assert.deepEqual(new Set(notices.map((e) => e.instanceId)), new Set([a, b]));
      for (const e of notices) {
        assert.equal(e.reason, "group-deleted");
        assert.equal(e.group, "batch");
        assert.equal(e.tenant, "default");
        assert.match(e.providerInstanceId, /^i-/);
        const ms = e.deleteAt!.getTime() - e.unhealthyAt!.getTime();
        assert.ok(Math.abs(ms - DRAIN_MS) < 50, `deadline ${ms} ms after the notice`);
      }
      assert.equal(
        drainSnapshot(f.db, "default").length,
        2,
        "a new WatchInstances stream sees both",
      );
      assert.equal(drainSnapshot(f.db, "other").length, 0);

      assert.equal(f.reconciler().acknowledgeDrained(a), "acked");
      assert.equal(f.reconciler().acknowledgeDrained(a), "already_acked");
      await waitFor("acked instance deleted", () => getInstance(f.db, a)?.deletedAt !== undefined);
      assert.ok(
        getInstance(f.db, a)!.deletedAt! < deletedAt + DRAIN_MS,
        "the acked instance did not wait for its deadline",
      );
      assert.equal(getInstance(f.db, b)?.deletedAt, undefined, "the other still drains");

      await waitFor(
        "timed-out instance deleted",
        () => getInstance(f.db, b)?.deletedAt !== undefined,
      );
      assert.ok(getInstance(f.db, b)!.deletedAt! >= notices[0]!.deleteAt!.getTime() - 5);
      assert.equal(f.provider.instanceCount(), 0);
      assert.deepEqual(
        listInstanceDecisions(f.db, a)
          .map((d) => d.decision)
          .slice(-3),
        ["drain_notified", "drain_acked", "deleted"],
      );
      assert.deepEqual(
        listInstanceDecisions(f.db, b)
          .map((d) => d.decision)
          .slice(-3),
        ["drain_notified", "drain_timed_out", "deleted"],
      );
      assert.deepEqual(
        new Set(f.drainEvents.filter((e) => e.status === "deleted").map((e) => e.instanceId)),
        new Set([a, b]),
      );
      assert.equal(f.reconciler().acknowledgeDrained(a), "unknown");
      assert.deepEqual(f.checker.violations, []);
    } finally {
      await f.close();
    }
  });

  it("replaces an unhealthy instance first, then drains it; a gone VM is deleted without drain", async () => {
    const f = await startReconcileFixture({ ackAfterMs: 20 });
    try {
      await waitFor(
        "3 registered instances",
        () =>
          f.live().length === 3 &&
          f.live().every((r) => getInstance(f.db, r.id)?.registeredAt !== undefined),
      );
      await f.reconciler().whenIdle();
      const [silent, gone] = f.live().map((r) => r.id) as [string, string];

      assert.equal(
        f.reconciler().markUnhealthy(silent, { reason: "missed-reports", skipDrain: false }),
        true,
      );
      assert.equal(
        f.reconciler().markUnhealthy(silent, { reason: "missed-reports", skipDrain: false }),
        false,
      );
      await waitFor(
        "silent instance replaced and deleted",
        () => getInstance(f.db, silent)?.deletedAt !== undefined,
      );
      const silentHistory = listInstanceDecisions(f.db, silent).map((d) => d.decision);
      assert.deepEqual(silentHistory.slice(-5), [
        "found_unhealthy",
        "replacement_started",
        "drain_notified",
        "drain_acked",
        "deleted",
      ]);

      const notices = f.drainEvents.length;
      assert.equal(
        f.reconciler().markUnhealthy(gone, { reason: "not-found", skipDrain: true }),
        true,
      );
      await waitFor(
        "gone instance deleted",
        () => getInstance(f.db, gone)?.deletedAt !== undefined,
      );
      assert.equal(f.drainEvents.length, notices, "no drain notice for a VM that is gone");
      const goneHistory = listInstanceDecisions(f.db, gone);
      assert.deepEqual(goneHistory.map((d) => d.decision).slice(-3), [
        "found_unhealthy",
        "replacement_started",
        "deleted",
      ]);
      assert.equal(goneHistory.at(-1)?.evidence.skip_drain, true);
      await waitFor("group whole again", () => f.live().length === 3);
      await f.reconciler().whenIdle();
      assert.deepEqual(f.checker.violations, []);
      assert.ok((f.checker.maxCounted.get("default/web") ?? 0) <= 4);
    } finally {
      await f.close();
    }
  });

  it("replaces a spot-noticed instance and drains it within the notice", async () => {
    const f = await startReconcileFixture();
    try {
      await waitFor(
        "3 registered instances",
        () =>
          f.live().length === 3 &&
          f.live().every((r) => getInstance(f.db, r.id)?.registeredAt !== undefined),
      );
      await f.reconciler().whenIdle();
      const doomed = f.live()[2]!.id;
      const deadlineAt = Date.now() + 2000;
      assert.equal(
        f.reconciler().noteTerminationNotice(doomed, { deadlineAt, action: "terminate" }),
        true,
      );
      await waitFor("drain notice", () => f.drainEvents.some((e) => e.instanceId === doomed));
      const notice = f.drainEvents.find((e) => e.instanceId === doomed)!;
      assert.equal(notice.reason, "spot-terminating");
      assert.ok(notice.deleteAt!.getTime() <= deadlineAt, "drain ends by the provider's deadline");
      await waitFor("replacement created", () => f.live().length === 4);
      f.reconciler().acknowledgeDrained(doomed);
      await waitFor("doomed deleted", () => getInstance(f.db, doomed)?.deletedAt !== undefined);
      const history = listInstanceDecisions(f.db, doomed).map((d) => d.decision);
      assert.equal(history[0], "create_requested");
      assert.ok(history.includes("termination_notice"));
      assert.ok(history.indexOf("replacement_started") < history.indexOf("deleted"));
      await waitFor("group whole", () => f.live().length === 3);
      assert.deepEqual(f.checker.violations, []);
    } finally {
      await f.close();
    }
  });
});
