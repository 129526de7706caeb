// SPDX-License-Identifier: Apache-2.0
/**
 * Keeps one long-lived stream open: runs a connect function, and whenever the stream ends or
 * fails, waits with exponential backoff and opens it again, forever. A stream that stayed up long
 * enough resets the backoff, so one failure after hours of health is retried after the initial
 * delay (seed 003: 5 s).
 */
import { type BackoffOptions, backoffDelayMs } from "../shared/backoff.js";
import { errorMessage, isAbortError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { sleep } from "../shared/sleep.js";

/** Stream reconnection backoff: 5 s, doubling, capped at 60 s, plus up to 20 % jitter. */
export const DEFAULT_STREAM_BACKOFF: BackoffOptions = {
  initialMs: 5_000,
  maxMs: 60_000,
  factor: 2,
  jitter: 0.2,
};
/** A stream that stayed open this long counts as healthy: the next failure starts backoff over. */
export const DEFAULT_STABLE_STREAM_MS = 30_000;

/** Options for {@link runReconnectLoop}. */
export interface ReconnectLoopOptions {
  /** Stream name for logs (`health`, `key_requests`, `files`). */
  name: string;
  /**
   * Opens the stream and resolves when the server ends it, or rejects when it fails. It must end
   * promptly once `signal` aborts.
   */
  connect: (signal: AbortSignal) => Promise<void>;
  logger: Logger;
  /** Defaults to {@link DEFAULT_STREAM_BACKOFF}. */
  backoff?: BackoffOptions;
  /** Defaults to {@link DEFAULT_STABLE_STREAM_MS}. */
  stableAfterMs?: number;
  /** Clock in ms; defaults to `Date.now`. */
  now?: () => number;
  /** Random source for jitter; defaults to `Math.random`. */
  random?: () => number;
}

/**
 * The retry number to use after a stream that lasted `upMs`: back to 0 when it was stable,
 * otherwise one more than last time.
 */
export function nextReconnectAttempt(attempt: number, upMs: number, stableAfterMs: number): number {
  return upMs >= stableAfterMs ? 0 : attempt;
}

/** Runs `connect` again and again until `signal` aborts; resolves then (never rejects). */
export async function runReconnectLoop(
  opts: ReconnectLoopOptions,
  signal: AbortSignal,
): Promise<void> {
  const now = opts.now ?? Date.now;
  const backoff = opts.backoff ?? DEFAULT_STREAM_BACKOFF;
  const stableAfterMs = opts.stableAfterMs ?? DEFAULT_STABLE_STREAM_MS;
  let attempt = 0;
  while (!signal.aborted) {
    const startedAt = now();
    let failure: unknown;
    try {
      await opts.connect(signal);
    } catch (err) {
      failure = err;
    }
    if (signal.aborted) break;
    attempt = nextReconnectAttempt(attempt, now() - startedAt, stableAfterMs);
    const waitMs = backoffDelayMs(attempt, backoff, opts.random);
    attempt++;
    const attrs = { stream: opts.name, attempt, retry_in_ms: waitMs };
    if (failure === undefined) opts.logger.info("Stream ended by the server; reconnecting", attrs);
    else opts.logger.warn("Stream failed; reconnecting", { ...attrs, err: errorMessage(failure) });
    try {
      await sleep(waitMs, signal);
    } catch (err) {
      if (!isAbortError(err) && !signal.aborted) throw err;
    }
  }
}
