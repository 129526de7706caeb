// SPDX-License-Identifier: Apache-2.0
/**
 * The server's Prometheus metrics (`nstance_*`), in a registry of its own per server instance (never
 * prom-client's global one), so tests running several servers in one process stay apart. Events
 * (provider calls, storage operations, reconcile passes, verdicts, replacements) are recorded as they
 * happen; point-in-time values (leadership, queue depth, instances, agents, report counts) are read
 * from {@link MetricsSources} at scrape time.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { LiveInstance } from "../../db/instance-lifecycle.js";
import { countInstances, INSTANCE_STATES } from "./instance-states.js";

/** Buckets of the reconcile pass duration histogram, in seconds. */
export const DEFAULT_RECONCILE_BUCKETS_S = [
  0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];
/** Buckets of the provider call duration histogram, in seconds. */
export const DEFAULT_PROVIDER_BUCKETS_S = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Buckets of the storage operation duration histogram, in seconds. */
export const DEFAULT_STORAGE_BUCKETS_S = [
  0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];
/** Buckets of the detection and replacement duration histograms, in seconds. */
export const DEFAULT_LIFECYCLE_BUCKETS_S = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800];

/** Where a storage operation ended. */
export type StorageOutcome = "ok" | "conflict" | "error" | "aborted";
/** Where a provider call ended. */
export type ProviderOutcome = "ok" | "error" | "aborted";

/** Point-in-time values read at scrape time; each returns undefined when not known (yet). */
export interface MetricsSources {
  /** This server's view of the shard election. */
  election?: () =>
    | { isLeader: boolean; term: number; termsAcquired: number; termsLost: number }
    | undefined;
  /** Events waiting in the reconcile queue (leader only). */
  reconcileQueueDepth?: () => number | undefined;
  /** Groups (`tenant/group`) whose replacements the mass-failure guard holds back (leader only). */
  massFailureGroups?: () => readonly string[] | undefined;
  /** The live instance rows and configured groups (leader only: a standby's cache is not kept). */
  instances?: () =>
    | {
        rows: readonly LiveInstance[];
        groups: ReadonlyArray<{ tenant: string; key: string; size: number }>;
      }
    | undefined;
  /** The readiness checks' verdicts (`ok`, `degraded`, `down`) by check name. */
  readiness?: () => Promise<Record<string, string>>;
  /** Agents with an open health stream to this server. */
  connectedAgents?: () => number | undefined;
  /** Health reports received since start. */
  reports?: () => { stored: number; refused: number; shed: number } | undefined;
}

/** Options for {@link ServerMetrics}. */
export interface ServerMetricsOptions {
  version: string;
  serverId: string;
  shard: string;
  /** Adds Node.js process metrics (CPU, memory, event-loop lag) as `nstance_process_*` etc. Defaults to false. */
  processMetrics?: boolean;
}

const NAMES = {
  build: "nstance_build_info",
  readiness: "nstance_readiness",
  leader: "nstance_leader",
  term: "nstance_leadership_term",
  termsAcquired: "nstance_leadership_terms_acquired_total",
  termsLost: "nstance_leadership_terms_lost_total",
  queueDepth: "nstance_reconcile_queue_depth",
  massFailure: "nstance_mass_failure_guard_tripped",
  reconcileDuration: "nstance_reconcile_duration_seconds",
  reconcileActions: "nstance_reconcile_actions_total",
  providerCalls: "nstance_provider_calls_total",
  providerErrors: "nstance_provider_call_errors_total",
  providerDuration: "nstance_provider_call_duration_seconds",
  instances: "nstance_instances",
  desired: "nstance_group_desired_instances",
  agents: "nstance_connected_agents",
  reports: "nstance_health_reports_total",
  detection: "nstance_unhealthy_detection_seconds",
  replacement: "nstance_replacement_duration_seconds",
  replacements: "nstance_replacements_total",
  storageOps: "nstance_storage_operations_total",
  storageErrors: "nstance_storage_errors_total",
  storageConflicts: "nstance_storage_conflicts_total",
  storageDuration: "nstance_storage_operation_duration_seconds",
} as const;

/** Every metric name this server exports (besides the optional process metrics). */
export const METRIC_NAMES: readonly string[] = Object.values(NAMES);

/** The metrics of one server; see the file comment. */
export class ServerMetrics {
  /** The registry `/metrics` serves. */
  readonly registry = new Registry();
  #sources: MetricsSources = {};
  readonly #reconcileDuration: Histogram<never>;
  readonly #reconcileActions: Counter<"action" | "outcome">;
  readonly #providerCalls: Counter<"provider" | "operation" | "outcome">;
  readonly #providerErrors: Counter<"provider" | "operation" | "transient">;
  readonly #providerDuration: Histogram<"provider" | "operation">;
  readonly #detection: Histogram<"reason">;
  readonly #replacement: Histogram<"reason">;
  readonly #replacements: Counter<"reason">;
  readonly #storageOps: Counter<"operation" | "outcome">;
  readonly #storageErrors: Counter<"operation">;
  readonly #storageConflicts: Counter<"operation">;
  readonly #storageDuration: Histogram<"operation">;

  constructor(opts: ServerMetricsOptions) {
    const registers = [this.registry];
    const sources = (): MetricsSources => this.#sources;
    // Every series carries the shard, so alerts can aggregate per shard across servers.
    this.registry.setDefaultLabels({ shard: opts.shard });
    new Gauge({
      name: NAMES.build,
      help: "Always 1; labels name the build and this server.",
      labelNames: ["version", "server_id"],
      registers,
    }).set({ version: opts.version, server_id: opts.serverId }, 1);
    new Gauge({
      name: NAMES.readiness,
      help: "1 for each readiness check's current status (ok, degraded or down), else 0.",
      labelNames: ["check", "status"],
      registers,
      async collect() {
        this.reset();
        const checks = (await sources().readiness?.()) ?? {};
        for (const [check, status] of Object.entries(checks)) {
          for (const s of ["ok", "degraded", "down"])
            this.set({ check, status: s }, s === status ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: NAMES.leader,
      help: "1 while this server leads its shard, else 0.",
      registers,
      collect() {
        this.set(sources().election?.()?.isLeader ? 1 : 0);
      },
    });
    new Gauge({
      name: NAMES.term,
      help: "Leadership term: this server's own while it leads, else the highest it has seen.",
      registers,
      collect() {
        this.set(sources().election?.()?.term ?? 0);
      },
    });
    new Counter({
      name: NAMES.termsAcquired,
      help: "Leadership terms this server has won.",
      registers,
      collect() {
        setCounter(this, {}, sources().election?.()?.termsAcquired ?? 0);
      },
    });
    new Counter({
      name: NAMES.termsLost,
      help: "Leadership terms of this server that ended (lost, timed out or resigned).",
      registers,
      collect() {
        setCounter(this, {}, sources().election?.()?.termsLost ?? 0);
      },
    });
    new Gauge({
      name: NAMES.queueDepth,
      help: "Events waiting in the reconcile queue (0 on a standby).",
      registers,
      collect() {
        this.set(sources().reconcileQueueDepth?.() ?? 0);
      },
    });
    new Gauge({
      name: NAMES.massFailure,
      help: "1 for each group whose replacements the mass-failure guard holds back (leader only).",
      labelNames: ["group"],
      registers,
      collect() {
        this.reset();
        for (const group of sources().massFailureGroups?.() ?? []) this.set({ group }, 1);
      },
    });
    this.#reconcileDuration = new Histogram({
      name: NAMES.reconcileDuration,
      help: "Wall time of one reconcile pass (read state, plan, dispatch actions).",
      buckets: DEFAULT_RECONCILE_BUCKETS_S,
      registers,
    });
    this.#reconcileActions = new Counter({
      name: NAMES.reconcileActions,
      help: "Reconciler actions (create, delete, drain) by outcome (done, failed, dropped).",
      labelNames: ["action", "outcome"],
      registers,
    });
    this.#providerCalls = new Counter({
      name: NAMES.providerCalls,
      help: "Calls to the infrastructure provider by operation and outcome.",
      labelNames: ["provider", "operation", "outcome"],
      registers,
    });
    this.#providerErrors = new Counter({
      name: NAMES.providerErrors,
      help: "Failed provider calls by operation; transient errors are retried.",
      labelNames: ["provider", "operation", "transient"],
      registers,
    });
    this.#providerDuration = new Histogram({
      name: NAMES.providerDuration,
      help: "Duration of provider calls by operation.",
      labelNames: ["provider", "operation"],
      buckets: DEFAULT_PROVIDER_BUCKETS_S,
      registers,
    });
    new Gauge({
      name: NAMES.instances,
      help: "Live instances by tenant, group and state (reported by the shard leader only).",
      labelNames: ["tenant", "group", "state"],
      registers,
      collect() {
        this.reset();
        const view = sources().instances?.();
        if (!view) return;
        for (const g of countInstances(view.rows, view.groups)) {
          for (const state of INSTANCE_STATES) {
            this.set({ tenant: g.tenant, group: g.group, state }, g.states[state]);
          }
        }
      },
    });
    new Gauge({
      name: NAMES.desired,
      help: "Desired size of each group (reported by the shard leader only).",
      labelNames: ["tenant", "group"],
      registers,
      collect() {
        this.reset();
        for (const g of sources().instances?.()?.groups ?? []) {
          this.set({ tenant: g.tenant, group: g.key }, g.size);
        }
      },
    });
    new Gauge({
      name: NAMES.agents,
      help: "Agents with an open health stream to this server.",
      registers,
      collect() {
        this.set(sources().connectedAgents?.() ?? 0);
      },
    });
    new Counter({
      name: NAMES.reports,
      help: "Health reports received: stored, refused (invalid, not leader) or shed (overload).",
      labelNames: ["result"],
      registers,
      collect() {
        const r = sources().reports?.() ?? { stored: 0, refused: 0, shed: 0 };
        this.reset();
        this.inc({ result: "stored" }, r.stored);
        this.inc({ result: "refused" }, r.refused);
        this.inc({ result: "shed" }, r.shed);
      },
    });
    this.#detection = new Histogram({
      name: NAMES.detection,
      help: "Time from an instance's last health report (or registration) to the verdict that it is unhealthy.",
      labelNames: ["reason"],
      buckets: DEFAULT_LIFECYCLE_BUCKETS_S,
      registers,
    });
    this.#replacement = new Histogram({
      name: NAMES.replacement,
      help: "Time from an instance being found unhealthy (or given a termination notice) to its replacement being created.",
      labelNames: ["reason"],
      buckets: DEFAULT_LIFECYCLE_BUCKETS_S,
      registers,
    });
    this.#replacements = new Counter({
      name: NAMES.replacements,
      help: "Replacement instances created, by the reason the old one goes.",
      labelNames: ["reason"],
      registers,
    });
    this.#storageOps = new Counter({
      name: NAMES.storageOps,
      help: "Object storage operations (after retries) by operation and outcome.",
      labelNames: ["operation", "outcome"],
      registers,
    });
    this.#storageErrors = new Counter({
      name: NAMES.storageErrors,
      help: "Object storage operations that failed (after retries); lost conditional writes are not errors.",
      labelNames: ["operation"],
      registers,
    });
    this.#storageConflicts = new Counter({
      name: NAMES.storageConflicts,
      help: "Conditional writes lost to another writer (412/409): normal during elections.",
      labelNames: ["operation"],
      registers,
    });
    this.#storageDuration = new Histogram({
      name: NAMES.storageDuration,
      help: "Duration of object storage operations (including retries).",
      labelNames: ["operation"],
      buckets: DEFAULT_STORAGE_BUCKETS_S,
      registers,
    });
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: "nstance_" });
  }

  /** Adds or replaces scrape-time sources (stages of the server attach theirs as they start). */
  setSources(sources: MetricsSources): void {
    this.#sources = { ...this.#sources, ...sources };
  }

  /** Records one provider call. */
  providerCall(
    provider: string,
    operation: string,
    durationMs: number,
    outcome: ProviderOutcome,
    transient?: boolean,
  ): void {
    this.#providerCalls.inc({ provider, operation, outcome });
    this.#providerDuration.observe({ provider, operation }, durationMs / 1000);
    if (outcome === "error") {
      this.#providerErrors.inc({ provider, operation, transient: transient ? "true" : "false" });
    }
  }

  /** Records one object storage operation. */
  storageOperation(operation: string, durationMs: number, outcome: StorageOutcome): void {
    this.#storageOps.inc({ operation, outcome });
    this.#storageDuration.observe({ operation }, durationMs / 1000);
    if (outcome === "error") this.#storageErrors.inc({ operation });
    if (outcome === "conflict") this.#storageConflicts.inc({ operation });
  }

  /** Records one reconcile pass. */
  reconcilePass(durationMs: number): void {
    this.#reconcileDuration.observe(durationMs / 1000);
  }

  /** Records one reconciler action. */
  reconcileAction(action: string, outcome: string): void {
    this.#reconcileActions.inc({ action, outcome });
  }

  /** Records a verdict that an instance is unhealthy, `durationMs` after its last sign of life. */
  unhealthyDetected(reason: string, durationMs: number): void {
    this.#detection.observe({ reason }, Math.max(0, durationMs) / 1000);
  }

  /** Records a replacement created; `durationMs` since the verdict or notice, when known. */
  replacementCreated(reason: string, durationMs: number | undefined): void {
    this.#replacements.inc({ reason });
    if (durationMs !== undefined)
      this.#replacement.observe({ reason }, Math.max(0, durationMs) / 1000);
  }

  /** The text exposition and its content type, for `GET /metrics`. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** Sets a counter to an absolute value read from elsewhere (counters have no `set`). */
function setCounter<T extends string>(
  c: Counter<T>,
  labels: Partial<Record<T, string>>,
  value: number,
): void {
  c.reset();
  c.inc(labels, value);
}
