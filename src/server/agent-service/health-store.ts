// SPDX-License-Identifier: Apache-2.0
/**
 * Stores health reports in SQLite (seed 003 step 1): the latest report on the instance row
 * (`health_at`, `health`, `config_hash`) and a bounded history in `health_reports`.
 *
 * Writes are batched: reports arriving within one flush interval are committed in one
 * transaction (one transaction per report costs a WAL append each), and for a database file the
 * commit runs in a worker thread (health-writer.ts), off the event loop that serves the streams.
 * History is sampled (at most one row per instance per `historyIntervalMs`) and pruned by age and
 * count, so it stays bounded whatever the report rate.
 */
import type { Db } from "../../db/database.js";
import type { HealthReportRequest } from "../../protocol/gen/nstance/v1/agent.js";
import { errorMessage, IllegalStateError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { healthReportJson } from "./health-report.js";
import {
  type HealthRow,
  type HealthWriter,
  InlineHealthWriter,
  ThreadHealthWriter,
} from "./health-writer.js";
import type { IngestStats } from "./ingest-stats.js";

/** Longest a report waits in memory before its batch is committed. */
export const DEFAULT_HEALTH_FLUSH_INTERVAL_MS = 50;
/** A batch this big is committed at once, without waiting for the interval. */
export const DEFAULT_HEALTH_FLUSH_MAX_BATCH = 2000;
/** At most one history row per instance per this interval (the seed's default report interval). */
export const DEFAULT_HEALTH_HISTORY_INTERVAL_MS = 60_000;
/** History rows older than this are pruned. */
export const DEFAULT_HEALTH_HISTORY_MAX_AGE_MS = 24 * 3_600_000;
/** History rows kept per instance, newest first. */
export const DEFAULT_HEALTH_HISTORY_MAX_PER_INSTANCE = 120;
/** How often the history is pruned. */
export const DEFAULT_HEALTH_PRUNE_INTERVAL_MS = 5 * 60_000;
/**
 * Reports waiting for (or in) a commit beyond which new ones are shed: when SQLite falls behind,
 * memory stays bounded and the next report of each agent is stored instead (reports supersede
 * each other, so a shed one loses nothing the next does not carry).
 */
export const DEFAULT_HEALTH_MAX_QUEUED = 20_000;

/** What became of a report handed to {@link HealthStore.record}. */
export type RecordOutcome =
  /** Committed. */
  | "stored"
  /** The instance has no active row (unknown or deleted). */
  | "unknown"
  /** Not stored: too many reports were waiting for SQLite. */
  | "shed";

/** Options for {@link HealthStore}. */
export interface HealthStoreOptions {
  db: Db;
  logger: Logger;
  /** Receives arrival → commit latencies; optional. */
  stats?: IngestStats;
  /** Defaults to {@link DEFAULT_HEALTH_FLUSH_INTERVAL_MS}. */
  flushIntervalMs?: number;
  /** Defaults to {@link DEFAULT_HEALTH_FLUSH_MAX_BATCH}. */
  flushMaxBatch?: number;
  /** Defaults to {@link DEFAULT_HEALTH_HISTORY_INTERVAL_MS}. */
  historyIntervalMs?: number;
  /** Defaults to {@link DEFAULT_HEALTH_HISTORY_MAX_AGE_MS}. */
  historyMaxAgeMs?: number;
  /** Defaults to {@link DEFAULT_HEALTH_HISTORY_MAX_PER_INSTANCE}. */
  historyMaxPerInstance?: number;
  /** Defaults to {@link DEFAULT_HEALTH_PRUNE_INTERVAL_MS}. */
  pruneIntervalMs?: number;
  /**
   * Commit in a worker thread (never for `:memory:`). Defaults to false: at 10,000 agents the
   * thread stopped committing in bench/health-ingest.ts (see docs/benchmarks.md), while the inline
   * writer keeps up; the thread stays available for measuring.
   */
  writerThread?: boolean;
  /** Defaults to {@link DEFAULT_HEALTH_MAX_QUEUED}. */
  maxQueued?: number;
  /** Clock in unix ms. Defaults to `Date.now`. */
  now?: () => number;
}

interface Pending {
  instanceId: string;
  report: HealthReportRequest;
  receivedAt: number;
  /** `performance.now()` at arrival, for the latency figure. */
  arrivedPerfMs: number;
  resolve: (outcome: RecordOutcome) => void;
  reject: (err: unknown) => void;
}

/** Lifecycle of a {@link HealthStore}. */
export type HealthStoreState = "idle" | "running" | "stopped";

/** Batched writer of health reports; see the file comment. */
export class HealthStore {
  readonly #db: Db;
  readonly #logger: Logger;
  readonly #stats: IngestStats | undefined;
  readonly #flushIntervalMs: number;
  readonly #flushMaxBatch: number;
  readonly #historyIntervalMs: number;
  readonly #historyMaxAgeMs: number;
  readonly #historyMaxPerInstance: number;
  readonly #pruneIntervalMs: number;
  readonly #now: () => number;
  readonly #lastHistoryAt = new Map<string, number>();
  #pending: Pending[] = [];
  #flushTimer: NodeJS.Timeout | undefined;
  #pruneTimer: NodeJS.Timeout | undefined;
  readonly #writerThread: boolean;
  readonly #inflight = new Set<Promise<void>>();
  readonly #maxQueued: number;
  /** Reports handed to the writer and not yet committed. */
  #committing = 0;
  #state: HealthStoreState = "idle";
  #writer: HealthWriter | undefined;

  constructor(opts: HealthStoreOptions) {
    if (!opts.db) throw new TypeError("db is required");
    this.#db = opts.db;
    this.#logger = opts.logger;
    this.#stats = opts.stats;
    this.#flushIntervalMs = opts.flushIntervalMs ?? DEFAULT_HEALTH_FLUSH_INTERVAL_MS;
    this.#flushMaxBatch = opts.flushMaxBatch ?? DEFAULT_HEALTH_FLUSH_MAX_BATCH;
    this.#historyIntervalMs = opts.historyIntervalMs ?? DEFAULT_HEALTH_HISTORY_INTERVAL_MS;
    this.#historyMaxAgeMs = opts.historyMaxAgeMs ?? DEFAULT_HEALTH_HISTORY_MAX_AGE_MS;
    this.#historyMaxPerInstance =
      opts.historyMaxPerInstance ?? DEFAULT_HEALTH_HISTORY_MAX_PER_INSTANCE;
    this.#pruneIntervalMs = opts.pruneIntervalMs ?? DEFAULT_HEALTH_PRUNE_INTERVAL_MS;
    this.#now = opts.now ?? Date.now;
    this.#writerThread = (opts.writerThread ?? false) && !opts.db.memory;
    this.#maxQueued = opts.maxQueued ?? DEFAULT_HEALTH_MAX_QUEUED;
  }

  /** Current lifecycle state. */
  get state(): HealthStoreState {
    return this.#state;
  }

  /** Starts the periodic history pruning. */
  start(): void {
    if (this.#state !== "idle") throw new IllegalStateError(`health store is ${this.#state}`);
    this.#state = "running";
    this.#writer = this.#writerThread
      ? new ThreadHealthWriter(this.#db, this.#logger)
      : new InlineHealthWriter(this.#db);
    const prune = () => {
      this.prune();
      this.#pruneTimer = setTimeout(prune, this.#pruneIntervalMs);
      this.#pruneTimer.unref();
    };
    this.#pruneTimer = setTimeout(prune, this.#pruneIntervalMs);
    this.#pruneTimer.unref();
  }

  /** Commits what is pending and stops; later reports are refused. Idempotent. */
  async stop(): Promise<void> {
    if (this.#state === "stopped") return;
    const wasRunning = this.#state === "running";
    this.#state = "stopped";
    clearTimeout(this.#pruneTimer);
    if (!wasRunning) return;
    this.flush();
    await Promise.all(this.#inflight);
    await this.#writer?.close();
  }

  /** Reports queued or being committed. */
  get queued(): number {
    return this.#pending.length + this.#committing;
  }

  /**
   * Queues a report for the next batch. Resolves once it is committed (`stored`), when the instance
   * has no active row (`unknown`), or at once when too many reports wait (`shed`); rejects when
   * the commit failed.
   */
  record(
    instanceId: string,
    report: HealthReportRequest,
    receivedAt: number,
    arrivedPerfMs = performance.now(),
  ): Promise<RecordOutcome> {
    if (this.#state !== "running") {
      return Promise.reject(new IllegalStateError(`health store is ${this.#state}`));
    }
    if (this.queued >= this.#maxQueued) {
      this.#stats?.shed();
      return Promise.resolve("shed");
    }
    return new Promise((resolve, reject) => {
      this.#pending.push({ instanceId, report, receivedAt, arrivedPerfMs, resolve, reject });
      // Flush from here, not only from the timer: with thousands of busy streams the event loop
      // stays in its I/O phase for seconds and timers fire late (see docs/benchmarks.md).
      const oldest = this.#pending[0]!.arrivedPerfMs;
      if (
        this.#pending.length >= this.#flushMaxBatch ||
        arrivedPerfMs - oldest >= this.#flushIntervalMs
      ) {
        this.flush();
      } else if (!this.#flushTimer) {
        this.#flushTimer = setTimeout(() => this.flush(), this.#flushIntervalMs);
      }
    });
  }

  /** Commits every pending report now, in one transaction (finishing asynchronously in a thread). */
  flush(): void {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    const batch = this.#pending;
    if (batch.length === 0 || !this.#writer) return;
    this.#pending = [];
    const rows: HealthRow[] = batch.map((p) => {
      const last = this.#lastHistoryAt.get(p.instanceId);
      const history = last === undefined || p.receivedAt - last >= this.#historyIntervalMs;
      if (history) this.#lastHistoryAt.set(p.instanceId, p.receivedAt);
      return [
        p.instanceId,
        p.receivedAt,
        healthReportJson(p.report, p.receivedAt),
        p.report.configHash,
        history,
      ];
    });
    const writer = this.#writer;
    this.#committing += batch.length;
    const done = writer.write(rows).then(
      (changed) => {
        this.#committing -= batch.length;
        const at = performance.now();
        for (const [i, p] of batch.entries()) {
          if (changed[i]) this.#stats?.stored(at - p.arrivedPerfMs);
          p.resolve(changed[i] ? "stored" : "unknown");
        }
      },
      (err: unknown) => {
        this.#committing -= batch.length;
        this.#logger.error("Cannot store health reports", {
          reports: batch.length,
          err: errorMessage(err),
        });
        for (const p of batch) p.reject(err);
        if (writer instanceof ThreadHealthWriter && writer.failed && this.#writer === writer) {
          // The thread is gone: keep storing reports in this thread.
          this.#writer = new InlineHealthWriter(this.#db);
        }
      },
    );
    this.#inflight.add(done);
    void done.finally(() => this.#inflight.delete(done));
  }

  /**
   * Deletes history rows older than the maximum age and beyond the per-instance count; returns
   * how many went. Runs on its own timer; exposed for tests.
   */
  prune(): number {
    const cutoff = this.#now() - this.#historyMaxAgeMs;
    try {
      const byAge = this.#db
        .prepare("DELETE FROM health_reports WHERE received_at < ?")
        .run(cutoff).changes;
      const byCount = this.#db
        .prepare(
          `DELETE FROM health_reports WHERE rowid IN (
             SELECT rowid FROM (
               SELECT rowid, ROW_NUMBER() OVER (
                 PARTITION BY instance_id ORDER BY received_at DESC, rowid DESC) AS n
               FROM health_reports)
             WHERE n > ?)`,
        )
        .run(this.#historyMaxPerInstance).changes;
      for (const [id, at] of this.#lastHistoryAt) if (at < cutoff) this.#lastHistoryAt.delete(id);
      if (byAge + byCount > 0) {
        this.#logger.debug("Health history pruned", { by_age: byAge, by_count: byCount });
      }
      return byAge + byCount;
    } catch (err) {
      // Pruning is housekeeping: a failure is retried at the next interval.
      this.#logger.warn("Cannot prune health history", { err: errorMessage(err) });
      return 0;
    }
  }
}
