// SPDX-License-Identifier: Apache-2.0
/**
 * The reconciler's retry policy for failed actions (reference §5.7): 5 s × 2^n, at most 2 min,
 * ±25 % jitter, 8 attempts. Pure, so tables test it.
 */

/** How failed actions are retried. */
export interface RetryPolicy {
  /** Delay after the first failure, in ms. */
  initialMs: number;
  /** Upper bound of any delay (before jitter), in ms. */
  maxMs: number;
  /** Growth per failure. */
  factor: number;
  /** Each delay is moved by up to ± this share at random, 0..1. */
  jitter: number;
  /** Failures after which timed retries stop (until something about the target changes). */
  maxAttempts: number;
}

/** The reference's policy. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  initialMs: 5000,
  maxMs: 120_000,
  factor: 2,
  jitter: 0.25,
  maxAttempts: 8,
};

/**
 * Delay before the retry that follows failure number `failures` (1-based): `initialMs ×
 * factor^(failures-1)` capped at `maxMs`, then moved by ±`jitter`. `random` is injectable.
 */
export function retryDelayMs(
  failures: number,
  policy: RetryPolicy = DEFAULT_RETRY_POLICY,
  random: () => number = Math.random,
): number {
  const n = Math.max(0, failures - 1);
  const base = Math.min(policy.maxMs, policy.initialMs * policy.factor ** n);
  return Math.max(0, Math.round(base * (1 + policy.jitter * (2 * random() - 1))));
}

/** True when `failures` has used up the policy's attempts. */
export function isRetryExhausted(
  failures: number,
  policy: RetryPolicy = DEFAULT_RETRY_POLICY,
): boolean {
  return failures >= policy.maxAttempts;
}
