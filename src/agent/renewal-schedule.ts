// SPDX-License-Identifier: Apache-2.0
/**
 * When the agent renews its client certificate: once a third of the lifetime is left (2/3 of the
 * way from notBefore to notAfter) or `NSTANCE_CERT_RENEW_BEFORE` before notAfter, and after a
 * failed attempt again with backoff, more often as the expiry nears but never past it.
 */
import { type BackoffOptions, backoffDelayMs } from "../shared/backoff.js";

/** Share of the lifetime left when the agent renews, unless `NSTANCE_CERT_RENEW_BEFORE` says. */
export const DEFAULT_RENEW_WHEN_LEFT = 1 / 3;
/** Backoff after failed renewals: 30 s, doubling, at most 10 min. */
export const DEFAULT_RENEWAL_RETRY: BackoffOptions = {
  initialMs: 30_000,
  maxMs: 600_000,
  factor: 2,
};
/**
 * Shortest wait before a retry: near the expiry retries come every half of the time left, but
 * not closer than this; when less than this is left, there is no further attempt.
 */
export const DEFAULT_MIN_RETRY_MS = 1_000;

/** What {@link renewalDelayMs} decides from. Times are unix ms. */
export interface RenewalScheduleInput {
  /** The certificate's notBefore. */
  validFromMs: number;
  /** The certificate's notAfter. */
  validToMs: number;
  nowMs: number;
  /** Failed attempts since the certificate was obtained; 0 before the first attempt. */
  failures: number;
  /** `NSTANCE_CERT_RENEW_BEFORE`; defaults to {@link DEFAULT_RENEW_WHEN_LEFT} of the lifetime. */
  renewBeforeMs?: number;
  /** The first attempt is not made before this (the agent's floor between renewals). */
  notBeforeMs?: number;
  /** Defaults to {@link DEFAULT_RENEWAL_RETRY}. */
  retry?: BackoffOptions;
}

/**
 * How long to wait before the next renewal attempt, or undefined when none is worth making: the
 * certificate has expired (a handshake with it fails, so only replacing the instance helps), or
 * less than {@link DEFAULT_MIN_RETRY_MS} is left after a failure.
 *
 * - First attempt (`failures` 0): at notAfter − renewBefore, not before `notBeforeMs`; 0 when
 *   that time has passed.
 * - After a failure: the retry backoff (30 s, 1 min, 2 min … 10 min), but at most half of the time
 *   left (and at least {@link DEFAULT_MIN_RETRY_MS}), so several attempts fit before the expiry.
 */
export function renewalDelayMs(input: RenewalScheduleInput): number | undefined {
  const leftMs = input.validToMs - input.nowMs;
  if (leftMs <= 0) return undefined;
  if (input.failures <= 0) {
    const lifetimeMs = Math.max(0, input.validToMs - input.validFromMs);
    const renewBeforeMs = input.renewBeforeMs ?? lifetimeMs * DEFAULT_RENEW_WHEN_LEFT;
    const renewAtMs = Math.max(input.validToMs - renewBeforeMs, input.notBeforeMs ?? -Infinity);
    return Math.max(0, Math.round(renewAtMs - input.nowMs));
  }
  const backoffMs = backoffDelayMs(input.failures - 1, input.retry ?? DEFAULT_RENEWAL_RETRY);
  const delayMs = Math.min(backoffMs, Math.max(DEFAULT_MIN_RETRY_MS, Math.floor(leftMs / 2)));
  return delayMs < leftMs ? delayMs : undefined;
}
