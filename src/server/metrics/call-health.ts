// SPDX-License-Identifier: Apache-2.0
/**
 * The recent outcomes of calls to a dependency (object storage, the provider API): readiness reads
 * them instead of sending probe requests of its own, so a `/readyz` poll costs no cloud calls.
 */

/** Failures remembered for the "failures in the last window" count. */
export const DEFAULT_CALL_HEALTH_FAILURES_KEPT = 100;

/** A point-in-time view of {@link CallHealth}. */
export interface CallHealthSnapshot {
  /** Calls that finished (either way) since start. */
  calls: number;
  failures: number;
  /** Failures since the last success. */
  consecutiveFailures: number;
  /** Unix ms of the last success / failure, when there was one. */
  lastOkAt?: number;
  lastFailureAt?: number;
  /** Message of the last failure. */
  lastError?: string;
  /** Failures in the `windowMs` before now. */
  recentFailures: number;
}

/** Counts successes and failures of one dependency's calls. */
export class CallHealth {
  readonly #failureTimes: number[] = [];
  readonly #kept: number;
  #calls = 0;
  #failures = 0;
  #consecutive = 0;
  #lastOkAt: number | undefined;
  #lastFailureAt: number | undefined;
  #lastError: string | undefined;

  constructor(opts: { failuresKept?: number } = {}) {
    this.#kept = opts.failuresKept ?? DEFAULT_CALL_HEALTH_FAILURES_KEPT;
  }

  /** Records a successful call that finished at `at` (Unix ms). */
  ok(at: number): void {
    this.#calls++;
    this.#consecutive = 0;
    this.#lastOkAt = at;
  }

  /** Records a failed call. */
  failed(at: number, message: string): void {
    this.#calls++;
    this.#failures++;
    this.#consecutive++;
    this.#lastFailureAt = at;
    this.#lastError = message;
    this.#failureTimes.push(at);
    if (this.#failureTimes.length > this.#kept) this.#failureTimes.shift();
  }

  /** The counters, with failures counted over the `windowMs` before `now`. */
  snapshot(now: number, windowMs: number): CallHealthSnapshot {
    return {
      calls: this.#calls,
      failures: this.#failures,
      consecutiveFailures: this.#consecutive,
      ...(this.#lastOkAt === undefined ? {} : { lastOkAt: this.#lastOkAt }),
      ...(this.#lastFailureAt === undefined ? {} : { lastFailureAt: this.#lastFailureAt }),
      ...(this.#lastError === undefined ? {} : { lastError: this.#lastError }),
      recentFailures: this.#failureTimes.filter((t) => now - t <= windowMs).length,
    };
  }
}
