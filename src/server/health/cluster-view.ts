// SPDX-License-Identifier: Apache-2.0
/**
 * The JSON cluster view (seed 002's health response, for a shard): this server's id, shard, role,
 * term, uptime, version, storage and database state, connected agents and instances per group,
 * plus a `cluster` object counting the registered and healthy servers from their heartbeat
 * records and naming the leader. A pure function of what the server knows.
 */
import type { ElectionStatus } from "../../election/lockfile-elector.js";
import type { GroupInstanceCounts, InstanceState } from "../metrics/instance-states.js";
import type { ServerHeartbeat } from "../server-registry.js";
import type { CheckStatus, ReadinessReport } from "./run-readiness.js";

/** One server of the shard as its heartbeat record describes it. */
export interface ClusterServer {
  id: string;
  role: "leader" | "standby";
  term: number;
  version: string;
  /** False once its heartbeat is older than the TTL. */
  healthy: boolean;
  last_seen: string;
  started_at: string;
  addresses: Record<string, string>;
}

/** One group: desired size and live instances by state (counts from the leader only). */
export interface ClusterGroup {
  tenant: string;
  group: string;
  desired: number;
  /** Live instances; absent on a standby, whose cache is not kept up to date. */
  instances?: number;
  states?: Record<InstanceState, number>;
}

/** The cluster view body. */
export interface ClusterView {
  /** `healthy`, `degraded` or `unavailable` (readiness ok / degraded / down). */
  status: "healthy" | "degraded" | "unavailable";
  server_id: string;
  shard: string;
  role: "leader" | "standby" | "starting";
  term: number;
  version: string;
  uptime_s: number;
  /** `connected`, `degraded`, `unreachable`. */
  storage: string;
  /** `connected`, `degraded`, `unavailable`. */
  database: string;
  connected_agents: number;
  groups: ClusterGroup[];
  cluster: {
    registered_servers: number;
    healthy_servers: number;
    leader_id: string | null;
    servers: ClusterServer[];
    /** Why the heartbeat records could not be read. */
    error?: string;
  };
  readiness: ReadinessReport;
}

/** Inputs of {@link buildClusterView}. */
export interface ClusterViewInput {
  serverId: string;
  shard: string;
  version: string;
  uptimeMs: number;
  readiness: ReadinessReport;
  election?: ElectionStatus;
  connectedAgents?: number;
  /** Configured groups and their desired size. */
  groups?: ReadonlyArray<{ tenant: string; key: string; size: number }>;
  /** Instance counts, when this server leads. */
  counts?: readonly GroupInstanceCounts[];
  /** Heartbeat records, or why they could not be read. */
  servers?: ReadonlyArray<ServerHeartbeat & { stale: boolean }> | { error: string };
}

const VIEW_STATUS: Record<CheckStatus, ClusterView["status"]> = {
  ok: "healthy",
  degraded: "degraded",
  down: "unavailable",
};

function stateOf(r: ReadinessReport, check: string, names: Record<CheckStatus, string>): string {
  const c = r.checks[check];
  return c ? names[c.status] : "unknown";
}

/** Builds the cluster view; see the file comment. */
export function buildClusterView(i: ClusterViewInput): ClusterView {
  const counts = new Map((i.counts ?? []).map((c) => [`${c.tenant}/${c.group}`, c]));
  const groups: ClusterGroup[] = (i.groups ?? []).map((g) => {
    const c = i.counts ? counts.get(`${g.tenant}/${g.key}`) : undefined;
    return {
      tenant: g.tenant,
      group: g.key,
      desired: g.size,
      ...(i.counts ? { instances: c?.total ?? 0 } : {}),
      ...(i.counts && c ? { states: c.states } : {}),
    };
  });
  const records = i.servers && Array.isArray(i.servers) ? i.servers : [];
  const servers: ClusterServer[] = records.map((s) => ({
    id: s.id,
    role: s.role,
    term: s.term,
    version: s.version,
    healthy: !s.stale,
    last_seen: s.updated_at,
    started_at: s.started_at,
    addresses: s.addresses,
  }));
  const e = i.election;
  const leaderId =
    e?.leader?.id ??
    servers.filter((s) => s.healthy && s.role === "leader").sort((a, b) => b.term - a.term)[0]
      ?.id ??
    null;
  return {
    status: VIEW_STATUS[i.readiness.status],
    server_id: i.serverId,
    shard: i.shard,
    role: e === undefined || e.state === "stopped" ? "starting" : e.isLeader ? "leader" : "standby",
    term: e?.term ?? 0,
    version: i.version,
    uptime_s: Math.round(i.uptimeMs / 1000),
    storage: stateOf(i.readiness, "storage", {
      ok: "connected",
      degraded: "degraded",
      down: "unreachable",
    }),
    database: stateOf(i.readiness, "sqlite", {
      ok: "connected",
      degraded: "degraded",
      down: "unavailable",
    }),
    connected_agents: i.connectedAgents ?? 0,
    groups,
    cluster: {
      registered_servers: servers.length,
      healthy_servers: servers.filter((s) => s.healthy).length,
      leader_id: leaderId,
      servers,
      ...(i.servers && !Array.isArray(i.servers)
        ? { error: (i.servers as { error: string }).error }
        : {}),
    },
    readiness: i.readiness,
  };
}
