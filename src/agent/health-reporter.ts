// SPDX-License-Identifier: Apache-2.0
/**
 * The persistent health stream (seed 003): one SubmitHealthReport client stream, a report right
 * after connecting and then every metrics interval. A failed stream is reopened with backoff
 * (5 s, doubling to 60 s, jitter, counted per server; see reconnect-loop.ts) forever. On stop the
 * agent half-closes the stream and waits briefly for the server's answer, so the server records a
 * graceful shutdown instead of the cancellation a crash would produce.
 */
import type { ClientWritableStream, ServiceError } from "@grpc/grpc-js";
import type { HealthReportRequest } from "../protocol/gen/nstance/v1/agent.js";
import type { BackoffOptions } from "../shared/backoff.js";
import { errorMessage, IllegalStateError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import type { StreamChannel } from "./agent-channel.js";
import { type FileStatus, fileStatuses } from "./file-statuses.js";
import { buildHealthReport } from "./health-report.js";
import type { IdentityDir } from "./identity-dir.js";
import type { MetricsSampler } from "./metrics/metrics-sampler.js";
import { startReconnectLoop } from "./reconnect-loop.js";
import type { SpotNoticeWatcher } from "./spot-notice.js";

/** How long stop() waits for the server to answer the half-close before cancelling. */
export const DEFAULT_GRACEFUL_CLOSE_TIMEOUT_MS = 5_000;
/** Shortest gap between an early report ({@link HealthReporter.reportSoon}) and the one before. */
export const MIN_EARLY_REPORT_GAP_MS = 1_000;

/** Where the parts of a report come from. */
export interface HealthReportSources {
  metrics: Pick<MetricsSampler, "report">;
  /** The recv dir, for the `files` map. */
  recvDir: string;
  identity: Pick<IdentityDir, "readConfigHash">;
  /** Spot notice watcher; undefined when spot monitoring is off. */
  spot?: Pick<SpotNoticeWatcher, "current">;
  /** Why the last file patch was rejected; undefined when it applied. */
  patchError: () => string | undefined;
}

/** Options for {@link HealthReporter}. */
export interface HealthReporterOptions {
  channel: StreamChannel;
  instanceId: string;
  version: string;
  /** `NSTANCE_METRICS_INTERVAL` in ms; must be positive. */
  intervalMs: number;
  sources: HealthReportSources;
  logger: Logger;
  /** Reconnection backoff; defaults to the reconnect loop's (5 s … 60 s). */
  backoff?: BackoffOptions;
  /** Defaults to {@link DEFAULT_GRACEFUL_CLOSE_TIMEOUT_MS}. */
  gracefulCloseTimeoutMs?: number;
  /** Clock in ms; defaults to `Date.now`. */
  now?: () => number;
}

/** Lifecycle of a {@link HealthReporter}. */
export type HealthReporterState = "idle" | "running" | "stopping" | "stopped";

type Wake = "tick" | "soon" | "ended" | "stop";

/** Sends health reports on a persistent stream; see the file comment. */
export class HealthReporter {
  readonly #opts: HealthReporterOptions;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #abort = new AbortController();
  #state: HealthReporterState = "idle";
  #loop: Promise<void> | undefined;
  #count = 0;
  #lastSentAtMs = 0;
  #soonPending = false;
  #wake: ((why: Wake) => void) | undefined;
  #streamOpen = false;

  constructor(opts: HealthReporterOptions) {
    if (!opts.channel) throw new TypeError("channel is required");
    if (!opts.instanceId) throw new TypeError("instanceId is required");
    if (!opts.logger) throw new TypeError("logger is required");
    if (!(opts.intervalMs > 0)) throw new RangeError("intervalMs must be positive");
    this.#opts = opts;
    this.#logger = opts.logger;
    this.#now = opts.now ?? Date.now;
  }

  /** Current lifecycle state. */
  get state(): HealthReporterState {
    return this.#state;
  }

  /** Reports sent since start (the last report's `count`). */
  get reportsSent(): number {
    return this.#count;
  }

  /** True while a health stream is open. */
  get streamOpen(): boolean {
    return this.#streamOpen;
  }

  /** Opens the stream in the background and keeps it open until {@link stop}. */
  start(): void {
    if (this.#state !== "idle") throw new IllegalStateError(`health reporter is ${this.#state}`);
    this.#state = "running";
    this.#loop = startReconnectLoop(
      {
        name: "health",
        connect: (signal) => this.#stream(signal),
        logger: this.#logger,
        channel: this.#opts.channel,
        backoff: this.#opts.backoff,
        now: this.#now,
      },
      this.#abort.signal,
    );
  }

  /**
   * Sends a report on the open stream soon (at most one per {@link MIN_EARLY_REPORT_GAP_MS}),
   * e.g. after a file patch, so the server sees the new state without waiting an interval.
   */
  reportSoon(): void {
    this.#soonPending = true;
    this.#wake?.("soon");
  }

  /** Half-closes the stream, waits briefly for the server's answer, and stops; idempotent. */
  async stop(): Promise<void> {
    if (this.#state === "idle") {
      this.#state = "stopped";
      return;
    }
    if (this.#state === "running") this.#state = "stopping";
    this.#abort.abort();
    await this.#loop;
    this.#state = "stopped";
  }

  async #stream(signal: AbortSignal): Promise<void> {
    const client = this.#opts.channel.client;
    let ended: { err: ServiceError | null } | undefined;
    const call = client.submitHealthReport((err) => {
      ended = { err };
      this.#wake?.("ended");
    });
    const watch = this.#opts.channel.watchCall?.(client);
    const onAbort = (): void => this.#wake?.("stop");
    signal.addEventListener("abort", onAbort, { once: true });
    this.#streamOpen = true;
    this.#logger.debug("Health stream opened", { addr: this.#opts.channel.addr });
    try {
      for (;;) {
        if (ended) break;
        if (signal.aborted) {
          await this.#closeGracefully(call, () => ended);
          return;
        }
        this.#soonPending = false;
        await this.#send(call);
        const why = await this.#waitForNext(signal, () => ended !== undefined);
        if (why === "ended") break;
      }
    } finally {
      watch?.end();
      signal.removeEventListener("abort", onAbort);
      this.#streamOpen = false;
    }
    const err = ended?.err ?? null;
    if (err) {
      this.#opts.channel.reportFailure(client, err);
      throw err;
    }
    // The server answered without our half-close (e.g. it is shutting down): reconnect.
  }

  /** Resolves at the next interval tick, an early-report request, the end of the call, or stop. */
  #waitForNext(signal: AbortSignal, isEnded: () => boolean): Promise<Wake> {
    return new Promise<Wake>((resolve) => {
      if (isEnded()) return resolve("ended");
      if (signal.aborted) return resolve("stop");
      let timer: NodeJS.Timeout;
      const finish = (why: Wake): void => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve(why);
      };
      const schedule = (ms: number, why: Wake): void => {
        clearTimeout(timer);
        timer = setTimeout(() => finish(why), Math.max(0, ms));
      };
      const untilTick = this.#lastSentAtMs + this.#opts.intervalMs - this.#now();
      const untilEarly = this.#lastSentAtMs + MIN_EARLY_REPORT_GAP_MS - this.#now();
      if (this.#soonPending && untilEarly < untilTick) schedule(untilEarly, "soon");
      else schedule(untilTick, "tick");
      this.#wake = (why) => {
        if (why === "soon") {
          const wait = this.#lastSentAtMs + MIN_EARLY_REPORT_GAP_MS - this.#now();
          if (wait < this.#lastSentAtMs + this.#opts.intervalMs - this.#now())
            schedule(wait, "soon");
          return;
        }
        finish(why);
      };
    });
  }

  async #send(call: ClientWritableStream<HealthReportRequest>): Promise<void> {
    let report: HealthReportRequest;
    try {
      report = await this.#build();
    } catch (err) {
      // Without any metrics sample there is nothing meaningful to send; try again next tick.
      this.#logger.warn("Cannot build health report", { err: errorMessage(err) });
      this.#lastSentAtMs = this.#now();
      return;
    }
    call.write(report);
    this.#lastSentAtMs = this.#now();
    this.#logger.debug("Sent health report", { count: report.count });
  }

  async #build(): Promise<HealthReportRequest> {
    const s = this.#opts.sources;
    const metrics = await s.metrics.report();
    let files: Map<string, FileStatus>;
    try {
      files = await fileStatuses(s.recvDir);
    } catch (err) {
      this.#logger.warn("Cannot list received files", { path: s.recvDir, err: errorMessage(err) });
      files = new Map();
    }
    let configHash = "";
    try {
      configHash = (await s.identity.readConfigHash()) ?? "";
    } catch (err) {
      this.#logger.warn("Cannot read config hash", { err: errorMessage(err) });
    }
    return buildHealthReport({
      version: this.#opts.version,
      instanceId: this.#opts.instanceId,
      count: ++this.#count,
      timestamp: new Date(this.#now()),
      metrics,
      files,
      terminationNotice: s.spot?.current(),
      configHash,
      patchError: s.patchError() ?? "",
    });
  }

  async #closeGracefully(
    call: ClientWritableStream<HealthReportRequest>,
    ended: () => { err: ServiceError | null } | undefined,
  ): Promise<void> {
    if (ended()) return;
    call.end();
    const answered = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve(false);
      }, this.#opts.gracefulCloseTimeoutMs ?? DEFAULT_GRACEFUL_CLOSE_TIMEOUT_MS);
      this.#wake = (why) => {
        if (why !== "ended") return;
        clearTimeout(timer);
        this.#wake = undefined;
        resolve(true);
      };
      if (ended()) this.#wake("ended");
    });
    const err = ended()?.err;
    if (answered && !err) {
      this.#logger.info("Health stream closed gracefully", { reports: this.#count });
    } else if (answered) {
      this.#logger.warn("Health stream failed while closing", { err: err?.message });
    } else {
      this.#logger.warn("Server did not answer the health stream's close in time; cancelling");
      call.cancel();
    }
  }
}
