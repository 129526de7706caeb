// SPDX-License-Identifier: Apache-2.0
/** Garbage collection: never-registered instances, stale pre-inserts and old deleted records. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { recordDecision } from "../../src/db/decisions-table.js";
import { markInstanceDeleted } from "../../src/db/instance-lifecycle.js";
import {
  getInstance,
  insertPendingInstance,
  listInstanceDecisions,
} from "../../src/db/instances-table.js";
import { newInstanceId } from "../../src/providers/instance-id.js";
import { instanceRecordKey } from "../../src/server/api/registration/instance-record.js";
import { GarbageCollector } from "../../src/server/gc/garbage-collector.js";
import { silentLogger } from "../../src/shared/logger.js";
import { PREFIX, startReconcileFixture, waitFor } from "./reconcile-fixture.js";

const MIN = 60_000;

describe("GarbageCollector", () => {
  it("deletes never-registered instances and purges old deleted records", async () => {
    const f = await startReconcileFixture({ start: false });
    try {
      const now = Date.now();
      const row = (id: string, createdAt: number, providerId?: string) => {
        insertPendingInstance(f.db, {
          id,
          tenant: "default",
          groupKey: "web",
          nonce: `n-${id}`,
          infraConfigHash: "h",
          createdAt,
        });
        if (providerId)
          f.db.prepare("UPDATE instances SET provider_id = ? WHERE id = ?").run(providerId, id);
      };
      const [dangling, preInsert, young, registered, oldDeleted, recentDeleted] = Array.from(
        { length: 6 },
        () => newInstanceId("web"),
      ) as [string, string, string, string, string, string];
      row(dangling, now - 10 * MIN, "i-1");
      row(preInsert, now - 10 * MIN);
      row(young, now - MIN, "i-3");
      row(registered, now - 10 * MIN, "i-4");
      f.db
        .prepare("UPDATE instances SET registered_at = ? WHERE id = ?")
        .run(now - 9 * MIN, registered);
      row(oldDeleted, now - 90 * MIN, "i-5");
      markInstanceDeleted(f.db, oldDeleted, now - 40 * MIN, "deleting");
      recordDecision(f.db, {
        instanceId: oldDeleted,
        decision: "deleted",
        reason: "x",
        at: now - 40 * MIN,
      });
      row(recentDeleted, now - 90 * MIN, "i-6");
      markInstanceDeleted(f.db, recentDeleted, now - 10 * MIN, "deleting");
      for (const id of [oldDeleted, recentDeleted]) {
        await f.storage.put(instanceRecordKey(PREFIX, "default", id), "{}");
      }

      const deleted: Array<[string, string]> = [];
      const gc = new GarbageCollector({
        db: f.db,
        storage: f.storage,
        prefix: PREFIX,
        fence: f.fence,
        settings: () => ({
          intervalMs: MIN,
          registrationTimeoutMs: 5 * MIN,
          deletedRecordRetentionMs: 30 * MIN,
        }),
        deleteInstance: async (id, o) => {
          deleted.push([id, o.reason]);
          markInstanceDeleted(f.db, id, Date.now(), "deleting");
        },
        logger: silentLogger,
      });
      assert.equal(gc.intervalMs, MIN);
      const result = await gc.runOnce(f.term.term);
      assert.deepEqual(result, { unregisteredDeleted: 2, purged: 1, failures: 0 });
      assert.deepEqual(
        new Map(deleted),
        new Map([
          [dangling, "registration-timeout"],
          [preInsert, "stale-pre-insert"],
        ]),
      );
      assert.equal(getInstance(f.db, oldDeleted), undefined, "row purged");
      assert.deepEqual(listInstanceDecisions(f.db, oldDeleted), [], "history purged with it");
      assert.equal(
        await f.storage.get(instanceRecordKey(PREFIX, "default", oldDeleted)),
        undefined,
      );
      assert.ok(getInstance(f.db, recentDeleted), "kept within retention");
      assert.ok(await f.storage.get(instanceRecordKey(PREFIX, "default", recentDeleted)));

      f.term.revoke();
      await assert.rejects(gc.runOnce(f.term.term), { name: "StaleTermError" });
    } finally {
      await f.close();
    }
  });

  it("runs as a leader loop that replaces instances whose agents never register", async () => {
    const f = await startReconcileFixture({
      registerAfterMs: undefined,
      gc: true,
      configEdits: [
        [["groups", "default", "web", "size"], 2],
        [["shard", "garbage_collection"], { interval: "100ms", registration_timeout: "700ms" }],
      ],
    });
    try {
      await waitFor("2 instances", () => f.live().length === 2);
      const first = f.live().map((r) => r.id);
      await waitFor(
        "both reaped and replaced",
        () =>
          first.every((id) => getInstance(f.db, id)?.deletedAt !== undefined) &&
          f.live().length === 2,
      );
      for (const id of first) {
        const last = listInstanceDecisions(f.db, id).at(-1);
        assert.equal(last?.decision, "deleted");
        assert.equal(last?.reason, "registration-timeout");
      }
    } finally {
      await f.close();
    }
  });
});
