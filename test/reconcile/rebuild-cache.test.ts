// SPDX-License-Identifier: Apache-2.0
/** rebuildCache: every crash window between row, record and provider, seen by a new leader. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { getLiveInstance } from "../../src/db/instance-lifecycle.js";
import { getInstance, listInstanceDecisions } from "../../src/db/instances-table.js";
import { newInstanceId } from "../../src/providers/instance-id.js";
import { testCreateRequest } from "../../src/providers/testing.js";
import { instanceRecordKey } from "../../src/server/api/registration/instance-record.js";
import { rebuildCache } from "../../src/server/instances/rebuild-cache.js";
import { pendingRecord } from "../../src/server/instances/stored-instance-record.js";
import { silentLogger } from "../../src/shared/logger.js";
import { CLUSTER_ID, PREFIX, SHARD, startReconcileFixture } from "./reconcile-fixture.js";

describe("rebuildCache", () => {
  it("restores rows from records and reconciles them with the provider's list", async () => {
    const f = await startReconcileFixture({ start: false, registerAfterMs: undefined });
    try {
      const at = Date.now() - 60_000;
      const put = async (id: string, fields: Record<string, unknown> = {}) => {
        const rec = {
          ...pendingRecord({
            instanceId: id,
            tenant: "default",
            group: "web",
            template: "web",
            kind: "web",
            arch: "amd64",
            onDemand: false,
            subnetId: "loopback",
            subnetPool: "default",
            instanceType: "",
            vars: {},
            registrationJwt: `jwt-of-${id}`,
            infraConfigHash: "sha256:h",
            runtimeConfigHash: "sha256:r",
            reason: "scale-up",
            createdAt: at,
          }),
          ...fields,
        };
        await f.storage.put(instanceRecordKey(PREFIX, "default", id), JSON.stringify(rec));
      };
      const vm = (id: string) =>
        f.provider.createInstance(
          testCreateRequest({
            instanceId: id,
            instanceKind: "web",
            clusterId: CLUSTER_ID,
            shard: SHARD,
          }),
        );

      const [running, noIdYet, deleting, vanished, preInsert, replacement] = Array.from(
        { length: 6 },
        () => newInstanceId("web"),
      ) as [string, string, string, string, string, string];
      const vmRunning = await vm(running);
      await put(running, {
        provider_instance_id: vmRunning.providerInstanceId,
        registered_at: new Date(at + 1000).toISOString(),
        cert_serial: "42",
      });
      await vm(noIdYet);
      await put(noIdYet);
      const vmDeleting = await vm(deleting);
      await put(deleting, {
        provider_instance_id: vmDeleting.providerInstanceId,
        status: "deleting",
        deleted_at: new Date(at + 5000).toISOString(),
        delete_reason: "drain-timeout",
        drain_reason: "scale-down",
      });
      await put(vanished, { provider_instance_id: "i-gone" });
      await put(preInsert);
      await vm(replacement).then((r) =>
        put(replacement, { provider_instance_id: r.providerInstanceId, replaces: running }),
      );
      await f.storage.put(`${PREFIX}instance/default.garbage.json`, "{not json");
      const stranger = newInstanceId("web");
      await vm(stranger);

      const opts = {
        db: f.db,
        storage: f.storage,
        prefix: PREFIX,
        provider: f.provider,
        clusterId: CLUSTER_ID,
        shard: SHARD,
        logger: silentLogger,
        fence: f.fence,
        term: f.term.term,
      };
      const r = await rebuildCache(opts);
      assert.equal(r.records, 7);
      assert.equal(r.unreadable, 1);
      assert.equal(r.rowsRestored, 6);
      assert.equal(r.providerIdsFilled, 1);
      assert.equal(r.markedDeleted, 1);
      assert.equal(r.deletedVmsRemoved, 1);
      assert.deepEqual(r.unknownVms, [stranger]);

      const row = getInstance(f.db, running)!;
      assert.equal(row.providerId, vmRunning.providerInstanceId);
      assert.equal(row.certSerial, "42");
      assert.equal(row.registeredAt, at + 1000);
      assert.equal(row.nonce, `restored:${running}`, "a spent nonce is not restored");
      assert.equal(getLiveInstance(f.db, running)?.replacedBy, replacement);
      assert.equal(
        getInstance(f.db, preInsert)?.nonce,
        `jwt-of-${preInsert}`,
        "an unspent nonce still registers",
      );
      assert.equal(getInstance(f.db, preInsert)?.providerId, undefined);
      assert.match(getInstance(f.db, noIdYet)?.providerId ?? "", /^i-/);
      assert.equal(getInstance(f.db, deleting)?.deletedAt, at + 5000);
      // Why it left, as the term that deleted it knew (a scale-down drain is surplus to size + 1).
      const gone = listInstanceDecisions(f.db, deleting).at(-1);
      assert.deepEqual(
        [gone?.decision, gone?.reason, gone?.at, gone?.evidence.drain_reason],
        ["deleted", "drain-timeout", at + 5000, "scale-down"],
      );
      assert.equal(
        (await f.provider.getInstanceStatus(deleting, vmDeleting.providerInstanceId))?.status,
        "deleted",
      );
      assert.ok(getInstance(f.db, vanished)?.deletedAt !== undefined);
      assert.equal(listInstanceDecisions(f.db, vanished).at(-1)?.decision, "vanished");
      const rec = JSON.parse(
        (await f.storage.get(instanceRecordKey(PREFIX, "default", vanished)))!.body.toString(),
      );
      assert.equal(rec.status, "deleting");

      const again = await rebuildCache(opts);
      assert.equal(again.rowsRestored, 0, "a second rebuild changes nothing");
      assert.equal(again.markedDeleted, 0);
    } finally {
      await f.close();
    }
  });
});
