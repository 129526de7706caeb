// SPDX-License-Identifier: Apache-2.0
/** Leadership-term fencing: work of an ended term never reaches the provider. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { getInstance, listInstanceDecisions } from "../../src/db/instances-table.js";
import { MemoryStorage } from "../../src/storage/memory-storage.js";
import type { PutOptions } from "../../src/storage/object-storage.js";
import { startReconcileFixture, type TestTerm, waitFor } from "./reconcile-fixture.js";

/** A bucket that ends the term right after the first instance record is written. */
class LeaseLapsingStorage extends MemoryStorage {
  term: TestTerm | undefined;
  lapsedAfter: string | undefined;
  override async put(key: string, body: Buffer | string, opts?: PutOptions): Promise<string> {
    const etag = await super.put(key, body, opts);
    if (this.term && this.lapsedAfter === undefined && key.includes("/instance/")) {
      this.lapsedAfter = key;
      this.term.revoke();
    }
    return etag;
  }
}

describe("term fencing", () => {
  it("drops a create whose term ended between its record and the provider call", async () => {
    const storage = new LeaseLapsingStorage();
    const f = await startReconcileFixture({ storage, start: false });
    try {
      storage.term = f.term;
      const mgmt = await f.start();
      await waitFor("the term to lapse", () => storage.lapsedAfter !== undefined);
      await waitFor("the reconciler to stop", () => mgmt.reconciler.state === "stopped");
      assert.equal(f.provider.counters().createCalls, 0, "the provider was never called");
      assert.equal(f.provider.instanceCount(), 0);
      const dropped = f.checker.actions.filter((a) => a.outcome === "dropped");
      assert.equal(dropped.length, 1);
      assert.equal(mgmt.reconciler.stats().actionsDropped, 1);
      const id = dropped[0]!.instanceId;
      assert.ok(getInstance(f.db, id)?.deletedAt !== undefined, "the local row is abandoned");
      assert.equal(listInstanceDecisions(f.db, id).at(-1)?.decision, "create_failed");
      // The record stays `pending` (a stale term writes nothing): the next leader's GC reaps it.
      const rec = JSON.parse((await storage.get(storage.lapsedAfter!))!.body.toString());
      assert.equal(rec.status, "pending");
      await assert.rejects(mgmt.reconciler.createOnDemand("default", "web"), {
        code: "unavailable",
      });
    } finally {
      await f.close();
    }
  });

  it("drops queued events of another term and stops when its term's signal aborts", async () => {
    // Quiet: no agents registering and no resync, so every pass below is one the test caused.
    const f = await startReconcileFixture({
      registerAfterMs: undefined,
      tuning: { resyncIntervalMs: 600_000 },
    });
    try {
      await waitFor("3 instances", () => f.live().length === 3);
      const r = f.reconciler();
      await r.whenIdle();
      const passes = r.stats().passes;
      r.enqueue({ term: r.term - 1, trigger: "resync" });
      r.enqueue({ term: r.term + 1, trigger: "resync" });
      await waitFor("stale events dropped", () => r.stats().staleEventsDropped === 2);
      await r.whenIdle();
      assert.equal(r.stats().passes, passes, "no pass for stale events");

      const calls = f.provider.counters().createCalls;
      f.term.advance();
      await waitFor("stopped", () => r.state === "stopped");
      r.groupChanged("default", "web");
      await f.configStore.upsertGroup("default", "web", { size: 5 });
      assert.equal(r.stats().passes, passes);
      assert.equal(
        f.provider.counters().createCalls,
        calls,
        "an old term's reconciler does nothing",
      );
    } finally {
      await f.close();
    }
  });

  it("bounds its queue: events past capacity are dropped, and a queued one still brings a pass", async () => {
    const f = await startReconcileFixture({
      registerAfterMs: undefined,
      tuning: { queueCapacity: 3, resyncIntervalMs: 600_000 },
    });
    try {
      await waitFor("3 instances", () => f.live().length === 3);
      const r = f.reconciler();
      await r.whenIdle();
      const passes = r.stats().passes;
      for (let i = 0; i < 10; i++) r.instanceChanged(`web-${i}`);
      assert.equal(r.stats().eventsDropped, 7);
      await r.whenIdle();
      assert.equal(r.stats().passes, passes + 1, "the 3 queued events share one pass");
    } finally {
      await f.close();
    }
  });
});
