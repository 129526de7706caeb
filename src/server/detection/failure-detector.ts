// SPDX-License-Identifier: Apache-2.0
/**
 * Failure detection of one leadership term (seed 003 "Unhealthy Node Detection", reference §5.4).
 * Two things start watching an instance:
 *
 * - its agent's health stream was `lost` (not a graceful close): the agent crashed, its VM died,
 *   or keepalive found the network broken. The instance is checked with the provider at once;
 * - the periodic sweep (`failure_detection.sweep_interval`, the seed's GC polling) found its last
 *   report older than one report interval (this also catches an agent that closed gracefully and
 *   never came back).
 *
 * A check asks the provider for the VM's status and decides with {@link judgeCheck}: a VM that is
 * gone or not running is replaced now and deleted without drain; one that runs but stays silent
 * is checked again with backoff (3 s doubling to 30 s, ±25 %) and replaced with drain once it has
 * missed `missed_reports` reports; a report ends the watch. Verdicts go to the reconciler, which
 * creates the replacement first and records every step in the instance's decision history. An
 * instance judged silent that reports again before anything acted on it recovers (the verdict is
 * cleared), which is how a group held by the mass-failure guard heals after a network split.
 *
 * The report interval is `health_check_interval`, or the agent's own (read from its reports) when
 * that is longer: an agent configured to report less often is not judged by the shorter one.
 * Agents this leader has not heard from yet get a reconnect grace before silence counts against
 * them (after a failover they reconnect with backoff). Provider checks run at most
 * {@link DEFAULT_STATUS_CHECK_CONCURRENCY} at once. Each sweep also prunes the decision history.
 */
import type { Db } from "../../db/database.js";
import type { Provider, ProviderStatus } from "../../providers/provider.js";
import type { HealthVerdict } from "../../reconcile/reconciler.js";
import type { ErrorNotifier } from "../../reconcile/tenant-events.js";
import { type BackoffOptions, backoffDelayMs } from "../../shared/backoff.js";
import { ConcurrencyLimit } from "../../shared/concurrency-limit.js";
import { errorMessage, IllegalStateError, NstanceError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { runInBackground } from "../../shared/run-in-background.js";
import { sleep } from "../../shared/sleep.js";
import { type CheckVerdict, judgeCheck } from "./check-verdict.js";
import { pruneDecisions } from "./decision-retention.js";
import {
  type DetectionRow,
  listSweepRows,
  readDetectionRow,
  readReportSamples,
} from "./detection-rows.js";
import type { DetectionSettings } from "./detection-settings.js";
import { inferReportIntervalMs } from "./report-interval.js";

/** Follow-up checks of a running but silent instance (reference: 3, 6, 12, 24, 30 … s, ≤25 % jitter). */
export const DEFAULT_FOLLOW_UP_BACKOFF: BackoffOptions = {
  initialMs: 3_000,
  maxMs: 30_000,
  jitter: 0.25,
};
/** Provider status checks in flight at once (a network blip may lose hundreds of streams). */
export const DEFAULT_STATUS_CHECK_CONCURRENCY = 16;
/** Consecutive failed provider checks after which a watch is dropped (the sweep starts another). */
export const DEFAULT_MAX_FAILED_CHECKS = 8;
/**
 * Time a new leader gives agents it has not heard from before their silence counts: the agents'
 * reconnect backoff tops out at 60 s, plus its 25 % jitter.
 */
export const DEFAULT_RECONNECT_GRACE_MS = 75_000;

/** What failure detection asks of the term's reconciler. */
export interface DetectorReconciler {
  /** See Reconciler.markUnhealthy. */
  markUnhealthy(instanceId: string, verdict: HealthVerdict): boolean;
  /** See Reconciler.markRecovered. */
  markRecovered(instanceId: string, evidence?: Record<string, unknown>): boolean;
}

/** The agents connected to this server (AgentConnections), for the freshest report times. */
export interface ConnectedAgents {
  get(instanceId: string): { lastReportAt: number | undefined } | undefined;
}

/** A health stream that ended (AgentDisconnect). */
export interface StreamEnd {
  instanceId: string;
  kind: "graceful" | "lost";
  /** Unix ms. */
  at: number;
}

/** What started a watch. */
export type CheckTrigger = "disconnect" | "sweep";

/** Options for {@link FailureDetector}. */
export interface FailureDetectorOptions {
  db: Db;
  provider: Pick<Provider, "getInstanceStatus">;
  reconciler: DetectorReconciler;
  /** Read at every sweep and check, so a config refresh applies at once. */
  settings: () => DetectionSettings;
  logger: Logger;
  /** Receives failed provider checks (WatchErrors). */
  errorNotifier?: ErrorNotifier;
  connections?: ConnectedAgents;
  /** False once the leadership term has ended: no verdict is handed on after that. */
  isCurrent?: () => boolean;
  /** The term's signal: the detector stops when it aborts. */
  signal?: AbortSignal;
  /** Run the sweep loop. Defaults to true (tests call {@link FailureDetector.sweep}). */
  sweepLoop?: boolean;
  /** Defaults to {@link DEFAULT_FOLLOW_UP_BACKOFF}. */
  followUpBackoff?: BackoffOptions;
  /** Defaults to {@link DEFAULT_STATUS_CHECK_CONCURRENCY}. */
  statusCheckConcurrency?: number;
  /** Defaults to {@link DEFAULT_MAX_FAILED_CHECKS}. */
  maxFailedChecks?: number;
  /** Defaults to {@link DEFAULT_RECONNECT_GRACE_MS}. */
  reconnectGraceMs?: number;
  /** Clock in unix ms. Defaults to `Date.now`. */
  now?: () => number;
  /** Random source of the follow-up jitter. */
  random?: () => number;
}

/** Lifecycle of a {@link FailureDetector}. */
export type FailureDetectorState = "new" | "running" | "stopped";

/** Counters, for logs, metrics and tests. */
export interface FailureDetectorStats {
  /** Provider status checks made. */
  checks: number;
  /** Provider status checks that failed. */
  checkErrors: number;
  /** Instances found gone or not running (replace, no drain). */
  gone: number;
  /** Instances found running but silent (replace with drain). */
  silent: number;
  /** Unhealthy verdicts cleared because the agent reported again. */
  recovered: number;
  sweeps: number;
  /** Instances the last sweep found stale. */
  lastSweepStale: number;
  /** Decisions pruned by retention. */
  decisionsPruned: number;
}

interface Watch {
  id: string;
  trigger: CheckTrigger;
  since: number;
  /** Follow-up checks scheduled so far. */
  followUps: number;
  /** Consecutive failed provider checks. */
  failures: number;
  timer: NodeJS.Timeout | undefined;
  running: boolean;
  again: boolean;
  errorPublished: boolean;
}

interface Interval {
  ms: number;
  source: "reported" | "configured";
}

const max = (...xs: Array<number | undefined>): number | undefined => {
  let m: number | undefined;
  for (const x of xs) if (x !== undefined && (m === undefined || x > m)) m = x;
  return m;
};
const iso = (ms: number | undefined): string | null =>
  ms === undefined ? null : new Date(ms).toISOString();

/** Failure detection of one leadership term; see the file comment. */
export class FailureDetector {
  readonly #o: FailureDetectorOptions;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #backoff: BackoffOptions;
  readonly #maxFailures: number;
  readonly #graceMs: number;
  readonly #limit: ConcurrencyLimit;
  readonly #ctl = new AbortController();
  readonly #signal: AbortSignal;
  readonly #watches = new Map<string, Watch>();
  readonly #tasks = new Set<Promise<void>>();
  /** Verdicts waiting for the end of this turn of the event loop; see #condemn. */
  readonly #verdicts: Array<() => void> = [];
  #state: FailureDetectorState = "new";
  #startedAt = 0;
  #loop: Promise<void> | undefined;
  #stopped: Promise<void> | undefined;
  readonly #stats: FailureDetectorStats = {
    checks: 0,
    checkErrors: 0,
    gone: 0,
    silent: 0,
    recovered: 0,
    sweeps: 0,
    lastSweepStale: 0,
    decisionsPruned: 0,
  };

  constructor(opts: FailureDetectorOptions) {
    for (const k of ["db", "provider", "reconciler", "settings", "logger"] as const) {
      if (!opts[k]) throw new TypeError(`${k} is required`);
    }
    this.#o = opts;
    this.#logger = opts.logger.child({ subsystem: "failure-detection" });
    this.#now = opts.now ?? Date.now;
    this.#random = opts.random ?? Math.random;
    this.#backoff = opts.followUpBackoff ?? DEFAULT_FOLLOW_UP_BACKOFF;
    this.#maxFailures = opts.maxFailedChecks ?? DEFAULT_MAX_FAILED_CHECKS;
    this.#graceMs = opts.reconnectGraceMs ?? DEFAULT_RECONNECT_GRACE_MS;
    this.#limit = new ConcurrencyLimit(
      opts.statusCheckConcurrency ?? DEFAULT_STATUS_CHECK_CONCURRENCY,
    );
    this.#signal = opts.signal
      ? AbortSignal.any([opts.signal, this.#ctl.signal])
      : this.#ctl.signal;
    opts.signal?.addEventListener("abort", () => void this.stop(), { once: true });
  }

  /** Where the detector is in its lifecycle. */
  get state(): FailureDetectorState {
    return this.#state;
  }

  /** Starts the sweep loop; its first sweep comes one sweep interval from now. */
  start(): void {
    if (this.#state !== "new") throw new IllegalStateError(`failure detector is ${this.#state}`);
    this.#startedAt = this.#now();
    if (this.#signal.aborted) {
      this.#state = "stopped";
      return;
    }
    this.#state = "running";
    if (this.#o.sweepLoop !== false) {
      this.#loop = runInBackground(
        "failure detection sweep",
        () => this.#sweepLoop(),
        this.#logger,
      );
    }
    this.#logger.info("Failure detection started", {
      sweep_interval_ms: this.#o.settings().sweepIntervalMs,
    });
  }

  /** Stops the sweep loop and every watch, waiting for checks in flight. Idempotent. */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      const wasRunning = this.#state === "running";
      this.#state = "stopped";
      this.#ctl.abort(new NstanceError("aborted", "failure detection stopped"));
      for (const w of this.#watches.values()) clearTimeout(w.timer);
      this.#watches.clear();
      await this.#loop;
      await Promise.allSettled([...this.#tasks]);
      if (wasRunning) this.#logger.info("Failure detection stopped", { ...this.#stats });
    })();
    return this.#stopped;
  }

  /**
   * A health stream ended. `lost` starts a watch and checks the instance with the provider now;
   * `graceful` raises no alarm (if the agent never comes back, the sweep finds it).
   */
  onDisconnect(e: StreamEnd): void {
    if (this.#state !== "running") return;
    if (e.kind === "graceful") {
      this.#logger.debug("Agent closed its stream gracefully; no check", {
        instance_id: e.instanceId,
      });
      return;
    }
    this.#watch(e.instanceId, "disconnect", e.at);
  }

  /**
   * One sweep (the loop calls it every `sweep_interval`): watches every registered instance whose
   * last report is older than one report interval, clears the verdicts of instances that report
   * again, and prunes the decision history. Returns how many instances were found stale.
   */
  sweep(): number {
    if (this.#state !== "running") return 0;
    const s = this.#o.settings();
    const now = this.#now();
    let stale = 0;
    for (const row of listSweepRows(this.#o.db)) {
      const lastReportAt = this.#lastReportAt(row);
      if (
        row.unhealthyAt !== undefined &&
        lastReportAt !== undefined &&
        lastReportAt > row.unhealthyAt
      ) {
        this.#recover(row, lastReportAt, "sweep");
      }
      if (this.#watches.has(row.id)) continue;
      if (now - (lastReportAt ?? now) <= s.reportIntervalMs) continue;
      stale++;
      this.#watch(row.id, "sweep", now);
    }
    this.#stats.sweeps++;
    this.#stats.lastSweepStale = stale;
    if (stale > 0) this.#logger.info("Sweep found stale instances", { stale });
    try {
      const pruned = pruneDecisions(this.#o.db, { before: now - s.decisionRetentionMs });
      this.#stats.decisionsPruned += pruned.byAge + pruned.byCount;
    } catch (err) {
      // Housekeeping only: retried at the next sweep.
      this.#logger.warn("Cannot prune the decision history", { err: errorMessage(err) });
    }
    return stale;
  }

  /** Instances being watched right now. */
  watching(): string[] {
    return [...this.#watches.keys()];
  }

  /** A copy of the counters. */
  stats(): FailureDetectorStats {
    return { ...this.#stats };
  }

  // ---- watches ---------------------------------------------------------------------------------

  #watch(id: string, trigger: CheckTrigger, since: number): void {
    let w = this.#watches.get(id);
    if (w) {
      // A newer loss: only a report after it clears the suspicion.
      w.since = Math.max(w.since, since);
      w.trigger = trigger === "disconnect" ? trigger : w.trigger;
    } else {
      w = {
        id,
        trigger,
        since,
        followUps: 0,
        failures: 0,
        timer: undefined,
        running: false,
        again: false,
        errorPublished: false,
      };
      this.#watches.set(id, w);
    }
    this.#checkSoon(w, 0);
  }

  #checkSoon(w: Watch, delayMs: number): void {
    clearTimeout(w.timer);
    w.timer = undefined;
    if (delayMs <= 0) {
      this.#runCheck(w);
      return;
    }
    w.timer = setTimeout(() => {
      w.timer = undefined;
      this.#runCheck(w);
    }, delayMs);
    w.timer.unref();
  }

  #runCheck(w: Watch): void {
    if (this.#watches.get(w.id) !== w) return;
    if (w.running) {
      w.again = true;
      return;
    }
    w.running = true;
    const task = this.#check(w)
      .catch((err: unknown) => {
        if (!this.#signal.aborted) {
          this.#logger.error("Instance check failed", {
            instance_id: w.id,
            err: errorMessage(err),
          });
          this.#end(w);
        }
      })
      .finally(() => {
        w.running = false;
        this.#tasks.delete(task);
        if (w.again && this.#watches.get(w.id) === w) {
          w.again = false;
          this.#checkSoon(w, 0);
        }
      });
    this.#tasks.add(task);
  }

  #end(w: Watch): void {
    clearTimeout(w.timer);
    if (this.#watches.get(w.id) === w) this.#watches.delete(w.id);
  }

  async #check(w: Watch): Promise<void> {
    const before = readDetectionRow(this.#o.db, w.id);
    if (!this.#checkable(before)) {
      this.#end(w);
      return;
    }
    const reported = this.#lastReportAt(before);
    if (reported !== undefined && reported > w.since) {
      this.#healthy(w, before, reported);
      return;
    }
    const s = this.#o.settings();
    let status: ProviderStatus | undefined;
    try {
      this.#stats.checks++;
      const found = await this.#limit.run(
        () =>
          this.#o.provider.getInstanceStatus(
            before.id,
            before.providerId!,
            AbortSignal.any([this.#signal, AbortSignal.timeout(s.statusTimeoutMs)]),
          ),
        this.#signal,
      );
      status = found?.status;
    } catch (err) {
      if (this.#signal.aborted) return;
      this.#checkFailed(w, before, err);
      return;
    }
    w.failures = 0;
    if (this.#state !== "running" || this.#watches.get(w.id) !== w) return;
    // Re-read: the instance may have reported, been deleted or been judged meanwhile.
    const row = readDetectionRow(this.#o.db, w.id);
    if (!this.#checkable(row)) {
      this.#end(w);
      return;
    }
    const now = this.#now();
    const lastReportAt = this.#lastReportAt(row);
    const interval = this.#reportInterval(row.id, s);
    const verdict = judgeCheck({
      providerStatus: status,
      lastReportAt,
      silentSince: this.#silentSince(lastReportAt, w.since),
      since: w.since,
      reportIntervalMs: interval.ms,
      missedReports: s.missedReports,
      now,
    });
    const evidence = {
      trigger: w.trigger,
      provider_status: status ?? "not-found",
      last_report_at: iso(lastReportAt),
      last_report_age_ms: lastReportAt === undefined ? null : now - lastReportAt,
      report_interval_ms: Math.round(interval.ms),
      report_interval_source: interval.source,
      watched_ms: now - w.since,
    };
    this.#decide(w, row, verdict, evidence, lastReportAt);
  }

  #decide(
    w: Watch,
    row: DetectionRow,
    verdict: CheckVerdict,
    evidence: Record<string, unknown>,
    lastReportAt: number | undefined,
  ): void {
    switch (verdict.kind) {
      case "healthy":
        this.#healthy(w, row, lastReportAt!);
        return;
      case "gone":
      case "silent":
        this.#end(w);
        this.#condemn(row, verdict, evidence);
        return;
      case "watch": {
        // Already judged silent (replacement or drain under way): nothing more to decide.
        if (row.unhealthyAt !== undefined) {
          this.#end(w);
          return;
        }
        const backoffMs = backoffDelayMs(w.followUps, this.#backoff, this.#random);
        w.followUps++;
        const untilDecision = Math.max(1, verdict.decideAt - this.#now());
        this.#logger.debug("Instance runs but is silent; checking again", {
          instance_id: row.id,
          ...evidence,
          next_check_in_ms: Math.min(backoffMs, untilDecision),
        });
        this.#checkSoon(w, Math.min(backoffMs, untilDecision));
        return;
      }
    }
  }

  /**
   * Hands a verdict to the reconciler with the others of this turn of the event loop: verdicts
   * found together (one sweep, one network blip) reach the same reconcile pass, so the
   * mass-failure guard sees them at once rather than replacing the first before the rest arrive.
   */
  #condemn(
    row: DetectionRow,
    verdict: Extract<CheckVerdict, { kind: "gone" | "silent" }>,
    evidence: Record<string, unknown>,
  ): void {
    this.#verdicts.push(() => {
      if (!this.#current()) return;
      const gone = verdict.kind === "gone";
      const marked = this.#o.reconciler.markUnhealthy(row.id, {
        reason: verdict.reason,
        skipDrain: gone,
        evidence: gone ? evidence : { ...evidence, missed_reports: verdict.missed },
      });
      if (!marked) return;
      if (gone) this.#stats.gone++;
      else this.#stats.silent++;
      this.#logger.warn(
        gone
          ? "Instance is gone; replacing it without drain"
          : "Instance runs but stopped reporting; replacing it with drain",
        {
          instance_id: row.id,
          tenant: row.tenant,
          group: row.groupKey,
          reason: verdict.reason,
          ...evidence,
          ...(gone ? {} : { missed_reports: verdict.missed }),
        },
      );
    });
    if (this.#verdicts.length > 1) return;
    setImmediate(() => {
      const batch = this.#verdicts.splice(0);
      for (const apply of batch) apply();
    });
  }

  #healthy(w: Watch, row: DetectionRow, lastReportAt: number): void {
    this.#end(w);
    if (row.unhealthyAt !== undefined && lastReportAt > row.unhealthyAt) {
      this.#recover(row, lastReportAt, w.trigger);
    }
  }

  #recover(row: DetectionRow, lastReportAt: number, trigger: string): void {
    if (
      row.unhealthySkipDrain ||
      row.drainStartedAt !== undefined ||
      row.replacedBy !== undefined
    ) {
      return;
    }
    if (!this.#current()) return;
    if (
      this.#o.reconciler.markRecovered(row.id, {
        trigger,
        last_report_at: iso(lastReportAt),
      })
    ) {
      this.#stats.recovered++;
    }
  }

  #checkFailed(w: Watch, row: DetectionRow, err: unknown): void {
    w.failures++;
    this.#stats.checkErrors++;
    const message = `provider status check of ${row.id} failed: ${errorMessage(err)}`;
    this.#logger.warn("Provider status check failed", {
      instance_id: row.id,
      failures: w.failures,
      err: errorMessage(err),
    });
    if (!w.errorPublished) {
      w.errorPublished = true;
      this.#o.errorNotifier?.publish(row.tenant, {
        group: row.groupKey,
        instanceId: row.id,
        error: message,
        timestamp: new Date(this.#now()),
      });
    }
    if (w.failures >= this.#maxFailures) {
      // The sweep starts a new watch while the instance stays silent.
      this.#end(w);
      return;
    }
    this.#checkSoon(w, backoffDelayMs(w.failures - 1, this.#backoff, this.#random));
  }

  // ---- facts -----------------------------------------------------------------------------------

  /** Live, registered, with a provider ID, and not already condemned as gone. */
  #checkable(row: DetectionRow | undefined): row is DetectionRow {
    return (
      row !== undefined &&
      row.deletedAt === undefined &&
      row.providerId !== undefined &&
      row.registeredAt !== undefined &&
      !row.unhealthySkipDrain
    );
  }

  /** The newest of the stored report, the stream's last report and the registration. */
  #lastReportAt(row: DetectionRow): number | undefined {
    return max(row.healthAt, row.registeredAt, this.#o.connections?.get(row.id)?.lastReportAt);
  }

  /** Silence of an agent this leader has not heard from counts only after the reconnect grace. */
  #silentSince(lastReportAt: number | undefined, since: number): number {
    const from = lastReportAt ?? since;
    if (from >= this.#startedAt) return from;
    return Math.max(from, this.#startedAt + this.#graceMs);
  }

  #reportInterval(id: string, s: DetectionSettings): Interval {
    let reported: number | undefined;
    try {
      const { latest, earlier } = readReportSamples(this.#o.db, id);
      reported = inferReportIntervalMs(latest, earlier);
    } catch (err) {
      this.#logger.debug("Cannot read report samples", { instance_id: id, err: errorMessage(err) });
    }
    // Only ever longer than configured: an agent set to report more often is not held to a
    // stricter bound than the operator chose (a starved agent would be judged by its 1 s ticks).
    return reported !== undefined && reported > s.reportIntervalMs
      ? { ms: reported, source: "reported" }
      : { ms: s.reportIntervalMs, source: "configured" };
  }

  #current(): boolean {
    return this.#state === "running" && (this.#o.isCurrent?.() ?? true);
  }

  async #sweepLoop(): Promise<void> {
    while (this.#state === "running") {
      try {
        await sleep(this.#o.settings().sweepIntervalMs, this.#signal);
      } catch {
        return;
      }
      try {
        this.sweep();
      } catch (err) {
        this.#logger.error("Failure detection sweep failed", { err: errorMessage(err) });
      }
    }
  }
}
