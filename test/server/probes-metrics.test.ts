// SPDX-License-Identifier: Apache-2.0
// Metrics recorded through a real reconciler (fake provider, real SQLite): passes, actions, how
// long after its last report an instance was found unhealthy, and how long its replacement took.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ReconcilerTuning } from "../../src/server/instances/start-shard-management.js";
import { reconcilerMetrics } from "../../src/server/metrics/reconciler-metrics.js";
import { ServerMetrics } from "../../src/server/metrics/server-metrics.js";
import { parseExposition, sampleValue } from "../../src/server/metrics/testing.js";
import { silentLogger } from "../../src/shared/logger.js";
import { startReconcileFixture, waitFor } from "../reconcile/reconcile-fixture.js";

describe("reconciler metrics", () => {
  it("count creates, time passes, detections and replacements", async () => {
    const metrics = new ServerMetrics({ version: "t", serverId: "s1", shard: "local" });
    // The hooks need the fixture's database, so they are filled in before shard management starts.
    const tuning: ReconcilerTuning = {};
    const f = await startReconcileFixture({ start: false, tuning });
    try {
      Object.assign(tuning, reconcilerMetrics(metrics, f.db, silentLogger));
      await f.start();
      await waitFor("three registered instances", () => f.live().length === 3);
      await f.reconciler().whenIdle();

      const [victim] = f.live();
      const lastReportAt = Date.now() - 7_000;
      f.db.prepare("UPDATE instances SET health_at = ? WHERE id = ?").run(lastReportAt, victim!.id);
      assert.ok(f.reconciler().markUnhealthy(victim!.id, { reason: "not-found", skipDrain: true }));
      await waitFor("the replacement and the deletion", () => {
        const ids = f.live().map((i) => i.id);
        return ids.length === 3 && !ids.includes(victim!.id);
      });
      await f.reconciler().whenIdle();

      const samples = parseExposition((await metrics.exposition()).body);
      const v = (name: string, labels: Record<string, string> = {}) =>
        sampleValue(samples, name, labels);
      assert.equal(v("nstance_reconcile_actions_total", { action: "create", outcome: "done" }), 4);
      assert.equal(v("nstance_reconcile_actions_total", { action: "delete", outcome: "done" }), 1);
      assert.ok((v("nstance_reconcile_duration_seconds_count") ?? 0) >= 2);
      assert.equal(v("nstance_unhealthy_detection_seconds_count", { reason: "not-found" }), 1);
      const detection = v("nstance_unhealthy_detection_seconds_sum", { reason: "not-found" }) ?? 0;
      // Seven seconds since the last report, plus however long the test took to get here.
      assert.ok(detection >= 7 && detection < 7 + 60, `detection ${detection}`);
      assert.equal(v("nstance_replacements_total", { reason: "unhealthy" }), 1);
      assert.equal(v("nstance_replacement_duration_seconds_count", { reason: "unhealthy" }), 1);
      const replacement = v("nstance_replacement_duration_seconds_sum", { reason: "unhealthy" });
      assert.ok(replacement !== undefined && replacement >= 0 && replacement < 60);
    } finally {
      await f.close();
    }
  });
});
