// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { openDatabase } from "../../db/database.js";
import { insertPendingInstance } from "../../db/instances-table.js";
import type { ElectionStatus } from "../../election/lockfile-elector.js";
import { HttpServer } from "../../http/http-server.js";
import { FakeProvider } from "../../providers/fake/fake-provider.js";
import { testCreateRequest } from "../../providers/testing.js";
import { silentLogger } from "../../shared/logger.js";
import { MeteredProvider } from "../metrics/metered-provider.js";
import { MeteredStorage } from "../metrics/metered-storage.js";
import { ServerMetrics } from "../metrics/server-metrics.js";
import { parseExposition, SwitchableStorage, sampleValue } from "../metrics/testing.js";
import type { ClusterView } from "./cluster-view.js";
import type { ReadinessReport } from "./run-readiness.js";
import { type ProbeConfigView, ServerProbes } from "./server-probes.js";

describe("ServerProbes over HTTP", () => {
  let phase: "loading" | "failed" | "ready" | "stopping" = "loading";
  let config: ProbeConfigView | undefined;
  let election: ElectionStatus = { state: "stopped", isLeader: false, term: 0, leader: undefined };
  const metrics = new ServerMetrics({ version: "1.2.3", serverId: "s1", shard: "a" });
  const probes = new ServerProbes({
    component: "nstance-server",
    version: "1.2.3",
    serverId: "s1",
    shard: "a",
    startedAt: Date.now() - 5_000,
    metrics,
    phase: () => ({ phase, ...(phase === "failed" ? { failure: "config missing" } : {}) }),
    config: () => config,
  });
  const http = new HttpServer({ name: "health", routes: probes.routes(), logger: silentLogger });
  let base = "";
  const db = openDatabase({ path: ":memory:" });
  const inner = new SwitchableStorage();
  const storage = new MeteredStorage({ storage: inner, metrics });
  const fake = new FakeProvider({ createDelayMs: 0 });
  const provider = new MeteredProvider({ provider: fake, metrics });
  let leading = false;

  before(async () => {
    await http.listen("127.0.0.1:0");
    base = `http://${http.address}`;
  });
  after(async () => {
    await http.stop();
    db.close();
  });

  const get = async <T>(path: string, init?: RequestInit) => {
    const r = await fetch(`${base}${path}`, init);
    const text = await r.text();
    return {
      status: r.status,
      type: r.headers.get("content-type"),
      text,
      json: () => JSON.parse(text) as T,
    };
  };

  it("before anything starts: alive, not ready, every check down", async () => {
    const live = await get<Record<string, string>>("/healthz");
    assert.equal(live.status, 200);
    assert.deepEqual(live.json(), { status: "ok", component: "nstance-server", version: "1.2.3" });
    assert.equal((await get("/healthz", { method: "HEAD" })).status, 200);
    assert.equal((await get("/healthz", { method: "POST" })).status, 405);

    const ready = await get<ReadinessReport>("/readyz");
    assert.equal(ready.status, 503);
    const r = ready.json();
    assert.equal(r.status, "down");
    assert.deepEqual(Object.keys(r.checks), [
      "config",
      "storage",
      "sqlite",
      "election",
      "provider",
      "grpc",
    ]);
    for (const c of Object.values(r.checks)) {
      assert.equal(c.status, "down");
      assert.equal(typeof c.latency_ms, "number");
    }
    assert.equal(r.checks.config?.message, "loading configuration");

    const view = await get<ClusterView>("/cluster");
    assert.equal(view.status, 503);
    assert.equal(view.json().role, "starting");
    assert.equal(view.json().cluster.error, "heartbeats not started yet");
  });

  it("a failed config load stays unready with the reason", async () => {
    phase = "failed";
    const r = (await get<ReadinessReport>("/readyz")).json();
    assert.equal(r.checks.config?.status, "down");
    assert.equal(r.checks.config?.message, "config missing");
  });

  it("everything attached and healthy: ready, a leader's cluster view and metrics", async () => {
    phase = "ready";
    config = {
      configState: { source: "storage", etag: "abc" },
      effective: { groups: [{ tenant: "default", key: "web", size: 2 }] },
    };
    election = {
      state: "leader",
      isLeader: true,
      term: 4,
      leader: { id: "s1", addr: "x", term: 4 },
    };
    insertPendingInstance(db, {
      id: "i-1",
      tenant: "default",
      groupKey: "web",
      nonce: "n1",
      infraConfigHash: "h",
      createdAt: 1,
    });
    await storage.put("k", "v");
    await provider.createInstance(testCreateRequest());
    leading = true;
    probes.attach({ storage, db, provider });
    probes.attach({
      elector: {
        status: () => election,
        stats: () => ({
          reads: 0,
          writes: { acquire: 1, renew: 0, release: 0 },
          storageErrors: 0,
          lostRaces: 0,
          peerRequests: 0,
          peerFailures: 0,
          termsAcquired: 1,
          termsLost: 0,
        }),
      },
      electionEnabled: true,
      leading: () =>
        leading ? { reconciler: { queueDepth: 2, massFailureGroups: () => [] } } : undefined,
      grpc: { registration: "127.0.0.1:1", operator: "127.0.0.1:2", agent: "127.0.0.1:3" },
      agents: {
        connections: { size: 1 },
        stats: { snapshot: () => ({ stored: 9, refused: 0, shed: 0 }) },
      },
      registry: {
        list: async () => [
          {
            id: "s1",
            shard: "a",
            version: "1.2.3",
            role: "leader",
            term: 4,
            addresses: {},
            started_at: "2026-01-01T00:00:00Z",
            updated_at: new Date().toISOString(),
            stale: false,
          },
          {
            id: "s2",
            shard: "a",
            version: "1.2.2",
            role: "standby",
            term: 3,
            addresses: {},
            started_at: "2026-01-01T00:00:00Z",
            updated_at: "2026-01-01T00:00:00Z",
            stale: true,
          },
        ],
      },
    });
    const ready = await get<ReadinessReport>("/readyz");
    assert.equal(ready.status, 200, ready.text);
    const r = ready.json();
    assert.equal(r.status, "ok");
    for (const [name, c] of Object.entries(r.checks))
      assert.equal(c.status, "ok", `${name}: ${c.message}`);
    assert.equal(r.checks.sqlite?.message, "1 instance rows");
    assert.equal(r.checks.election?.message, "leader (term 4)");

    const view = (await get<ClusterView>("/cluster")).json();
    assert.equal(view.status, "healthy");
    assert.equal(view.role, "leader");
    assert.equal(view.term, 4);
    assert.ok(view.uptime_s >= 5);
    assert.equal(view.connected_agents, 1);
    assert.deepEqual(view.groups, [
      {
        tenant: "default",
        group: "web",
        desired: 2,
        instances: 1,
        states: { pending: 1, running: 0, unhealthy: 0, draining: 0, deleting: 0 },
      },
    ]);
    assert.deepEqual(
      [view.cluster.registered_servers, view.cluster.healthy_servers, view.cluster.leader_id],
      [2, 1, "s1"],
    );

    const m = await get("/metrics");
    assert.equal(m.status, 200);
    assert.match(m.type ?? "", /^text\/plain; version=0\.0\.4/);
    const samples = parseExposition(m.text);
    assert.equal(sampleValue(samples, "nstance_leader"), 1);
    assert.equal(sampleValue(samples, "nstance_leadership_term"), 4);
    assert.equal(sampleValue(samples, "nstance_reconcile_queue_depth"), 2);
    assert.equal(sampleValue(samples, "nstance_instances", { group: "web", state: "pending" }), 1);
    assert.equal(sampleValue(samples, "nstance_connected_agents"), 1);
    assert.equal(sampleValue(samples, "nstance_group_desired_instances", { group: "web" }), 2);
    assert.equal(sampleValue(samples, "nstance_readiness", { check: "grpc", status: "ok" }), 1);
    assert.equal(sampleValue(samples, "nstance_health_reports_total", { result: "stored" }), 9);
    assert.equal(
      sampleValue(samples, "nstance_provider_calls_total", {
        operation: "createInstance",
        outcome: "ok",
      }),
      1,
    );
  });

  it("provider failures and a standby without a leader degrade but stay ready", async () => {
    fake.failNextCreates(1);
    await assert.rejects(provider.createInstance(testCreateRequest()));
    election = { state: "follower", isLeader: false, term: 4, leader: undefined };
    leading = false;
    const ready = await get<ReadinessReport>("/readyz");
    assert.equal(ready.status, 200);
    const r = ready.json();
    assert.equal(r.status, "degraded");
    assert.equal(r.checks.provider?.status, "degraded");
    assert.equal(r.checks.election?.status, "degraded");
    const view = (await get<ClusterView>("/cluster")).json();
    assert.equal(view.role, "standby");
    assert.equal(view.groups[0]?.instances, undefined, "a standby does not count instances");
    const samples = parseExposition((await get("/metrics")).text);
    assert.equal(samples.filter((s) => s.name === "nstance_instances").length, 0);
  });

  it("storage failing three times in a row is down (503); one success brings it back", async () => {
    inner.failing = true;
    for (let i = 0; i < 3; i++) await assert.rejects(storage.get("k"));
    const down = await get<ReadinessReport>("/readyz");
    assert.equal(down.status, 503);
    assert.equal(down.json().checks.storage?.status, "down");
    assert.match(down.json().checks.storage?.message ?? "", /last 3 operations failed/);
    assert.equal((await get<ClusterView>("/cluster")).json().storage, "unreachable");
    const samples = parseExposition((await get("/metrics")).text);
    assert.equal(
      sampleValue(samples, "nstance_readiness", { check: "storage", status: "down" }),
      1,
    );
    inner.failing = false;
    await storage.get("k");
    const back = await get<ReadinessReport>("/readyz");
    assert.equal(back.status, 200);
    assert.equal(back.json().checks.storage?.status, "degraded");
  });

  it("shutting down is unready", async () => {
    phase = "stopping";
    assert.equal((await get("/readyz")).status, 503);
    assert.equal((await get("/healthz")).status, 200);
  });
});
