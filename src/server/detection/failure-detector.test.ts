// SPDX-License-Identifier: Apache-2.0
// FailureDetector against a real reconciler, SQLite and the fake provider (test/reconcile's
// fixture): lost streams, the sweep, verdicts with and without drain, recovery under the
// mass-failure guard, provider errors. Agents are simulated by writing `health_at`.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type ReconcileFixture,
  startReconcileFixture,
  waitFor,
} from "../../../test/reconcile/reconcile-fixture.js";
import { getInstance, listInstanceDecisions } from "../../db/instances-table.js";
import type { ErrorEvent } from "../../protocol/gen/nstance/v1/operator.js";
import { ProviderError } from "../../providers/provider.js";
import { TenantEvents } from "../../reconcile/tenant-events.js";
import { silentLogger } from "../../shared/logger.js";
import { sleep } from "../../shared/sleep.js";
import type { DetectionSettings } from "./detection-settings.js";
import { FailureDetector, type FailureDetectorOptions } from "./failure-detector.js";

/** Report interval of the simulated agents. */
const INTERVAL_MS = 200;

function settings(o: Partial<DetectionSettings> = {}): DetectionSettings {
  return {
    reportIntervalMs: INTERVAL_MS,
    sweepIntervalMs: 60_000,
    missedReports: 3,
    statusTimeoutMs: 5_000,
    decisionRetentionMs: 3_600_000,
    ...o,
  };
}

interface Setup {
  f: ReconcileFixture;
  d: FailureDetector;
  errors: ErrorEvent[];
  ids: string[];
  /** Simulates a report: `health_at` = now (or `at`). */
  report(id: string, at?: number): void;
  decisions(id: string): string[];
  close(): Promise<void>;
}

async function setup(o: Partial<FailureDetectorOptions> = {}, guard = false): Promise<Setup> {
  const f = await startReconcileFixture({
    ackAfterMs: 20,
    ...(guard ? {} : { tuning: { guard: { maxUnhealthyFraction: 1, maxUnhealthyCount: 3 } } }),
  });
  await waitFor(
    "3 registered instances",
    () =>
      f.live().length === 3 &&
      f.live().every((r) => getInstance(f.db, r.id)?.registeredAt !== undefined),
  );
  await f.reconciler().whenIdle();
  const report = (id: string, at = Date.now()): void => {
    f.db
      .prepare(
        "UPDATE instances SET health_at = ?, registered_at = MIN(registered_at, ?) WHERE id = ?",
      )
      .run(at, at, id);
  };
  const ids = f.live().map((r) => r.id);
  for (const id of ids) report(id);
  const errorNotifier = new TenantEvents<ErrorEvent>();
  const errors: ErrorEvent[] = [];
  errorNotifier.subscribe(undefined, (e) => errors.push(e));
  const d = new FailureDetector({
    db: f.db,
    provider: f.provider,
    reconciler: f.reconciler(),
    settings: () => settings(),
    logger: silentLogger,
    errorNotifier,
    sweepLoop: false,
    followUpBackoff: { initialMs: 20, maxMs: 100 },
    reconnectGraceMs: 0,
    ...o,
  });
  d.start();
  return {
    f,
    d,
    errors,
    ids,
    report,
    decisions: (id) => listInstanceDecisions(f.db, id).map((x) => x.decision),
    close: async () => {
      await d.stop();
      await f.close();
    },
  };
}

const deleted = (s: Setup, id: string) => getInstance(s.f.db, id)?.deletedAt !== undefined;

describe("FailureDetector", () => {
  for (const vm of ["stopped", "not found"] as const) {
    it(`a lost stream of a VM that is ${vm}: replaced at once, deleted without drain`, async () => {
      const s = await setup();
      try {
        const id = s.ids[1]!;
        if (vm === "stopped") s.f.provider.setInstanceStatus(id, "stopped");
        else s.f.provider.removeInstance(id);
        const drains = s.f.drainEvents.length;
        s.d.onDisconnect({ instanceId: id, kind: "lost", at: Date.now() });
        await waitFor("the gone instance deleted", () => deleted(s, id));
        assert.deepEqual(s.decisions(id).slice(-3), [
          "found_unhealthy",
          "replacement_started",
          "deleted",
        ]);
        const verdict = listInstanceDecisions(s.f.db, id).find(
          (x) => x.decision === "found_unhealthy",
        )!;
        assert.equal(verdict.reason, vm === "stopped" ? "stopped" : "not-found");
        assert.equal(verdict.evidence.provider_status, vm === "stopped" ? "stopped" : "not-found");
        assert.equal(verdict.evidence.trigger, "disconnect");
        assert.equal(verdict.evidence.skip_drain, true);
        assert.equal(typeof verdict.evidence.last_report_age_ms, "number");
        assert.equal(s.f.drainEvents.length, drains, "no drain for a VM that is gone");
        await waitFor("group whole again", () => s.f.live().length === 3);
        assert.deepEqual(s.f.checker.violations, []);
        assert.equal(s.d.stats().gone, 1);
      } finally {
        await s.close();
      }
    });
  }

  it("a lost stream of a running VM: checked with backoff, replaced with drain after 3 missed reports", async () => {
    const s = await setup();
    try {
      const id = s.ids[0]!;
      const lastReportAt = Date.now();
      s.report(id, lastReportAt);
      s.d.onDisconnect({ instanceId: id, kind: "lost", at: Date.now() });
      await waitFor("the silent instance deleted", () => deleted(s, id));
      const history = listInstanceDecisions(s.f.db, id);
      const names = history.map((x) => x.decision);
      assert.deepEqual(names.slice(-5), [
        "found_unhealthy",
        "replacement_started",
        "drain_notified",
        "drain_acked",
        "deleted",
      ]);
      const verdict = history.find((x) => x.decision === "found_unhealthy")!;
      assert.equal(verdict.reason, "missed-reports");
      assert.equal(verdict.evidence.provider_status, "running");
      assert.equal(verdict.evidence.skip_drain, false);
      assert.ok(Number(verdict.evidence.missed_reports) >= 3);
      assert.ok(
        verdict.at - lastReportAt >= 3 * INTERVAL_MS,
        `judged ${verdict.at - lastReportAt} ms after the last report, not before 3 intervals`,
      );
      assert.ok(s.f.provider.counters().statusCalls >= 2, "checked more than once");
      await waitFor("group whole again", () => s.f.live().length === 3);
      assert.deepEqual(s.f.checker.violations, []);
    } finally {
      await s.close();
    }
  });

  it("a lost stream whose agent reports again raises nothing", async () => {
    const s = await setup();
    try {
      const id = s.ids[2]!;
      s.d.onDisconnect({ instanceId: id, kind: "lost", at: Date.now() });
      assert.deepEqual(s.d.watching(), [id]);
      const reports = setInterval(() => s.report(id), INTERVAL_MS / 2);
      try {
        await waitFor("the watch to end", () => s.d.watching().length === 0);
        await sleep(8 * INTERVAL_MS);
      } finally {
        clearInterval(reports);
      }
      assert.ok(!s.decisions(id).includes("found_unhealthy"));
      assert.equal(s.f.live().length, 3);
    } finally {
      await s.close();
    }
  });

  it("an agent that reports less often than configured is judged by its own interval", async () => {
    const s = await setup();
    try {
      const id = s.ids[0]!;
      const now = Date.now();
      const started = new Date(now - 60_000).toISOString();
      const report = (count: number, at: number) =>
        JSON.stringify({ started, count, timestamp: new Date(at).toISOString() });
      // The agent's own reports: 5 reports 2 s apart (10 × the configured 200 ms).
      s.f.db
        .prepare("UPDATE instances SET health = ?, health_at = ? WHERE id = ?")
        .run(report(10, now), now, id);
      s.f.db
        .prepare("INSERT INTO health_reports (instance_id, received_at, report) VALUES (?, ?, ?)")
        .run(id, now - 10_000, report(5, now - 10_000));
      s.d.onDisconnect({ instanceId: id, kind: "lost", at: now });
      await waitFor(
        "follow-up checks past the configured bound",
        () => s.d.stats().checks >= 3 && Date.now() - now >= 4 * INTERVAL_MS,
      );
      assert.deepEqual(s.d.watching(), [id], "still watched: 3 × 2 s have not passed");
      assert.ok(!s.decisions(id).includes("found_unhealthy"));
    } finally {
      await s.close();
    }
  });

  it("a graceful stream end is not checked", async () => {
    const s = await setup();
    try {
      const calls = s.f.provider.counters().statusCalls;
      s.d.onDisconnect({ instanceId: s.ids[0]!, kind: "graceful", at: Date.now() });
      assert.deepEqual(s.d.watching(), []);
      await sleep(100);
      assert.equal(s.f.provider.counters().statusCalls, calls);
    } finally {
      await s.close();
    }
  });

  it("the sweep finds stale instances: a stopped VM goes at once, a silent one with drain", async () => {
    const s = await setup();
    try {
      const [silent, gone, fresh] = s.ids as [string, string, string];
      const old = Date.now() - 10 * INTERVAL_MS;
      s.report(silent, old);
      s.report(gone, old);
      s.f.provider.setInstanceStatus(gone, "stopped");
      assert.equal(s.d.sweep(), 2, "two stale instances");
      assert.deepEqual(s.d.watching().sort(), [gone, silent].sort());
      await waitFor("both deleted", () => deleted(s, silent) && deleted(s, gone));
      const why = (id: string) =>
        listInstanceDecisions(s.f.db, id).find((x) => x.decision === "found_unhealthy")!;
      assert.equal(why(gone).reason, "stopped");
      assert.equal(why(silent).reason, "missed-reports");
      assert.equal(why(silent).evidence.trigger, "sweep");
      assert.ok(s.decisions(silent).includes("drain_notified"));
      assert.ok(!s.decisions(gone).includes("drain_notified"));
      assert.ok(!s.decisions(fresh).includes("found_unhealthy"));
      await waitFor("group whole again", () => s.f.live().length === 3);
      assert.deepEqual(s.f.checker.violations, []);
    } finally {
      await s.close();
    }
  });

  it("under the mass-failure guard nothing is replaced; a recovery lowers the share and replacement resumes", async () => {
    const s = await setup({}, true);
    const [a, b, c] = s.ids as [string, string, string];
    // The agents still alive keep reporting throughout.
    const alive = new Set([c]);
    const reports = setInterval(() => {
      for (const id of alive) s.report(id);
    }, INTERVAL_MS / 4);
    try {
      const creates = s.f.provider.counters().createCalls;
      // Silence from before this detector started counts from its start (the reconnect grace is
      // 0 here): wait until a and b are silent beyond the bound, so one sweep finds both.
      await sleep(4 * INTERVAL_MS);
      const old = Date.now() - 10 * INTERVAL_MS;
      s.report(a, old);
      s.report(b, old);
      s.d.sweep();
      await waitFor("the alert", () => s.f.errorEvents.some((e) => /mass failure/.test(e.error)));
      await waitFor(
        "both judged",
        () =>
          s.decisions(a).includes("found_unhealthy") && s.decisions(b).includes("found_unhealthy"),
      );
      await s.f.reconciler().whenIdle();
      assert.equal(s.f.provider.counters().createCalls, creates, "no replacement under the guard");
      assert.deepEqual(s.f.reconciler().massFailureGroups(), ["default/web"]);

      // a's agent reports again: its verdict is cleared, the share falls, b is replaced.
      s.report(a);
      alive.add(a);
      s.d.sweep();
      assert.ok(s.decisions(a).includes("recovered"), "a's verdict cleared");
      assert.equal(getInstance(s.f.db, a)?.unhealthyAt, undefined);
      await waitFor("b replaced and deleted", () => deleted(s, b));
      assert.ok(!deleted(s, a));
      assert.deepEqual(s.decisions(a).slice(-2), ["found_unhealthy", "recovered"]);
      assert.deepEqual(s.f.reconciler().massFailureGroups(), []);
      await waitFor("group whole again", () => s.f.live().length === 3);
      assert.deepEqual(s.f.checker.violations, []);
    } finally {
      clearInterval(reports);
      await s.close();
    }
  });

  it("a failed provider check is reported once, retried, and dropped after the last attempt", async () => {
    const s = await setup({ maxFailedChecks: 3 });
    try {
      const id = s.ids[0]!;
      s.f.provider.setStatusError(
        new ProviderError({ provider: "fake", op: "status", message: "boom", transient: true }),
      );
      const calls = s.f.provider.counters().statusCalls;
      s.d.onDisconnect({ instanceId: id, kind: "lost", at: Date.now() });
      await waitFor("the watch dropped", () => s.d.watching().length === 0);
      assert.equal(s.f.provider.counters().statusCalls - calls, 3);
      assert.equal(s.errors.length, 1, "one WatchErrors event per watch");
      assert.equal(s.errors[0]!.instanceId, id);
      assert.match(s.errors[0]!.error, /status check .* failed: .*boom/);
      assert.equal(s.d.stats().checkErrors, 3);
      assert.ok(!s.decisions(id).includes("found_unhealthy"));
    } finally {
      s.f.provider.setStatusError(undefined);
      await s.close();
    }
  });

  it("gives agents it has not heard from a reconnect grace before silence counts", async () => {
    const s = await setup({ reconnectGraceMs: 60_000 });
    try {
      const id = s.ids[0]!;
      // Last heard of before this detector (this leadership term) started.
      s.report(id, Date.now() - 10 * INTERVAL_MS);
      assert.equal(s.d.sweep(), 1);
      await waitFor("a check", () => s.d.stats().checks >= 1);
      await sleep(5 * INTERVAL_MS);
      assert.deepEqual(s.d.watching(), [id], "still watched, not judged");
      assert.ok(!s.decisions(id).includes("found_unhealthy"));
      s.f.provider.setInstanceStatus(id, "stopped");
      s.d.onDisconnect({ instanceId: id, kind: "lost", at: Date.now() });
      await waitFor("a gone VM needs no grace", () => deleted(s, id));
    } finally {
      await s.close();
    }
  });

  it("a verdict of an ended term is not handed on; stop() ends every watch", async () => {
    let current = true;
    const s = await setup({ isCurrent: () => current });
    try {
      const id = s.ids[0]!;
      s.f.provider.setInstanceStatus(id, "stopped");
      current = false;
      s.d.onDisconnect({ instanceId: id, kind: "lost", at: Date.now() });
      await waitFor("the check", () => s.d.watching().length === 0);
      assert.ok(!s.decisions(id).includes("found_unhealthy"));
      s.report(s.ids[1]!, Date.now() - 10 * INTERVAL_MS);
      current = true;
      s.d.sweep();
      await s.d.stop();
      assert.deepEqual(s.d.watching(), []);
      s.d.onDisconnect({ instanceId: s.ids[2]!, kind: "lost", at: Date.now() });
      assert.deepEqual(s.d.watching(), [], "a stopped detector ignores disconnects");
      assert.equal(s.d.state, "stopped");
    } finally {
      await s.close();
    }
  });
});
