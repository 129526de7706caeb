// SPDX-License-Identifier: Apache-2.0
/**
 * The reconciler of one leadership term (seed 001, reference §5.7): one bounded event queue, one
 * decision function. Every event (initial, group change, instance change, action done, timer) only
 * asks for a pass; a pass reads the groups and every live instance row, runs the pure
 * {@link plan}, and carries the actions out:
 *
 * - drains at once (SQLite + a `pending_deletion` notice to WatchInstances);
 * - creates and deletes as background tasks through the {@link InstanceExecutor}. Work in flight
 *   is overlaid on the next pass's input (a create as a pending instance, a delete as `deleting`),
 *   so no pass plans the same work twice. Creates run one at a time per group; a delete of an
 *   instance whose replacement create is still in flight waits for it (replacement first).
 *
 * Failures are retried with backoff (retry-policy.ts) and reported to WatchErrors. Events and
 * actions of another term are dropped; the executor checks the term before each provider call.
 */
import type { EffectiveGroup } from "../config/server-config.js";
import type { Db } from "../db/database.js";
import { recordDecision } from "../db/decisions-table.js";
import {
  ackInstanceDrain,
  clearInstanceUnhealthy,
  type DrainAckOutcome,
  getLiveInstance,
  listLiveInstances,
  markInstanceUnhealthy,
  setInstanceTerminationNotice,
  startInstanceDrain,
} from "../db/instance-lifecycle.js";
import { getInstance } from "../db/instances-table.js";
import type { ErrorEvent, InstanceEvent } from "../protocol/gen/nstance/v1/operator.js";
import { newInstanceId } from "../providers/instance-id.js";
import { errorMessage, isAbortError, NstanceError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { pendingDeletionEvent } from "./drain-snapshot.js";
import type { GroupSource } from "./group-source.js";
import type {
  CreateOverrides,
  ExecutorDeleteOptions,
  ExecutorDeleteOutcome,
  InstanceExecutor,
} from "./instance-executor.js";
import { plan } from "./plan.js";
import { toPlanGroup, toPlanInstance } from "./plan-input.js";
import type {
  Action,
  AlertAction,
  CreateAction,
  DeleteAction,
  DrainAction,
  MassFailureGuard,
  PlanInstance,
} from "./plan-types.js";
import { groupRef } from "./plan-types.js";
import {
  DEFAULT_RETRY_POLICY,
  isRetryExhausted,
  type RetryPolicy,
  retryDelayMs,
} from "./retry-policy.js";
import type { TenantEvents } from "./tenant-events.js";

/** Events the queue holds before new ones are dropped (each only asks for a pass). */
export const DEFAULT_RECONCILE_QUEUE_CAPACITY = 1000;
/** A pass runs at least this often even when nothing happens (catches missed triggers). */
export const DEFAULT_RESYNC_INTERVAL_MS = 60_000;
/** Creates of one group in flight at once: one, as the reference serialises them. */
export const DEFAULT_CREATES_IN_FLIGHT_PER_GROUP = 1;

/** What asked for a pass. */
export type ReconcileTrigger =
  | "initial"
  | "group-changed"
  | "instance-changed"
  | "action-done"
  | "timer"
  | "resync";

/** One queued event, tagged with the leadership term it was raised under. */
export interface ReconcileEvent {
  term: number;
  trigger: ReconcileTrigger;
  tenant?: string;
  group?: string;
  instanceId?: string;
}

/** An action the reconciler carried out (or dropped), for observers such as invariant checks. */
export interface ExecutedAction {
  action: Action;
  /** The instance acted on; for a create, the new instance. */
  instanceId: string;
  /** `dropped`: the term ended (or the reconciler stopped) before the provider was called. */
  outcome: "done" | "failed" | "dropped";
  error?: string;
  at: number;
}

/** Answers whether a term is still current (a TermFence or the elector). */
export interface TermCheck {
  isCurrentTerm(term: number): boolean;
}

/** Observation points for metrics (issue 8). */
export interface ReconcilerHooks {
  /** After every pass, with its wall time in ms. */
  passDone?(durationMs: number): void;
  /** After an unhealthy verdict is recorded (`at` = the verdict's time, unix ms). */
  foundUnhealthy?(e: { instanceId: string; reason: string; at: number }): void;
}

/** Options for {@link Reconciler}. */
export interface ReconcilerOptions {
  /** The leadership term this reconciler works for. */
  term: number;
  /** Checked before every pass; the executor checks it again before each provider call. */
  fence: TermCheck;
  db: Db;
  groups: GroupSource;
  executor: InstanceExecutor;
  logger: Logger;
  /** Receives `pending_deletion` (drain started) and `deleted` (drained instance gone) events. */
  drainNotifier?: TenantEvents<InstanceEvent>;
  /** Receives failures and mass-failure alerts. */
  errorNotifier?: TenantEvents<ErrorEvent>;
  /** The term's signal: the reconciler stops when it aborts. */
  signal?: AbortSignal;
  /** Clock in unix ms. Defaults to `Date.now`. */
  now?: () => number;
  /** See {@link DEFAULT_RECONCILE_QUEUE_CAPACITY}. */
  queueCapacity?: number;
  /** See {@link DEFAULT_RESYNC_INTERVAL_MS}. */
  resyncIntervalMs?: number;
  /** See {@link DEFAULT_CREATES_IN_FLIGHT_PER_GROUP}. */
  createsInFlightPerGroup?: number;
  /** Shard-wide bound on pending instances plus planned creates. Absent = unbounded. */
  maxConcurrentCreates?: number;
  /** Absent = the planner's default guard. A function is read at every pass (config refresh). */
  guard?: MassFailureGuard | (() => MassFailureGuard);
  /** Defaults to {@link DEFAULT_RETRY_POLICY}. */
  retry?: Partial<RetryPolicy>;
  /** Random source for retry jitter. */
  random?: () => number;
  /** Called after every executed (or failed, or dropped) create, delete and drain. */
  onAction?: (e: ExecutedAction) => void;
  /** Metrics hooks (issue 8); called synchronously, they must be cheap and must not throw. */
  hooks?: ReconcilerHooks;
}

/** Lifecycle of a {@link Reconciler}. */
export type ReconcilerState = "new" | "running" | "stopping" | "stopped";

/** Counters, for logs, metrics and tests. */
export interface ReconcilerStats {
  passes: number;
  /** Events dropped because the queue was full. */
  eventsDropped: number;
  /** Events of another term, dropped unprocessed. */
  staleEventsDropped: number;
  createsDone: number;
  createsFailed: number;
  deletesDone: number;
  deletesFailed: number;
  drainsStarted: number;
  /** Actions not carried out because the term ended first. */
  actionsDropped: number;
  /** Wall time of the last pass, ms. */
  lastPassMs: number;
}

/** A health verdict for {@link Reconciler.markUnhealthy} (issue 7). */
export interface HealthVerdict {
  /** Evidence for humans: `not-found`, `stopped`, `missed-reports` … */
  reason: string;
  /** True when the VM is gone or not running: replace now and delete without drain. */
  skipDrain: boolean;
  /** Facts for the decision history (provider status, last report age …). */
  evidence?: Record<string, unknown>;
}

/** A spot/preemption termination notice for {@link Reconciler.noteTerminationNotice}. */
export interface TerminationNotice {
  /** When the provider takes the VM; absent = unknown. */
  deadlineAt?: number;
  /** The provider's action text (`terminate`, `stop` …). */
  action?: string;
}

/** What {@link Reconciler.createOnDemand} returns. */
export interface OnDemandCreated {
  instanceId: string;
  providerInstanceId: string;
  status: string;
}

/** Options of {@link Reconciler.deleteInstance}. */
export interface DeleteInstanceOptions {
  /** Defaults to `operator`. */
  reason?: string;
  evidence?: Record<string, unknown>;
}

/** Work in flight, for observers and tests. */
export interface InFlightWork {
  creates: Array<{
    instanceId: string;
    tenant: string;
    group: string;
    reason: string;
    replaces?: string;
  }>;
  deletes: Array<{ instanceId: string; reason: string }>;
}

interface InFlightCreate {
  id: string;
  tenant: string;
  group: string;
  ref: string;
  reason: string;
  replaces?: string;
  startedAt: number;
  infraHash: string;
  /** Settles when the create has finished (either way). */
  done?: Promise<void>;
}

interface InFlightDelete {
  reason: string;
  ref: string;
  /** Leaves because its group shrank (scale-down, group deletion): outside the size + 1 cap. */
  surplus: boolean;
  done: Promise<ExecutorDeleteOutcome>;
}

const SURPLUS_DELETE_REASONS: ReadonlySet<string> = new Set(["scale-down", "group-deleted"]);

interface RetryState {
  ref: string;
  failures: number;
  /** Next attempt no earlier than this; absent once given up. */
  retryAt?: number;
  gaveUp: boolean;
  /** Creates failed because no subnet had room: the planner is told so and defers them. */
  noCapacity: boolean;
}

const DROP_WARN_EVERY = 100;

/** The reconciler of one leadership term; see the file comment. */
export class Reconciler {
  readonly #term: number;
  readonly #fence: TermCheck;
  readonly #db: Db;
  readonly #groups: GroupSource;
  readonly #executor: InstanceExecutor;
  readonly #logger: Logger;
  readonly #drainNotifier: TenantEvents<InstanceEvent> | undefined;
  readonly #errorNotifier: TenantEvents<ErrorEvent> | undefined;
  readonly #now: () => number;
  readonly #capacity: number;
  readonly #resyncMs: number;
  readonly #perGroup: number;
  readonly #maxConcurrentCreates: number | undefined;
  readonly #guard: MassFailureGuard | (() => MassFailureGuard) | undefined;
  readonly #retryPolicy: RetryPolicy;
  readonly #random: () => number;
  readonly #onAction: ReconcilerOptions["onAction"];
  readonly #hooks: ReconcilerHooks | undefined;
  readonly #ctl = new AbortController();
  readonly #signal: AbortSignal;

  #state: ReconcilerState = "new";
  readonly #queue: ReconcileEvent[] = [];
  #wakeLoop: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #stopped: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;
  readonly #creates = new Map<string, InFlightCreate>();
  readonly #deletes = new Map<string, InFlightDelete>();
  readonly #tasks = new Set<Promise<void>>();
  readonly #retries = new Map<string, RetryState>();
  readonly #lastCreateAt = new Map<string, number>();
  #alerts = new Set<string>();
  #idleWaiters: Array<() => void> = [];
  readonly #stats: ReconcilerStats = {
    passes: 0,
    eventsDropped: 0,
    staleEventsDropped: 0,
    createsDone: 0,
    createsFailed: 0,
    deletesDone: 0,
    deletesFailed: 0,
    drainsStarted: 0,
    actionsDropped: 0,
    lastPassMs: 0,
  };

  constructor(opts: ReconcilerOptions) {
    if (!opts.db) throw new TypeError("db is required");
    if (!opts.groups) throw new TypeError("groups is required");
    if (!opts.executor) throw new TypeError("executor is required");
    if (!opts.fence) throw new TypeError("fence is required");
    this.#term = opts.term;
    this.#fence = opts.fence;
    this.#db = opts.db;
    this.#groups = opts.groups;
    this.#executor = opts.executor;
    this.#logger = opts.logger.child({ subsystem: "reconciler", term: opts.term });
    this.#drainNotifier = opts.drainNotifier;
    this.#errorNotifier = opts.errorNotifier;
    this.#now = opts.now ?? Date.now;
    this.#capacity = opts.queueCapacity ?? DEFAULT_RECONCILE_QUEUE_CAPACITY;
    this.#resyncMs = opts.resyncIntervalMs ?? DEFAULT_RESYNC_INTERVAL_MS;
    this.#perGroup = Math.max(
      1,
      opts.createsInFlightPerGroup ?? DEFAULT_CREATES_IN_FLIGHT_PER_GROUP,
    );
    this.#maxConcurrentCreates = opts.maxConcurrentCreates;
    this.#guard = opts.guard;
    this.#retryPolicy = { ...DEFAULT_RETRY_POLICY, ...opts.retry };
    this.#random = opts.random ?? Math.random;
    this.#onAction = opts.onAction;
    this.#hooks = opts.hooks;
    this.#signal = opts.signal
      ? AbortSignal.any([opts.signal, this.#ctl.signal])
      : this.#ctl.signal;
    opts.signal?.addEventListener("abort", () => void this.stop(), { once: true });
  }

  /** The leadership term this reconciler works for. */
  get term(): number {
    return this.#term;
  }

  /** Where the reconciler is in its lifecycle. */
  get state(): ReconcilerState {
    return this.#state;
  }

  /** Events waiting in the queue. */
  get queueDepth(): number {
    return this.#queue.length;
  }

  /** Subscribes to group changes and starts the loop with the initial reconciliation. */
  start(): void {
    if (this.#state !== "new") return;
    if (this.#signal.aborted) {
      this.#state = "stopped";
      return;
    }
    this.#state = "running";
    this.#unsubscribe = this.#groups.subscribe((change) => {
      const tenant = change.type === "upsert" ? change.group.tenant : change.tenant;
      const group = change.type === "upsert" ? change.group.key : change.key;
      this.enqueue({ term: this.#term, trigger: "group-changed", tenant, group });
    });
    this.enqueue({ term: this.#term, trigger: "initial" });
    this.#loop = this.#run();
    this.#logger.info("Reconciler started");
  }

  /** Stops the loop and waits for the actions in flight (aborted with the term). Idempotent. */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      this.#state = "stopping";
      this.#unsubscribe?.();
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#ctl.abort(new NstanceError("aborted", "reconciler stopped"));
      this.#wakeLoop?.();
      await this.#loop;
      await Promise.allSettled([...this.#tasks]);
      this.#state = "stopped";
      this.#notifyIdle(true);
      this.#logger.info("Reconciler stopped", { ...this.#stats });
    })();
    return this.#stopped;
  }

  /**
   * Queues an event. Events of another term are dropped when processed; past the queue's capacity
   * new events are dropped with a warning (a queued event already guarantees a full pass).
   */
  enqueue(event: ReconcileEvent): void {
    if (this.#state !== "running") return;
    if (this.#queue.length >= this.#capacity) {
      this.#stats.eventsDropped++;
      if (this.#stats.eventsDropped % DROP_WARN_EVERY === 1) {
        this.#logger.warn("Reconcile queue full; event dropped", {
          trigger: event.trigger,
          capacity: this.#capacity,
          dropped_total: this.#stats.eventsDropped,
        });
      }
      return;
    }
    this.#queue.push(event);
    this.#wakeLoop?.();
  }

  /** Asks for a pass because group `tenant/key` changed (also clears its retry backoff). */
  groupChanged(tenant: string, key: string): void {
    this.enqueue({ term: this.#term, trigger: "group-changed", tenant, group: key });
  }

  /** Asks for a pass because something about an instance changed (registered, deleted elsewhere …). */
  instanceChanged(instanceId: string): void {
    this.enqueue({ term: this.#term, trigger: "instance-changed", instanceId });
  }

  /**
   * Records a failed health verdict (issue 7) and asks for a pass: the instance is replaced first,
   * then drained (or deleted at once with `skipDrain`). Returns false for an unknown or deleted
   * instance, one being deleted, or a verdict that changes nothing (already unhealthy the same way).
   */
  markUnhealthy(instanceId: string, verdict: HealthVerdict): boolean {
    // Being deleted already: its agent going away is our own doing, not a failure.
    if (this.#deletes.has(instanceId)) return false;
    const at = this.#now();
    const changed = markInstanceUnhealthy(this.#db, instanceId, {
      at,
      reason: verdict.reason,
      skipDrain: verdict.skipDrain,
    });
    if (!changed) return false;
    recordDecision(this.#db, {
      instanceId,
      decision: "found_unhealthy",
      reason: verdict.reason,
      evidence: { ...verdict.evidence, skip_drain: verdict.skipDrain },
      at,
    });
    this.#hooks?.foundUnhealthy?.({ instanceId, reason: verdict.reason, at });
    this.#logger.info("Instance marked unhealthy", {
      instance_id: instanceId,
      reason: verdict.reason,
      skip_drain: verdict.skipDrain,
    });
    this.instanceChanged(instanceId);
    return true;
  }

  /**
   * Clears a drain-coordinated unhealthy verdict because the agent reports again (a healed network
   * split), as long as nothing acted on it yet: no drain, no replacement created or in flight.
   * Under the mass-failure guard this is how the unhealthy share falls. Returns false otherwise.
   */
  markRecovered(instanceId: string, evidence: Record<string, unknown> = {}): boolean {
    for (const c of this.#creates.values()) if (c.replaces === instanceId) return false;
    const row = getLiveInstance(this.#db, instanceId);
    const at = this.#now();
    if (!row || !clearInstanceUnhealthy(this.#db, instanceId, at)) return false;
    recordDecision(this.#db, {
      instanceId,
      decision: "recovered",
      reason: row.unhealthyReason ?? "unhealthy",
      evidence: {
        ...evidence,
        ...(row.unhealthyAt === undefined ? {} : { unhealthy_ms: at - row.unhealthyAt }),
      },
      at,
    });
    this.#logger.info("Instance recovered; unhealthy verdict cleared", {
      instance_id: instanceId,
      reason: row.unhealthyReason,
    });
    this.instanceChanged(instanceId);
    return true;
  }

  /** Records a spot/preemption notice and asks for a pass; false for an unknown or deleted instance. */
  noteTerminationNotice(instanceId: string, notice: TerminationNotice = {}): boolean {
    const at = this.#now();
    const row = getLiveInstance(this.#db, instanceId);
    const known = row?.spotNoticeAt !== undefined;
    if (
      !setInstanceTerminationNotice(this.#db, instanceId, { at, deadlineAt: notice.deadlineAt })
    ) {
      return false;
    }
    if (!known) {
      recordDecision(this.#db, {
        instanceId,
        decision: "termination_notice",
        reason: "spot-terminating",
        evidence: {
          ...(notice.action ? { action: notice.action } : {}),
          ...(notice.deadlineAt === undefined
            ? {}
            : { deadline_at: new Date(notice.deadlineAt).toISOString() }),
        },
        at,
      });
    }
    this.instanceChanged(instanceId);
    return true;
  }

  /**
   * AcknowledgeDrained: the operator drained the instance, so it is deleted promptly. `acked` and
   * `already_acked` are success; `not_draining` changes nothing (a new leader may re-notify);
   * `unknown` = no live instance.
   */
  acknowledgeDrained(instanceId: string): DrainAckOutcome {
    const at = this.#now();
    const outcome = ackInstanceDrain(this.#db, instanceId, at);
    if (outcome === "acked") {
      const row = getLiveInstance(this.#db, instanceId);
      recordDecision(this.#db, {
        instanceId,
        decision: "drain_acked",
        reason: row?.drainReason ?? "drain",
        evidence: row?.drainStartedAt === undefined ? {} : { drain_ms: at - row.drainStartedAt },
        at,
      });
      this.instanceChanged(instanceId);
    } else if (outcome === "not_draining") {
      recordDecision(this.#db, {
        instanceId,
        decision: "drain_ack_ignored",
        reason: "not-draining",
        at,
      });
    }
    return outcome;
  }

  /**
   * CreateInstance: an on-demand instance of group `tenant/group` (never counted or scaled by the
   * reconciler). Throws `not_found` for an unknown group, `unavailable` once stopped, and what the
   * executor throws.
   */
  async createOnDemand(
    tenant: string,
    group: string,
    opts: { instanceId?: string; overrides?: CreateOverrides } = {},
    signal?: AbortSignal,
  ): Promise<OnDemandCreated> {
    this.#assertRunning();
    const g = this.#groups
      .current()
      .effective.groups.find((x) => x.tenant === tenant && x.key === group);
    if (!g)
      throw new NstanceError("not_found", `group ${group} does not exist in tenant ${tenant}`);
    const created = await this.#executor.create(
      tenant,
      group,
      {
        reason: "on-demand",
        onDemand: true,
        ...(opts.instanceId ? { instanceId: opts.instanceId } : {}),
        ...(opts.overrides ? { overrides: opts.overrides } : {}),
      },
      this.#term,
      signal ? AbortSignal.any([this.#signal, signal]) : this.#signal,
    );
    return {
      instanceId: created.instanceId,
      providerInstanceId: created.providerInstanceId,
      status: created.status,
    };
  }

  /**
   * DeleteInstance (and garbage collection): deletes a live instance now, without drain, and
   * asks for a pass so a managed group is backfilled. `unknown` when there is nothing to delete;
   * a delete already in flight is awaited. Failures are thrown to the caller.
   */
  async deleteInstance(
    instanceId: string,
    opts: DeleteInstanceOptions = {},
    signal?: AbortSignal,
  ): Promise<"deleting" | "unknown"> {
    this.#assertRunning();
    // A create still in flight finishes first, or its VM would outlive the deleted row.
    await this.#creates.get(instanceId)?.done;
    const inFlight = this.#deletes.get(instanceId);
    if (inFlight) {
      await inFlight.done;
      return "deleting";
    }
    const row = getInstance(this.#db, instanceId);
    if (!row || row.deletedAt !== undefined) return "unknown";
    const outcome = await this.#startDelete(
      instanceId,
      groupRef(row.tenant, row.groupKey),
      {
        reason: opts.reason ?? "operator",
        skipDrain: true,
        ...(opts.evidence ? { evidence: opts.evidence } : {}),
      },
      signal,
    );
    return outcome === "deleted" ? "deleting" : "unknown";
  }

  /** Creates and deletes in flight right now. */
  inFlight(): InFlightWork {
    return {
      creates: [...this.#creates.values()].map((c) => ({
        instanceId: c.id,
        tenant: c.tenant,
        group: c.group,
        reason: c.reason,
        ...(c.replaces ? { replaces: c.replaces } : {}),
      })),
      deletes: [...this.#deletes].map(([instanceId, d]) => ({ instanceId, reason: d.reason })),
    };
  }

  /** Groups (`tenant/key`) whose replacements the mass-failure guard holds right now. */
  massFailureGroups(): string[] {
    return [...this.#alerts];
  }

  /** A copy of the counters. */
  stats(): ReconcilerStats {
    return { ...this.#stats };
  }

  /**
   * Resolves once the queue is empty and no action is in flight (timers may still be set), or
   * once stopped. Rejects with the signal's reason on abort.
   */
  whenIdle(signal?: AbortSignal): Promise<void> {
    if (this.#isIdle() || this.#state === "stopped") return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = (): void => reject(signal?.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#idleWaiters.push(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
    });
  }

  // ---- loop ------------------------------------------------------------------------------------

  async #run(): Promise<void> {
    while (this.#state === "running") {
      if (this.#queue.length === 0) {
        this.#notifyIdle(false);
        await new Promise<void>((resolve) => {
          this.#wakeLoop = resolve;
        });
        this.#wakeLoop = undefined;
        continue;
      }
      const events = this.#queue.splice(0);
      if (!this.#fence.isCurrentTerm(this.#term)) {
        this.#stats.staleEventsDropped += events.length;
        this.#logger.info("Leadership term ended; reconciler stops", { dropped: events.length });
        void this.stop();
        return;
      }
      let current = 0;
      for (const e of events) {
        if (e.term !== this.#term) {
          this.#stats.staleEventsDropped++;
          continue;
        }
        current++;
        this.#onEvent(e);
      }
      if (current === 0) continue;
      try {
        this.#pass();
      } catch (err) {
        this.#logger.error("Reconcile pass failed", { err: errorMessage(err) });
        this.#setTimer(this.#now() + this.#retryPolicy.initialMs);
      }
      // Let finished actions report before the next pass, so bursts of completions share one.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  #onEvent(e: ReconcileEvent): void {
    if (e.trigger === "group-changed" && e.tenant !== undefined && e.group !== undefined) {
      // A changed group gets a fresh set of attempts: the change may be the fix.
      const ref = groupRef(e.tenant, e.group);
      for (const [key, st] of this.#retries) if (st.ref === ref) this.#retries.delete(key);
    } else if (e.trigger === "instance-changed" && e.instanceId !== undefined) {
      this.#retries.delete(`delete:${e.instanceId}`);
    }
  }

  #pass(): void {
    const started = performance.now();
    const now = this.#now();
    const { config, effective } = this.#groups.current();
    const instances = listLiveInstances(this.#db).map(toPlanInstance);
    const byId = new Map<string, PlanInstance>(instances.map((i) => [i.id, i]));
    for (const id of this.#deletes.keys()) {
      const p = byId.get(id);
      if (p) p.status = "deleting";
    }
    for (const c of this.#creates.values()) {
      if (!byId.has(c.id)) {
        const p: PlanInstance = {
          id: c.id,
          tenant: c.tenant,
          group: c.group,
          onDemand: false,
          createdAt: c.startedAt,
          status: "pending",
          infraHash: c.infraHash,
        };
        instances.push(p);
        byId.set(c.id, p);
      }
      if (c.replaces !== undefined) {
        const old = byId.get(c.replaces);
        if (old) old.replacedBy = c.id;
      }
    }
    const groupsByRef = new Map<string, EffectiveGroup>();
    const planGroups = effective.groups.map((g) => {
      const ref = groupRef(g.tenant, g.key);
      groupsByRef.set(ref, g);
      return toPlanGroup(g, config.shard.createRateLimitMs, !this.#lacksCapacity(ref, now));
    });
    const expiry = config.shard.expiry;
    const result = plan(planGroups, instances, {
      now,
      defaultDrainTimeoutMs: config.shard.defaultDrainTimeoutMs,
      ...(expiry.eligibleAgeMs === undefined ? {} : { eligibleAgeMs: expiry.eligibleAgeMs }),
      ...(expiry.forcedAgeMs === undefined ? {} : { forcedAgeMs: expiry.forcedAgeMs }),
      lastCreateAt: this.#lastCreateAt,
      ...(this.#maxConcurrentCreates === undefined
        ? {}
        : { maxConcurrentCreates: this.#maxConcurrentCreates }),
      ...(this.#guard
        ? { guard: typeof this.#guard === "function" ? this.#guard() : this.#guard }
        : {}),
    });
    this.#execute(result.actions, now, byId, groupsByRef);
    this.#schedule(now, result.nextWakeAt);
    this.#stats.passes++;
    this.#stats.lastPassMs = performance.now() - started;
    this.#hooks?.passDone?.(this.#stats.lastPassMs);
  }

  #execute(
    actions: readonly Action[],
    now: number,
    byId: ReadonlyMap<string, PlanInstance>,
    groupsByRef: ReadonlyMap<string, EffectiveGroup>,
  ): void {
    /**
     * Instances whose replacement create was issued or held back this pass: their delete waits
     * for a later pass, after the create has finished (replacement first).
     */
    const heldBack = new Set<string>();
    const alerts = new Set<string>();
    for (const a of actions) {
      switch (a.kind) {
        case "create": {
          const ref = groupRef(a.tenant, a.group);
          const g = groupsByRef.get(ref);
          if (
            !g ||
            this.#isBlocked(`create:${ref}`, now) ||
            this.#createsOf(ref) >= this.#perGroup ||
            this.#deletingIn(ref)
          ) {
            if (a.replaces !== undefined) heldBack.add(a.replaces);
            break;
          }
          this.#dispatchCreate(a, g, now);
          if (a.replaces !== undefined) heldBack.add(a.replaces);
          break;
        }
        case "delete": {
          const x = byId.get(a.instanceId);
          if (
            this.#deletes.has(a.instanceId) ||
            this.#creates.has(a.instanceId) ||
            heldBack.has(a.instanceId) ||
            (x?.replacedBy !== undefined && this.#creates.has(x.replacedBy)) ||
            this.#isBlocked(`delete:${a.instanceId}`, now)
          ) {
            break;
          }
          this.#dispatchPlannedDelete(a, now);
          break;
        }
        case "drain":
          this.#drain(a, now);
          break;
        case "defer":
          this.#logger.debug("Create deferred", {
            tenant: a.tenant,
            group: a.group,
            reason: a.reason,
            blocked_by: a.blockedBy,
            count: a.count,
          });
          break;
        case "alert":
          alerts.add(groupRef(a.tenant, a.group));
          this.#alert(a);
          break;
      }
    }
    for (const ref of this.#alerts) {
      if (!alerts.has(ref))
        this.#logger.info("Mass-failure guard cleared; replacing again", { group: ref });
    }
    this.#alerts = alerts;
  }

  #alert(a: AlertAction): void {
    const ref = groupRef(a.tenant, a.group);
    if (this.#alerts.has(ref)) return;
    const message =
      `mass failure: ${a.unhealthyCount} instances of group ${a.group} are unhealthy ` +
      `(limit ${a.limit}); replacements paused until fewer are`;
    this.#logger.warn("Mass-failure guard tripped; replacements paused", {
      tenant: a.tenant,
      group: a.group,
      unhealthy: a.unhealthyCount,
      limit: a.limit,
    });
    this.#publishError(a.tenant, a.group, "", message);
  }

  #drain(a: DrainAction, now: number): void {
    if (
      !startInstanceDrain(this.#db, a.instanceId, {
        at: now,
        deadlineAt: a.deadlineAt,
        reason: a.reason,
      })
    ) {
      return;
    }
    recordDecision(this.#db, {
      instanceId: a.instanceId,
      decision: "drain_notified",
      reason: a.reason,
      evidence: { delete_at: new Date(a.deadlineAt).toISOString(), drain_ms: a.deadlineAt - now },
      at: now,
    });
    this.#stats.drainsStarted++;
    this.#logger.info("Drain started", {
      instance_id: a.instanceId,
      tenant: a.tenant,
      group: a.group,
      reason: a.reason,
      delete_at: new Date(a.deadlineAt).toISOString(),
    });
    const row = getLiveInstance(this.#db, a.instanceId);
    if (row) this.#drainNotifier?.publish(a.tenant, pendingDeletionEvent(row));
    this.#observe({ action: a, instanceId: a.instanceId, outcome: "done", at: now });
  }

  #dispatchCreate(a: CreateAction, g: EffectiveGroup, now: number): void {
    const ref = groupRef(a.tenant, a.group);
    const id = newInstanceId(g.kind);
    this.#creates.set(id, {
      id,
      tenant: a.tenant,
      group: a.group,
      ref,
      reason: a.reason,
      ...(a.replaces === undefined ? {} : { replaces: a.replaces }),
      startedAt: now,
      infraHash: g.infraHash,
    });
    this.#lastCreateAt.set(ref, now);
    const entry = this.#creates.get(id)!;
    entry.done = this.#track(async () => {
      try {
        await this.#executor.create(
          a.tenant,
          a.group,
          {
            reason: a.reason,
            instanceId: id,
            ...(a.replaces === undefined ? {} : { replaces: a.replaces }),
          },
          this.#term,
          this.#signal,
        );
        this.#retries.delete(`create:${ref}`);
        this.#stats.createsDone++;
        this.#observe({ action: a, instanceId: id, outcome: "done", at: this.#now() });
      } catch (err) {
        if (this.#isDropped(err)) {
          this.#stats.actionsDropped++;
          this.#observe({ action: a, instanceId: id, outcome: "dropped", at: this.#now() });
          return;
        }
        this.#stats.createsFailed++;
        const noCapacity = err instanceof NstanceError && err.code === "resource_exhausted";
        this.#fail(
          `create:${ref}`,
          ref,
          err,
          { tenant: a.tenant, group: a.group, instanceId: id },
          noCapacity,
        );
        this.#observe({
          action: a,
          instanceId: id,
          outcome: "failed",
          error: errorMessage(err),
          at: this.#now(),
        });
      } finally {
        this.#creates.delete(id);
        this.enqueue({ term: this.#term, trigger: "action-done", instanceId: id });
      }
    });
  }

  #dispatchPlannedDelete(a: DeleteAction, now: number): void {
    const ref = groupRef(a.tenant, a.group);
    const key = `delete:${a.instanceId}`;
    if (a.reason === "drain-timeout" && !this.#retries.has(key)) {
      recordDecision(this.#db, {
        instanceId: a.instanceId,
        decision: "drain_timed_out",
        reason: a.drainReason ?? "drain",
        at: now,
      });
    }
    const opts: ExecutorDeleteOptions = {
      reason: a.reason,
      skipDrain: a.skipDrain,
      ...(a.drainReason === undefined ? {} : { drainReason: a.drainReason }),
    };
    void this.#track(async () => {
      try {
        await this.#startDelete(a.instanceId, ref, opts);
        this.#retries.delete(key);
        this.#observe({ action: a, instanceId: a.instanceId, outcome: "done", at: this.#now() });
      } catch (err) {
        if (this.#isDropped(err)) {
          this.#stats.actionsDropped++;
          this.#observe({
            action: a,
            instanceId: a.instanceId,
            outcome: "dropped",
            at: this.#now(),
          });
          return;
        }
        this.#fail(
          key,
          ref,
          err,
          { tenant: a.tenant, group: a.group, instanceId: a.instanceId },
          false,
        );
        this.#observe({
          action: a,
          instanceId: a.instanceId,
          outcome: "failed",
          error: errorMessage(err),
          at: this.#now(),
        });
      }
    });
  }

  /** Runs one delete (deduplicated by instance) and asks for a pass when it ends. */
  #startDelete(
    instanceId: string,
    ref: string,
    opts: ExecutorDeleteOptions,
    signal?: AbortSignal,
  ): Promise<ExecutorDeleteOutcome> {
    const existing = this.#deletes.get(instanceId);
    if (existing) return existing.done;
    const drained = getLiveInstance(this.#db, instanceId);
    // Registered before the executor runs, so a synchronous failure cannot leave a stale entry.
    const entry: InFlightDelete = {
      reason: opts.reason,
      ref,
      surplus: SURPLUS_DELETE_REASONS.has(opts.drainReason ?? opts.reason),
      done: Promise.resolve("unknown"),
    };
    this.#deletes.set(instanceId, entry);
    entry.done = (async () => {
      try {
        const outcome = await this.#executor.delete(
          instanceId,
          opts,
          this.#term,
          signal ? AbortSignal.any([this.#signal, signal]) : this.#signal,
        );
        this.#stats.deletesDone++;
        if (outcome === "deleted" && drained?.drainStartedAt !== undefined) {
          this.#drainNotifier?.publish(drained.tenant, {
            ...pendingDeletionEvent(drained),
            status: "deleted",
          });
        }
        return outcome;
      } catch (err) {
        if (!this.#isDropped(err)) this.#stats.deletesFailed++;
        throw err;
      } finally {
        if (this.#deletes.get(instanceId) === entry) this.#deletes.delete(instanceId);
        this.enqueue({ term: this.#term, trigger: "action-done", instanceId });
      }
    })();
    return entry.done;
  }

  // ---- helpers ---------------------------------------------------------------------------------

  /** Runs background work, tracked for `stop()` and `whenIdle()`; the promise never rejects. */
  #track(fn: () => Promise<void>): Promise<void> {
    const p = fn().catch((err: unknown) => {
      this.#logger.error("Reconciler action failed unexpectedly", { err: errorMessage(err) });
    });
    this.#tasks.add(p);
    void p.finally(() => {
      this.#tasks.delete(p);
    });
    return p;
  }

  /**
   * True while a delete of one of the group's instances that was not surplus is in flight. The
   * planner counts such an instance as gone, but its VM runs until the provider delete returns:
   * a create now (the next rotation, say) would have size + 2 running, so it waits for the
   * delete's end, which asks for the next pass.
   */
  #deletingIn(ref: string): boolean {
    for (const d of this.#deletes.values()) if (d.ref === ref && !d.surplus) return true;
    return false;
  }

  #createsOf(ref: string): number {
    let n = 0;
    for (const c of this.#creates.values()) if (c.ref === ref) n++;
    return n;
  }

  #isBlocked(key: string, now: number): boolean {
    const st = this.#retries.get(key);
    return st !== undefined && (st.gaveUp || (st.retryAt ?? 0) > now);
  }

  #lacksCapacity(ref: string, now: number): boolean {
    const st = this.#retries.get(`create:${ref}`);
    return st?.noCapacity === true && this.#isBlocked(`create:${ref}`, now);
  }

  #isDropped(err: unknown): boolean {
    return (
      this.#signal.aborted ||
      isAbortError(err) ||
      (err instanceof NstanceError && err.code === "aborted")
    );
  }

  #fail(
    key: string,
    ref: string,
    err: unknown,
    where: { tenant: string; group: string; instanceId: string },
    noCapacity: boolean,
  ): void {
    const st = this.#retries.get(key) ?? { ref, failures: 0, gaveUp: false, noCapacity };
    st.failures++;
    st.noCapacity = noCapacity;
    const attrs = {
      action: key.slice(0, key.indexOf(":")),
      tenant: where.tenant,
      group: where.group,
      instance_id: where.instanceId,
      failures: st.failures,
      err: errorMessage(err),
    };
    let message = errorMessage(err);
    if (isRetryExhausted(st.failures, this.#retryPolicy)) {
      st.gaveUp = true;
      delete st.retryAt;
      message += ` (gave up after ${st.failures} attempts; a change to the group or instance retries)`;
      this.#logger.error("Reconciler action failed; giving up", attrs);
    } else {
      st.retryAt = this.#now() + retryDelayMs(st.failures, this.#retryPolicy, this.#random);
      this.#logger.warn("Reconciler action failed; will retry", {
        ...attrs,
        retry_at: new Date(st.retryAt).toISOString(),
      });
    }
    this.#retries.set(key, st);
    this.#publishError(where.tenant, where.group, where.instanceId, message);
  }

  #publishError(tenant: string, group: string, instanceId: string, error: string): void {
    this.#errorNotifier?.publish(tenant, {
      group,
      instanceId,
      error,
      timestamp: new Date(this.#now()),
    });
  }

  #observe(e: ExecutedAction): void {
    if (!this.#onAction) return;
    try {
      this.#onAction(e);
    } catch (err) {
      this.#logger.error("Reconciler observer failed", { err: errorMessage(err) });
    }
  }

  #schedule(now: number, nextWakeAt: number | undefined): void {
    let at = now + this.#resyncMs;
    if (nextWakeAt !== undefined) at = Math.min(at, nextWakeAt);
    for (const st of this.#retries.values()) {
      if (!st.gaveUp && st.retryAt !== undefined && st.retryAt > now) at = Math.min(at, st.retryAt);
    }
    this.#setTimer(at);
  }

  #setTimer(at: number): void {
    if (this.#state !== "running") return;
    if (this.#timer) clearTimeout(this.#timer);
    // A timer pass never comes sooner than the last pass took: a short rate limit or deadline
    // cannot keep a large fleet's reconciler busy more than half the time. Events stay immediate.
    const delayMs = Math.max(1, at - this.#now(), Math.ceil(this.#stats.lastPassMs));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.enqueue({ term: this.#term, trigger: "timer" });
    }, delayMs);
  }

  #assertRunning(): void {
    if (this.#state !== "running" || !this.#fence.isCurrentTerm(this.#term)) {
      throw new NstanceError("unavailable", "the reconciler of this leadership term has stopped");
    }
  }

  #isIdle(): boolean {
    return this.#state === "running" && this.#queue.length === 0 && this.#tasks.size === 0;
  }

  #notifyIdle(force: boolean): void {
    if (!force && !this.#isIdle()) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }
}
