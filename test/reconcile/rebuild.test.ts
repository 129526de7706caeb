// SPDX-License-Identifier: Apache-2.0
/**
 * Cache rebuild on leadership: deleting `--cachedir` and starting a new term over the same bucket
 * and provider creates no duplicate and loses no instance; a VM that vanished meanwhile is noticed
 * and backfilled.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { getInstance, listInstanceDecisions } from "../../src/db/instances-table.js";
import { FakeProvider } from "../../src/providers/fake/fake-provider.js";
import { instanceRecordKey } from "../../src/server/api/registration/instance-record.js";
import { updateJsonObject } from "../../src/server/api/update-json-object.js";
import { FileStorage } from "../../src/storage/file-storage.js";
import { PREFIX, startReconcileFixture, waitFor } from "./reconcile-fixture.js";

describe("cache rebuild", () => {
  it("restarts with an empty cache dir: same instances, no duplicates, vanished VM backfilled", async () => {
    const root = await mkdtemp(join(tmpdir(), "nstance-rebuild-"));
    const storage = new FileStorage({ dir: join(root, "bucket"), fsync: false });
    const provider = new FakeProvider({ createDelayMs: 0, deleteDelayMs: 0 });
    try {
      const first = await startReconcileFixture({
        storage,
        provider,
        cachedir: join(root, "cache-1"),
        registerAfterMs: undefined,
      });
      let ids: string[];
      try {
        await waitFor("3 instances", () => first.live().length === 3);
        await first.reconciler().whenIdle();
        ids = first.live().map((r) => r.id);
        // Agents register (as RegisterAgent would: row and record).
        for (const id of ids) {
          first.db
            .prepare(
              "UPDATE instances SET registered_at = ?, instance_pub = 'k', cert_serial = '7' WHERE id = ?",
            )
            .run(Date.now(), id);
          await updateJsonObject(storage, instanceRecordKey(PREFIX, "default", id), (c) => ({
            ...c,
            registered_at: new Date().toISOString(),
            cert_serial: "7",
          }));
        }
      } finally {
        await first.close();
      }
      const createsBefore = provider.counters().creates;

      // The server is gone and its cache dir with it; the second server never saw the first's DB.
      await rm(join(root, "cache-1"), { recursive: true, force: true });
      const second = await startReconcileFixture({
        storage,
        provider,
        cachedir: join(root, "cache-2"),
        registerAfterMs: undefined,
        start: false,
      });
      try {
        second.term.advance();
        const mgmt = await second.start();
        assert.equal(mgmt.rebuild.rowsRestored, 3);
        assert.equal(mgmt.rebuild.providerInstances, 3);
        assert.deepEqual(mgmt.rebuild.unknownVms, []);
        await second.reconciler().whenIdle();
        assert.deepEqual(
          second.live().map((r) => r.id),
          ids,
          "same instances, same order",
        );
        assert.equal(provider.counters().creates, createsBefore, "no duplicate created");
        for (const id of ids) {
          const row = getInstance(second.db, id)!;
          assert.ok(row.registeredAt !== undefined, "registration survives the rebuild");
          assert.match(row.providerId ?? "", /^i-/);
          assert.equal(row.certSerial, "7");
        }
        await second.stopManagement();

        // A VM disappears behind nstance's back; the next leader notices and backfills.
        provider.removeInstance(ids[1]!);
        second.term.advance();
        const again = await second.start();
        assert.equal(again.rebuild.markedDeleted, 1);
        await waitFor("backfilled", () => second.live().length === 3);
        await second.reconciler().whenIdle();
        assert.ok(getInstance(second.db, ids[1]!)?.deletedAt !== undefined);
        assert.equal(listInstanceDecisions(second.db, ids[1]!).at(-1)?.decision, "vanished");
        assert.equal(provider.counters().creates, createsBefore + 1);
        assert.deepEqual(second.checker.violations, []);
      } finally {
        await second.close();
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
