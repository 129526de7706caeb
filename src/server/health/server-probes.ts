// SPDX-License-Identifier: Apache-2.0
/**
 * The probe and metrics endpoints served beside seed 000's `/health` on the health listener:
 * `/healthz` (liveness), `/readyz` (readiness checks), `/cluster` (the cluster view) and `/metrics`
 * (Prometheus). The composition root creates one {@link ServerProbes} before anything else and
 * attaches each subsystem as its stage starts; until then that subsystem's check reads `down`.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Db } from "../../db/database.js";
import { listLiveInstances } from "../../db/instance-lifecycle.js";
import type { ElectionStats, ElectionStatus } from "../../election/lockfile-elector.js";
import { type RouteHandler, sendJson } from "../../http/http-server.js";
import { errorMessage } from "../../shared/errors.js";
import type { CallHealthSnapshot } from "../metrics/call-health.js";
import { countInstances } from "../metrics/instance-states.js";
import type { ServerMetrics } from "../metrics/server-metrics.js";
import type { ServerHeartbeat } from "../server-registry.js";
import { buildClusterView, type ClusterView } from "./cluster-view.js";
import {
  type ReadinessCheck,
  type ReadinessReport,
  readinessHttpStatus,
  runReadiness,
} from "./run-readiness.js";
import {
  type ConfigCheckInput,
  configCheck,
  DEFAULT_DEGRADED_WINDOW_MS,
  electionCheck,
  grpcCheck,
  providerCheck,
  sqliteCheck,
  storageCheck,
} from "./server-checks.js";

/** The loaded configuration as the probes need it. */
export interface ProbeConfigView {
  configState: { source: ConfigCheckInput["source"]; etag: string };
  effective: { groups: ReadonlyArray<{ tenant: string; key: string; size: number }> };
}

/** The subsystems the probes read; each is attached once its stage has started. */
export interface ServerProbeParts {
  storage: { health(windowMs: number): CallHealthSnapshot };
  db: Db;
  elector: { status(): ElectionStatus; stats(): ElectionStats };
  /** `shard.leader_election.enabled`. */
  electionEnabled: boolean;
  provider: { readonly kind: string; health(windowMs: number): CallHealthSnapshot };
  /** The bound gRPC listener addresses. */
  grpc: Readonly<Record<string, string>>;
  registry: {
    list(signal?: AbortSignal): Promise<Array<ServerHeartbeat & { stale: boolean }>>;
  };
  agents: {
    connections: { readonly size: number };
    stats: { snapshot(): { stored: number; refused: number; shed: number } };
  };
  /** The current term's reconciler while this server leads. */
  leading: () =>
    | { reconciler: { readonly queueDepth: number; massFailureGroups(): readonly string[] } }
    | undefined;
}

/** Options for {@link ServerProbes}. */
export interface ServerProbesOptions {
  /** `component` in the `/healthz` body (`nstance-server`). */
  component: string;
  version: string;
  serverId: string;
  shard: string;
  /** Process start, unix ms. */
  startedAt: number;
  metrics: ServerMetrics;
  /** Where the boot sequence is. */
  phase: () => { phase: ConfigCheckInput["phase"]; failure?: string };
  /** The configuration currently in force. */
  config: () => ProbeConfigView | undefined;
  /** Defaults to the readiness default (2 s). */
  checkTimeoutMs?: number;
  /** Defaults to {@link DEFAULT_DEGRADED_WINDOW_MS}. */
  degradedWindowMs?: number;
  now?: () => number;
}

const METHODS = new Set(["GET", "HEAD"]);

function getOnly(handler: (res: ServerResponse) => Promise<void> | void): RouteHandler {
  return async (req: IncomingMessage, res: ServerResponse) => {
    if (!METHODS.has(req.method ?? "")) {
      res.writeHead(405, { allow: "GET, HEAD" });
      res.end();
      return;
    }
    await handler(res);
  };
}

/** The server's probes; see the file comment. */
export class ServerProbes {
  readonly #o: ServerProbesOptions;
  readonly #now: () => number;
  #parts: Partial<ServerProbeParts> = {};

  constructor(opts: ServerProbesOptions) {
    if (!opts.metrics) throw new TypeError("metrics is required");
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.attach({});
  }

  /** Adds subsystems as their stages start; also feeds the scrape-time metrics. */
  attach(parts: Partial<ServerProbeParts>): void {
    this.#parts = { ...this.#parts, ...parts };
    const p = this.#parts;
    this.#o.metrics.setSources({
      election: () => {
        if (!p.elector) return undefined;
        const s = p.elector.status();
        const st = p.elector.stats();
        return {
          isLeader: s.isLeader,
          term: s.term,
          termsAcquired: st.termsAcquired,
          termsLost: st.termsLost,
        };
      },
      reconcileQueueDepth: () => p.leading?.()?.reconciler.queueDepth,
      massFailureGroups: () => p.leading?.()?.reconciler.massFailureGroups(),
      instances: () => {
        const db = p.db;
        const cfg = this.#o.config();
        if (!db || !cfg || !p.leading?.()) return undefined;
        return { rows: listLiveInstances(db), groups: cfg.effective.groups };
      },
      connectedAgents: () => p.agents?.connections.size,
      reports: () => p.agents?.stats.snapshot(),
      readiness: async () => {
        const r = await this.readiness();
        return Object.fromEntries(Object.entries(r.checks).map(([k, c]) => [k, c.status]));
      },
    });
  }

  /** The six readiness checks over whatever is attached now. */
  checks(): ReadinessCheck[] {
    const p = this.#parts;
    const windowMs = this.#o.degradedWindowMs ?? DEFAULT_DEGRADED_WINDOW_MS;
    const now = (): number => this.#now();
    return [
      {
        name: "config",
        run: () => {
          const { phase, failure } = this.#o.phase();
          const cfg = this.#o.config();
          return configCheck({
            phase,
            ...(failure === undefined ? {} : { failure }),
            ...(cfg ? { source: cfg.configState.source, etag: cfg.configState.etag } : {}),
          });
        },
      },
      {
        name: "storage",
        run: () => storageCheck(p.storage?.health(windowMs), { now: now(), windowMs }),
      },
      {
        name: "sqlite",
        run: () => {
          const db = p.db;
          return sqliteCheck(
            db
              ? () => (db.prepare("SELECT count(*) AS n FROM instances").get() as { n: number }).n
              : undefined,
          );
        },
      },
      {
        name: "election",
        run: () =>
          electionCheck({
            enabled: p.electionEnabled ?? true,
            ...(p.elector ? { status: p.elector.status() } : {}),
          }),
      },
      {
        name: "provider",
        run: () =>
          providerCheck(p.provider?.kind, p.provider?.health(windowMs), { now: now(), windowMs }),
      },
      { name: "grpc", run: () => grpcCheck(p.grpc) },
    ];
  }

  /** Runs the readiness checks. */
  readiness(): Promise<ReadinessReport> {
    return runReadiness(
      this.checks(),
      this.#o.checkTimeoutMs === undefined ? {} : { timeoutMs: this.#o.checkTimeoutMs },
    );
  }

  /** Builds the cluster view (reads the heartbeat records from storage). */
  async clusterView(): Promise<ClusterView> {
    const p = this.#parts;
    const timeoutMs = this.#o.checkTimeoutMs ?? 2_000;
    const [readiness, servers] = await Promise.all([
      this.readiness(),
      p.registry
        ? p.registry
            .list(AbortSignal.timeout(timeoutMs))
            .catch((err: unknown) => ({ error: errorMessage(err) }))
        : Promise.resolve({ error: "heartbeats not started yet" }),
    ]);
    const cfg = this.#o.config();
    const leading = p.leading?.() !== undefined;
    return buildClusterView({
      serverId: this.#o.serverId,
      shard: this.#o.shard,
      version: this.#o.version,
      uptimeMs: this.#now() - this.#o.startedAt,
      readiness,
      ...(p.elector ? { election: p.elector.status() } : {}),
      connectedAgents: p.agents?.connections.size ?? 0,
      ...(cfg ? { groups: cfg.effective.groups } : {}),
      ...(leading && p.db && cfg
        ? { counts: countInstances(listLiveInstances(p.db), cfg.effective.groups) }
        : {}),
      servers,
    });
  }

  /** `/healthz`, `/readyz`, `/cluster` and `/metrics`, for the health listener's routes. */
  routes(): Record<string, RouteHandler> {
    const o = this.#o;
    return {
      "/healthz": getOnly((res) => {
        sendJson(res, 200, { status: "ok", component: o.component, version: o.version });
      }),
      "/readyz": getOnly(async (res) => {
        const r = await this.readiness();
        sendJson(res, readinessHttpStatus(r.status), r);
      }),
      "/cluster": getOnly(async (res) => {
        const v = await this.clusterView();
        sendJson(res, readinessHttpStatus(v.readiness.status), v);
      }),
      "/metrics": getOnly(async (res) => {
        const m = await o.metrics.exposition();
        res.writeHead(200, { "content-type": m.contentType, "cache-control": "no-store" });
        res.end(m.body);
      }),
    };
  }
}
