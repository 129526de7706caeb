// SPDX-License-Identifier: Apache-2.0
/**
 * Samples the machine every few seconds into a ring buffer sized for fifteen minutes, and turns
 * the buffer into the metrics part of a health report on demand.
 */
import { errorMessage, IllegalStateError, isAbortError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { sleep } from "../../shared/sleep.js";
import {
  DEFAULT_PROC_DIR,
  type MachineSample,
  readMachineSample,
  readUptimeSeconds,
} from "./machine-sample.js";
import { FIFTEEN_MINUTES_MS, type MetricsWindow, summarizeMetrics } from "./metrics-window.js";
import { RingBuffer } from "./ring-buffer.js";

/** Default time between two samples. */
export const DEFAULT_SAMPLE_INTERVAL_MS = 5_000;

/** Options for {@link MetricsSampler}. */
export interface MetricsSamplerOptions {
  /** Filesystem reported as `disk_used`. Defaults to `/`. */
  diskPath?: string;
  /** procfs root. Defaults to `/proc`. */
  procDir?: string;
  /** Time between samples, in ms. Defaults to {@link DEFAULT_SAMPLE_INTERVAL_MS}. */
  sampleIntervalMs?: number;
  /** When the agent started (the report's `started`). Defaults to construction time. */
  startedAt?: Date;
  logger: Logger;
  /** Sample source; defaults to reading `/proc` and statfs. Tests inject their own. */
  readSample?: (nowMs: number) => Promise<MachineSample>;
  /** Uptime source in seconds; defaults to `/proc/uptime`. */
  readUptime?: () => Promise<number>;
  /** Clock in ms; defaults to `Date.now`. */
  now?: () => number;
}

/** The metrics part of a health report (seed 003 payload, camelCase). */
export interface MetricsReport {
  oneMinute: MetricsWindow;
  fiveMinutes: MetricsWindow;
  fifteenMinutes: MetricsWindow;
  /** Start of the fifteen-minute window as covered by samples (later while the agent is young). */
  windowStart: Date;
  /** End of the windows: the moment of the report's fresh sample. */
  windowEnd: Date;
  /** Host uptime in whole seconds. */
  uptimeSeconds: number;
  /** When the agent started. */
  started: Date;
}

/** Lifecycle of a {@link MetricsSampler}. */
export type MetricsSamplerState = "idle" | "running" | "stopped";

/** Periodic machine sampler with one/five/fifteen-minute aggregates. */
export class MetricsSampler {
  readonly #logger: Logger;
  readonly #intervalMs: number;
  readonly #readSample: (nowMs: number) => Promise<MachineSample>;
  readonly #readUptime: () => Promise<number>;
  readonly #now: () => number;
  readonly #started: Date;
  readonly #buffer: RingBuffer<MachineSample>;
  readonly #abort = new AbortController();
  #state: MetricsSamplerState = "idle";
  #loop: Promise<void> | undefined;
  #failing = false;

  constructor(opts: MetricsSamplerOptions) {
    if (!opts.logger) throw new TypeError("logger is required");
    this.#logger = opts.logger;
    this.#intervalMs = opts.sampleIntervalMs ?? DEFAULT_SAMPLE_INTERVAL_MS;
    if (!(this.#intervalMs > 0)) throw new RangeError("sampleIntervalMs must be positive");
    const procDir = opts.procDir ?? DEFAULT_PROC_DIR;
    const diskPath = opts.diskPath ?? "/";
    this.#readSample =
      opts.readSample ?? ((nowMs) => readMachineSample({ procDir, diskPath }, nowMs));
    this.#readUptime = opts.readUptime ?? (() => readUptimeSeconds(procDir));
    this.#now = opts.now ?? Date.now;
    this.#started = opts.startedAt ?? new Date(this.#now());
    // One spare slot keeps a baseline sample from just before the fifteen-minute window.
    this.#buffer = new RingBuffer(Math.ceil(FIFTEEN_MINUTES_MS / this.#intervalMs) + 2);
  }

  /** Current lifecycle state. */
  get state(): MetricsSamplerState {
    return this.#state;
  }

  /** Number of buffered samples. */
  get sampleCount(): number {
    return this.#buffer.size;
  }

  /** Takes a first sample, then keeps sampling in the background until {@link stop}. */
  async start(): Promise<void> {
    if (this.#state !== "idle") throw new IllegalStateError(`metrics sampler is ${this.#state}`);
    this.#state = "running";
    await this.sampleNow();
    this.#loop = this.#run(this.#abort.signal);
  }

  /** Stops sampling; idempotent. */
  async stop(): Promise<void> {
    this.#state = "stopped";
    this.#abort.abort();
    await this.#loop;
  }

  /** Reads one sample into the buffer; a failed read is logged, not thrown. */
  async sampleNow(): Promise<void> {
    try {
      this.#buffer.push(await this.#readSample(this.#now()));
      if (this.#failing) this.#logger.info("Machine metrics readable again");
      this.#failing = false;
    } catch (err) {
      // Log the first failure of a streak only: sampling runs every few seconds.
      if (!this.#failing)
        this.#logger.warn("Cannot read machine metrics", { err: errorMessage(err) });
      this.#failing = true;
    }
  }

  /**
   * Builds the report's metrics from the buffer plus a fresh sample taken now (not stored, so
   * frequent reports do not crowd regular samples out of the buffer). Throws only when there is no
   * sample at all.
   */
  async report(): Promise<MetricsReport> {
    const samples = this.#buffer.toArray();
    let endMs = this.#now();
    try {
      samples.push(await this.#readSample(endMs));
    } catch (err) {
      const last = this.#buffer.last();
      if (last === undefined) throw err;
      this.#logger.warn("Cannot read machine metrics for report; using buffered samples", {
        err: errorMessage(err),
      });
      endMs = last.atMs;
    }
    let uptimeSeconds = 0;
    try {
      uptimeSeconds = await this.#readUptime();
    } catch (err) {
      this.#logger.warn("Cannot read uptime", { err: errorMessage(err) });
    }
    const s = summarizeMetrics(samples, endMs);
    return {
      oneMinute: s.oneMinute,
      fiveMinutes: s.fiveMinutes,
      fifteenMinutes: s.fifteenMinutes,
      windowStart: new Date(s.windowStartMs),
      windowEnd: new Date(s.windowEndMs),
      uptimeSeconds,
      started: this.#started,
    };
  }

  async #run(signal: AbortSignal): Promise<void> {
    try {
      for (;;) {
        await sleep(this.#intervalMs, signal);
        await this.sampleNow();
      }
    } catch (err) {
      if (!isAbortError(err) && !signal.aborted) throw err;
    }
  }
}
