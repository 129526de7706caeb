// SPDX-License-Identifier: Apache-2.0
/**
 * Keeps one long-lived stream open: runs a connect function, and whenever the stream ends or
 * fails, waits with exponential backoff and opens it again, forever. The backoff is counted per
 * server address ({@link planReconnect}): a stream that stayed up long enough, or that another
 * stream of the same channel proved reachable, starts over at the initial delay (seed 003: 5 s),
 * and so does a move to another server. A standby's refusal that names the leader is retried on
 * the next address at once. While a stream waits, another stream of its channel reaching a server
 * wakes it to retry now.
 */
import { type BackoffOptions, backoffDelayMs } from "../shared/backoff.js";
import { errorMessage } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { runInBackground } from "../shared/run-in-background.js";
import {
  afterServerReached,
  INITIAL_RECONNECT_STATE,
  planReconnect,
  type ReconnectState,
} from "./reconnect-plan.js";

/** Stream reconnection backoff: 5 s, doubling, capped at 60 s, plus up to 20 % jitter. */
export const DEFAULT_STREAM_BACKOFF: BackoffOptions = {
  initialMs: 5_000,
  maxMs: 60_000,
  factor: 2,
  jitter: 0.2,
};
/** A stream that stayed open this long counts as healthy: the next failure starts backoff over. */
export const DEFAULT_STABLE_STREAM_MS = 30_000;

/** What the loop reads of the stream's channel (all optional: a bare fake has one address). */
export interface ReconnectChannel {
  /** The address the next attempt will use. */
  readonly addr: string;
  /** How many server addresses the channel has. */
  readonly addrCount: number;
  /** Calls `listener` whenever a stream of the channel reaches a server; returns the unsubscribe. */
  onServerReached(listener: (addr: string) => void): () => void;
}

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
  /** The channel `connect` uses; without it the loop sees one address and is never woken. */
  channel?: Partial<ReconnectChannel>;
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
 * Starts {@link runReconnectLoop} without awaiting it (task `<name>_stream`); returns its promise
 * for the owner's stop() to await.
 */
export function startReconnectLoop(opts: ReconnectLoopOptions, signal: AbortSignal): Promise<void> {
  return runInBackground(`${opts.name}_stream`, () => runReconnectLoop(opts, signal), opts.logger);
}

/** Runs `connect` again and again until `signal` aborts; resolves then (never rejects). */
export async function runReconnectLoop(
  opts: ReconnectLoopOptions,
  signal: AbortSignal,
): Promise<void> {
  const now = opts.now ?? Date.now;
  const backoff = opts.backoff ?? DEFAULT_STREAM_BACKOFF;
  const stableAfterMs = opts.stableAfterMs ?? DEFAULT_STABLE_STREAM_MS;
  const channel = opts.channel;
  const addrOf = (): string => channel?.addr ?? "";
  let state: ReconnectState = INITIAL_RECONNECT_STATE;
  let wake: ((addr: string) => void) | undefined;
  const unsubscribe = channel?.onServerReached?.((addr) => {
    state = afterServerReached(state, addr);
    wake?.(addr);
  });
  try {
    while (!signal.aborted) {
      const fromAddr = addrOf();
      const startedAt = now();
      let failure: unknown;
      try {
        await opts.connect(signal);
      } catch (err) {
        failure = err;
      }
      if (signal.aborted) break;
      const toAddr = addrOf();
      const plan = planReconnect(state, {
        fromAddr,
        toAddr,
        upMs: now() - startedAt,
        failure,
        addrCount: channel?.addrCount ?? 1,
        stableAfterMs,
      });
      state = plan.state;
      const err = failure === undefined ? undefined : errorMessage(failure);
      if (plan.immediate) {
        opts.logger.info("Server is a standby; trying the next address now", {
          stream: opts.name,
          from: fromAddr,
          to: toAddr,
          err,
        });
        continue;
      }
      const waitMs = backoffDelayMs(plan.backoffAttempt, backoff, opts.random);
      const attrs = {
        stream: opts.name,
        attempt: plan.backoffAttempt + 1,
        retry_in_ms: waitMs,
        ...(channel?.addr === undefined ? {} : { addr: toAddr }),
      };
      if (failure === undefined)
        opts.logger.info("Stream ended by the server; reconnecting", attrs);
      else opts.logger.warn("Stream failed; reconnecting", { ...attrs, err });
      const reached = await waitOrWake(waitMs, signal, (w) => {
        wake = w;
      });
      wake = undefined;
      if (reached !== undefined) {
        opts.logger.info("Another stream reached the server; retrying now", {
          stream: opts.name,
          addr: reached,
        });
      }
    }
  } finally {
    unsubscribe?.();
  }
}

/**
 * Sleeps `ms`; resolves early with the address when the function given to `arm` is called, and
 * with undefined when the time is up or `signal` aborts.
 */
function waitOrWake(
  ms: number,
  signal: AbortSignal,
  arm: (wake: (addr: string) => void) => void,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(undefined);
    const finish = (addr: string | undefined): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      resolve(addr);
    };
    const onAbort = (): void => finish(undefined);
    const timer = setTimeout(() => finish(undefined), ms);
    signal.addEventListener("abort", onAbort, { once: true });
    arm((addr) => finish(addr));
  });
}
