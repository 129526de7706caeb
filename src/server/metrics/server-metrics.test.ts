// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { register as globalRegistry } from "prom-client";
import { openDatabase } from "../../db/database.js";
import { listLiveInstances, markInstanceUnhealthy } from "../../db/instance-lifecycle.js";
import { insertPendingInstance, markInstanceRegistered } from "../../db/instances-table.js";
import { FakeProvider } from "../../providers/fake/fake-provider.js";
import { ProviderError } from "../../providers/provider.js";
import { testCreateRequest } from "../../providers/testing.js";
import type { CreateAction } from "../../reconcile/plan-types.js";
import { PreconditionFailedError, StorageError } from "../../shared/errors.js";
import { silentLogger } from "../../shared/logger.js";
import type { ObjectStorage } from "../../storage/object-storage.js";
import { MeteredProvider } from "./metered-provider.js";
import { MeteredStorage } from "./metered-storage.js";
import { reconcilerMetrics } from "./reconciler-metrics.js";
import { METRIC_NAMES, ServerMetrics } from "./server-metrics.js";
import { metricFamilies, parseExposition, SwitchableStorage, sampleValue } from "./testing.js";

const newMetrics = (): ServerMetrics =>
  new ServerMetrics({ version: "9.9.9", serverId: "s1", shard: "us-west-2a" });
/** One registry with process metrics for the whole file: each adds a GC observer. */
const withProcess = new ServerMetrics({
  version: "1",
  serverId: "s",
  shard: "a",
  processMetrics: true,
});

async function scrape(m: ServerMetrics) {
  const { contentType, body } = await m.exposition();
  assert.match(contentType, /^text\/plain; version=0\.0\.4/);
  return { samples: parseExposition(body), families: metricFamilies(body), body };
}

describe("ServerMetrics", () => {
  it("exposes every nstance_* family with its type, in a registry of its own", async () => {
    const { families, samples } = await scrape(newMetrics());
    for (const name of METRIC_NAMES) {
      assert.ok(families.has(name.replace(/_total$/, "")) || families.has(name), name);
      assert.match(name, /^nstance_[a-z_]+$/);
    }
    assert.equal(families.get("nstance_provider_call_duration_seconds"), "histogram");
    assert.equal(families.get("nstance_storage_operations_total"), "counter");
    assert.equal(families.get("nstance_instances"), "gauge");
    assert.equal(
      sampleValue(samples, "nstance_build_info", {
        version: "9.9.9",
        server_id: "s1",
        shard: "us-west-2a",
      }),
      1,
    );
    assert.equal(sampleValue(samples, "nstance_leader"), 0);
    // Every series carries the shard label.
    for (const s of samples) assert.equal(s.labels.shard, "us-west-2a", s.name);
    // Nothing leaks into prom-client's global default registry.
    assert.equal((await globalRegistry.metrics()).includes("nstance_"), false);
  });

  it("two servers in one process keep separate counts", async () => {
    const a = newMetrics();
    const b = newMetrics();
    a.storageOperation("get", 1, "ok");
    a.storageOperation("get", 1, "ok");
    b.storageOperation("get", 1, "ok");
    const get = { operation: "get", outcome: "ok" };
    assert.equal(
      sampleValue((await scrape(a)).samples, "nstance_storage_operations_total", get),
      2,
    );
    assert.equal(
      sampleValue((await scrape(b)).samples, "nstance_storage_operations_total", get),
      1,
    );
  });

  it("reads leadership, queue depth, instances, agents and reports from its sources", async () => {
    const m = newMetrics();
    const db = openDatabase({ path: ":memory:" });
    for (const [i, id] of ["web-1", "web-2", "web-3"].entries()) {
      insertPendingInstance(db, {
        id,
        tenant: "default",
        groupKey: "web",
        nonce: `n${i}`,
        infraConfigHash: "h",
        createdAt: 1000 + i,
      });
    }
    markInstanceRegistered(db, {
      id: "web-1",
      registeredAt: 2000,
      instancePub: "k",
      certSerial: "1",
    });
    markInstanceRegistered(db, {
      id: "web-2",
      registeredAt: 2000,
      instancePub: "k",
      certSerial: "2",
    });
    markInstanceUnhealthy(db, "web-2", { at: 3000, reason: "missed-reports", skipDrain: false });
    m.setSources({
      election: () => ({ isLeader: true, term: 12, termsAcquired: 3, termsLost: 2 }),
      reconcileQueueDepth: () => 7,
      massFailureGroups: () => ["default/web"],
      instances: () => ({
        rows: listLiveInstances(db),
        groups: [
          { tenant: "default", key: "web", size: 3 },
          { tenant: "acme", key: "empty", size: 0 },
        ],
      }),
      connectedAgents: () => 2,
      reports: () => ({ stored: 40, refused: 3, shed: 1 }),
      readiness: async () => ({ storage: "degraded", sqlite: "ok" }),
    });
    const { samples } = await scrape(m);
    const v = (name: string, labels: Record<string, string> = {}) =>
      sampleValue(samples, name, labels);
    assert.equal(v("nstance_leader"), 1);
    assert.equal(v("nstance_leadership_term"), 12);
    assert.equal(v("nstance_leadership_terms_acquired_total"), 3);
    assert.equal(v("nstance_leadership_terms_lost_total"), 2);
    assert.equal(v("nstance_reconcile_queue_depth"), 7);
    assert.equal(v("nstance_mass_failure_guard_tripped", { group: "default/web" }), 1);
    const web = { tenant: "default", group: "web" };
    assert.equal(v("nstance_instances", { ...web, state: "pending" }), 1);
    assert.equal(v("nstance_instances", { ...web, state: "running" }), 1);
    assert.equal(v("nstance_instances", { ...web, state: "unhealthy" }), 1);
    assert.equal(v("nstance_instances", { ...web, state: "draining" }), 0);
    assert.equal(v("nstance_instances", { tenant: "acme", group: "empty", state: "running" }), 0);
    assert.equal(v("nstance_group_desired_instances", web), 3);
    assert.equal(v("nstance_group_desired_instances", { tenant: "acme", group: "empty" }), 0);
    assert.equal(v("nstance_readiness", { check: "storage", status: "degraded" }), 1);
    assert.equal(v("nstance_readiness", { check: "storage", status: "ok" }), 0);
    assert.equal(v("nstance_readiness", { check: "sqlite", status: "ok" }), 1);
    assert.equal(v("nstance_connected_agents"), 2);
    assert.equal(v("nstance_health_reports_total", { result: "stored" }), 40);
    assert.equal(v("nstance_health_reports_total", { result: "refused" }), 3);
    assert.equal(v("nstance_health_reports_total", { result: "shed" }), 1);

    // A standby reports no instances: the gauge empties instead of keeping stale rows.
    m.setSources({ instances: () => undefined, election: () => undefined });
    const after = (await scrape(m)).samples;
    assert.equal(after.filter((s) => s.name === "nstance_instances").length, 0);
    assert.equal(sampleValue(after, "nstance_leader"), 0);
    db.close();
  });

  it("docs/operations.md names only metrics that exist, and documents every one", async () => {
    const doc = readFileSync(new URL("../../../docs/operations.md", import.meta.url), "utf8");
    const { families } = await scrape(withProcess);
    const known = new Set<string>();
    for (const [name, type] of families) {
      known.add(name);
      if (type === "counter") known.add(`${name}_total`);
      if (type === "histogram")
        for (const x of ["bucket", "sum", "count"]) known.add(`${name}_${x}`);
    }
    for (const [name] of doc.matchAll(/\bnstance_[a-z0-9_]*[a-z0-9]\b/g)) {
      assert.ok(known.has(name), `docs/operations.md names ${name}, which is not exported`);
    }
    for (const name of METRIC_NAMES)
      assert.ok(doc.includes(`\`${name}\``), `${name} is documented`);
  });

  it("process metrics are opt-in and prefixed", async () => {
    const plain = await scrape(newMetrics());
    assert.equal(plain.families.has("nstance_process_cpu_seconds_total"), false);
    const { families } = await scrape(withProcess);
    assert.ok(families.has("nstance_process_cpu_seconds_total"));
    assert.ok(families.has("nstance_nodejs_eventloop_lag_seconds"));
  });
});

describe("MeteredStorage", () => {
  it("counts operations by outcome; conflicts are not errors; health follows failures", async () => {
    const m = newMetrics();
    const inner = new SwitchableStorage();
    let now = 10_000;
    const s: ObjectStorage & MeteredStorage = new MeteredStorage({
      storage: inner,
      metrics: m,
      now: () => now,
    });
    assert.equal(s.description, "memory:default");
    await s.put("a", "1");
    await s.put("a", "2", { condition: { ifNoneMatch: "*" } }).then(
      () => assert.fail("expected a lost race"),
      (err: unknown) => assert.ok(err instanceof PreconditionFailedError),
    );
    assert.equal((await s.get("a"))?.body.toString(), "1");
    assert.equal(await s.get("missing"), undefined);
    await s.list("");
    await s.head("a");
    await s.delete("a");
    inner.failing = true;
    for (let i = 0; i < 3; i++) {
      now += 1000;
      await assert.rejects(s.get("a"), StorageError);
    }
    inner.failing = false;

    const { samples } = await scrape(m);
    const ops = (operation: string, outcome: string) =>
      sampleValue(samples, "nstance_storage_operations_total", { operation, outcome });
    assert.equal(ops("put", "ok"), 1);
    assert.equal(ops("put", "conflict"), 1);
    assert.equal(ops("get", "ok"), 2);
    assert.equal(ops("get", "error"), 3);
    assert.equal(ops("list", "ok"), 1);
    assert.equal(ops("head", "ok"), 1);
    assert.equal(ops("delete", "ok"), 1);
    assert.equal(sampleValue(samples, "nstance_storage_errors_total", { operation: "get" }), 3);
    assert.equal(sampleValue(samples, "nstance_storage_conflicts_total", { operation: "put" }), 1);
    assert.equal(
      sampleValue(samples, "nstance_storage_errors_total", { operation: "put" }),
      undefined,
    );
    assert.equal(
      sampleValue(samples, "nstance_storage_operation_duration_seconds_count", {
        operation: "get",
      }),
      5,
    );

    const h = s.health(60_000);
    assert.equal(h.consecutiveFailures, 3);
    assert.equal(h.recentFailures, 3);
    assert.equal(h.lastOkAt, 10_000);
    assert.match(h.lastError ?? "", /^get a: storage get a: connection refused$/);
    now += 120_000;
    await s.get("a");
    const later = s.health(60_000);
    assert.equal(later.consecutiveFailures, 0);
    assert.equal(later.recentFailures, 0);
  });
});

describe("MeteredProvider", () => {
  it("times and counts calls by operation; errors by transience; aborts are not errors", async () => {
    const m = newMetrics();
    const fake = new FakeProvider({ createDelayMs: 0 });
    const p = new MeteredProvider({ provider: fake, metrics: m });
    assert.equal(p.kind, "fake");
    const created = await p.createInstance(testCreateRequest());
    await p.createInstance(testCreateRequest());
    fake.failNextCreates(1);
    await assert.rejects(p.createInstance(testCreateRequest()), ProviderError);
    fake.failNextCreates(1, new Error("quota exceeded"));
    await assert.rejects(p.createInstance(testCreateRequest()), /quota exceeded/);
    assert.equal(
      (await p.getInstanceStatus(created.instanceId, created.providerInstanceId))?.status,
      "running",
    );
    await p.listInstances({ clusterId: "test-cluster", shard: "shard-a" });
    fake.setStatusError(new DOMException("aborted", "AbortError"));
    await assert.rejects(p.listInstances({ clusterId: "test-cluster", shard: "shard-a" }));
    fake.setStatusError(undefined);

    const { samples } = await scrape(m);
    const calls = (operation: string, outcome: string) =>
      sampleValue(samples, "nstance_provider_calls_total", {
        provider: "fake",
        operation,
        outcome,
      });
    assert.equal(calls("createInstance", "ok"), 2);
    assert.equal(calls("createInstance", "error"), 2);
    assert.equal(calls("getInstanceStatus", "ok"), 1);
    assert.equal(calls("listInstances", "ok"), 1);
    assert.equal(calls("listInstances", "aborted"), 1);
    const errors = (transient: string) =>
      sampleValue(samples, "nstance_provider_call_errors_total", {
        operation: "createInstance",
        transient,
      });
    assert.equal(errors("true"), 1);
    assert.equal(errors("false"), 1);
    assert.equal(
      sampleValue(samples, "nstance_provider_call_duration_seconds_count", {
        operation: "createInstance",
      }),
      4,
    );
    const h = p.health(60_000);
    assert.equal(h.failures, 2);
    assert.equal(h.consecutiveFailures, 0, "the status call after the failures succeeded");
    assert.match(h.lastError ?? "", /^createInstance: .*quota exceeded/);
    await p.close();
  });
});

describe("reconcilerMetrics", () => {
  it("records detection from the last report, replacement from the verdict, once per instance", async () => {
    const m = newMetrics();
    const db = openDatabase({ path: ":memory:" });
    insertPendingInstance(db, {
      id: "old",
      tenant: "default",
      groupKey: "web",
      nonce: "n",
      infraConfigHash: "h",
      createdAt: 1_000,
    });
    markInstanceRegistered(db, {
      id: "old",
      registeredAt: 2_000,
      instancePub: "k",
      certSerial: "1",
    });
    db.prepare("UPDATE instances SET health_at = ? WHERE id = ?").run(10_000, "old");
    const t = reconcilerMetrics(m, db, silentLogger);

    markInstanceUnhealthy(db, "old", { at: 14_000, reason: "missed-reports", skipDrain: false });
    t.hooks.foundUnhealthy?.({ instanceId: "old", reason: "missed-reports", at: 14_000 });
    // Escalation to skip-drain keeps the first verdict's time: not a second detection.
    markInstanceUnhealthy(db, "old", { at: 20_000, reason: "stopped", skipDrain: true });
    t.hooks.foundUnhealthy?.({ instanceId: "old", reason: "stopped", at: 20_000 });
    t.hooks.passDone?.(3);
    const replace: CreateAction = {
      kind: "create",
      tenant: "default",
      group: "web",
      reason: "unhealthy",
      replaces: "old",
    };
    t.onAction({ action: replace, instanceId: "new", outcome: "done", at: 16_500 });
    t.onAction({
      action: { kind: "create", tenant: "default", group: "web", reason: "scale-up" },
      instanceId: "x",
      outcome: "failed",
      at: 17_000,
    });
    // Unknown instances are ignored rather than thrown.
    t.hooks.foundUnhealthy?.({ instanceId: "nope", reason: "x", at: 1 });

    const { samples } = await scrape(m);
    const v = (name: string, labels: Record<string, string> = {}) =>
      sampleValue(samples, name, labels);
    assert.equal(v("nstance_unhealthy_detection_seconds_count", { reason: "missed-reports" }), 1);
    assert.equal(v("nstance_unhealthy_detection_seconds_sum", { reason: "missed-reports" }), 4);
    assert.equal(v("nstance_unhealthy_detection_seconds_count", { reason: "stopped" }), undefined);
    assert.equal(v("nstance_replacement_duration_seconds_count", { reason: "unhealthy" }), 1);
    assert.equal(v("nstance_replacement_duration_seconds_sum", { reason: "unhealthy" }), 2.5);
    assert.equal(v("nstance_replacements_total", { reason: "unhealthy" }), 1);
    assert.equal(v("nstance_reconcile_actions_total", { action: "create", outcome: "done" }), 1);
    assert.equal(v("nstance_reconcile_actions_total", { action: "create", outcome: "failed" }), 1);
    assert.equal(v("nstance_reconcile_duration_seconds_count"), 1);
    assert.equal(v("nstance_reconcile_duration_seconds_sum"), 0.003);
    db.close();
  });
});
