// SPDX-License-Identifier: Apache-2.0
/** Scale up, scale down (oldest first), backfill and on-demand instances, on the fake provider. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { listInstanceDecisions } from "../../src/db/instances-table.js";
import { instanceRecordKey } from "../../src/server/api/registration/instance-record.js";
import { PREFIX, startReconcileFixture, waitFor } from "./reconcile-fixture.js";

describe("reconciler scaling", () => {
  it("scales a group from 0 to 3 with a record, a VM and a history for each instance", async () => {
    const f = await startReconcileFixture({
      configEdits: [[["groups", "default", "web", "size"], 0]],
    });
    try {
      await f.reconciler().whenIdle();
      assert.equal(f.live().length, 0);
      assert.equal(f.provider.counters().createCalls, 0);

      await f.configStore.upsertGroup("default", "web", { size: 3 });
      await waitFor("3 instances", () => f.live().length === 3 && f.provider.instanceCount() === 3);
      await f.reconciler().whenIdle();
      assert.equal(f.live().length, 3);
      assert.equal(f.provider.counters().creates, 3);
      for (const { id } of f.live()) {
        const obj = await f.storage.get(instanceRecordKey(PREFIX, "default", id));
        assert.ok(obj, `record of ${id}`);
        const rec = JSON.parse(obj.body.toString()) as Record<string, unknown>;
        assert.equal(rec.status, "pending");
        assert.match(String(rec.provider_instance_id), /^i-/);
        assert.equal(rec.group, "web");
        assert.deepEqual(
          listInstanceDecisions(f.db, id).map((d) => d.decision),
          ["create_requested", "created"],
        );
      }
      assert.deepEqual(f.checker.violations, []);
    } finally {
      await f.close();
    }
  });

  it("scales 3 → 5 → 1 and keeps the newest instance (oldest removed first)", async () => {
    const f = await startReconcileFixture({
      configEdits: [[["groups", "default", "web", "drain_timeout"], "0s"]],
    });
    try {
      await waitFor("3 instances", () => f.live().length === 3);
      await f.configStore.upsertGroup("default", "web", { size: 5 });
      await waitFor("5 instances", () => f.live().length === 5);
      await f.reconciler().whenIdle();
      const five = f.live().map((r) => r.id);
      assert.equal(new Set(five).size, 5);

      await f.configStore.upsertGroup("default", "web", { size: 1 });
      await waitFor("1 instance", () => f.live().length === 1);
      await f.reconciler().whenIdle();
      assert.deepEqual(
        f.live().map((r) => r.id),
        [five[4]],
        "the newest instance survives",
      );
      for (const id of five.slice(0, 4)) {
        const last = listInstanceDecisions(f.db, id).at(-1);
        assert.equal(last?.decision, "deleted");
        assert.equal(last?.reason, "scale-down");
      }
      assert.equal(f.provider.instanceCount(), 1);
      assert.equal(f.provider.counters().creates, 5, "no create beyond the 5 wanted");
      assert.deepEqual(f.checker.violations, []);
      assert.ok((f.checker.maxCounted.get("default/web") ?? 0) <= 5);
    } finally {
      await f.close();
    }
  });

  it("backfills a deleted instance and never counts on-demand instances", async () => {
    const f = await startReconcileFixture();
    try {
      await waitFor("3 instances", () => f.live().length === 3);
      const od = await f.reconciler().createOnDemand("default", "web");
      assert.equal(od.status === "pending" || od.status === "running", true);
      await f.reconciler().whenIdle();
      assert.equal(f.live().length, 3, "on-demand instances are not managed");
      assert.equal(f.provider.instanceCount(), 4);

      const victim = f.live()[0]!.id;
      assert.equal(await f.reconciler().deleteInstance(victim), "deleting");
      assert.equal(await f.reconciler().deleteInstance(victim), "unknown", "idempotent");
      await waitFor(
        "backfill",
        () => f.live().length === 3 && !f.live().some((r) => r.id === victim),
      );
      assert.equal(await f.reconciler().deleteInstance(od.instanceId), "deleting");
      await f.reconciler().whenIdle();
      assert.equal(f.provider.instanceCount(), 3);
      await assert.rejects(f.reconciler().createOnDemand("default", "nope"), { code: "not_found" });
      assert.deepEqual(f.checker.violations, []);
    } finally {
      await f.close();
    }
  });
});
