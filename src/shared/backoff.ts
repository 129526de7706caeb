// SPDX-License-Identifier: Apache-2.0
/** Exponential backoff with optional jitter, as a pure function so tables can test it. */

/** Options for {@link backoffDelayMs}. */
export interface BackoffOptions {
  /** Delay before the first retry, in ms. */
  initialMs: number;
  /** Upper bound of any delay, in ms. */
  maxMs: number;
  /** Growth factor per attempt. Defaults to 2. */
  factor?: number;
  /** Fraction of the delay added at random, 0..1. Defaults to 0. */
  jitter?: number;
}

/** Delay before retry number `attempt` (0-based). `random` is injectable for tests. */
export function backoffDelayMs(
  attempt: number,
  opts: BackoffOptions,
  random: () => number = Math.random,
): number {
  const base = Math.min(opts.maxMs, opts.initialMs * (opts.factor ?? 2) ** attempt);
  const jitter = opts.jitter ?? 0;
  return Math.round(base + base * jitter * random());
}
