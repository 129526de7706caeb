// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ServerHeartbeat } from "../server-registry.js";
import { buildClusterView, type ClusterViewInput } from "./cluster-view.js";
import type { ReadinessReport } from "./run-readiness.js";

const ready = (storage: "ok" | "degraded" | "down" = "ok"): ReadinessReport => ({
  status: storage,
  checks: {
    storage: { status: storage, message: "", latency_ms: 1 },
    sqlite: { status: "ok", message: "", latency_ms: 1 },
  },
});

const hb = (id: string, role: "leader" | "standby", term: number, stale: boolean) =>
  ({
    id,
    shard: "a",
    version: "1.0.0",
    role,
    term,
    addresses: { health: `${id}:8990` },
    started_at: "2026-01-01T00:00:00.000Z",
    updated_at: "2026-01-01T00:01:00.000Z",
    stale,
  }) satisfies ServerHeartbeat & { stale: boolean };

const base: ClusterViewInput = {
  serverId: "s1",
  shard: "a",
  version: "1.0.0",
  uptimeMs: 42_400,
  readiness: ready(),
};

describe("buildClusterView", () => {
  it("a leader: role, term, groups with counts, cluster counts and the leader", () => {
    const v = buildClusterView({
      ...base,
      election: {
        state: "leader",
        isLeader: true,
        term: 7,
        leader: { id: "s1", addr: "x", term: 7 },
      },
      connectedAgents: 3,
      groups: [
        { tenant: "default", key: "web", size: 3 },
        { tenant: "default", key: "db", size: 0 },
      ],
      counts: [
        {
          tenant: "default",
          group: "web",
          total: 4,
          states: { pending: 1, running: 2, unhealthy: 1, draining: 0, deleting: 0 },
        },
      ],
      servers: [
        hb("s1", "leader", 7, false),
        hb("s2", "standby", 6, false),
        hb("s3", "standby", 2, true),
      ],
    });
    assert.equal(v.status, "healthy");
    assert.equal(v.role, "leader");
    assert.equal(v.term, 7);
    assert.equal(v.uptime_s, 42);
    assert.equal(v.storage, "connected");
    assert.equal(v.database, "connected");
    assert.equal(v.connected_agents, 3);
    assert.deepEqual(v.groups, [
      {
        tenant: "default",
        group: "web",
        desired: 3,
        instances: 4,
        states: { pending: 1, running: 2, unhealthy: 1, draining: 0, deleting: 0 },
      },
      { tenant: "default", group: "db", desired: 0, instances: 0 },
    ]);
    assert.equal(v.cluster.registered_servers, 3);
    assert.equal(v.cluster.healthy_servers, 2);
    assert.equal(v.cluster.leader_id, "s1");
    assert.deepEqual(
      v.cluster.servers.map((s) => [s.id, s.role, s.healthy]),
      [
        ["s1", "leader", true],
        ["s2", "standby", true],
        ["s3", "standby", false],
      ],
    );
  });

  it("a standby: no instance counts; leader named from heartbeats when the elector knows none", () => {
    const v = buildClusterView({
      ...base,
      readiness: ready("degraded"),
      election: { state: "follower", isLeader: false, term: 4, leader: undefined },
      groups: [{ tenant: "default", key: "web", size: 3 }],
      servers: [
        hb("s1", "standby", 4, false),
        hb("s2", "leader", 3, true),
        hb("s3", "leader", 4, false),
      ],
    });
    assert.equal(v.status, "degraded");
    assert.equal(v.role, "standby");
    assert.equal(v.storage, "degraded");
    assert.deepEqual(v.groups, [{ tenant: "default", group: "web", desired: 3 }]);
    assert.equal(v.cluster.leader_id, "s3");
  });

  it("before the elector runs, with unreadable heartbeats and storage down", () => {
    const v = buildClusterView({
      ...base,
      readiness: ready("down"),
      servers: { error: "storage list shard/a/servers/: ECONNREFUSED" },
    });
    assert.equal(v.status, "unavailable");
    assert.equal(v.role, "starting");
    assert.equal(v.storage, "unreachable");
    assert.equal(v.cluster.registered_servers, 0);
    assert.equal(v.cluster.leader_id, null);
    assert.match(v.cluster.error ?? "", /ECONNREFUSED/);
  });
});
