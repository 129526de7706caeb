// SPDX-License-Identifier: Apache-2.0
/**
 * When the admin client tries a shard call again, as pure functions: only a call that certainly
 * did not run is retried (no connection was established, or the server refused it before acting:
 * "not the shard leader", a leader still starting its reconciler). It moves to the shard's next
 * address at once; after a full pass over the HA set it backs off, until the retry window ends.
 * A call whose outcome is unknown (the connection broke mid-call, the deadline passed) is retried
 * only when it reads and changes nothing: running a read twice is harmless.
 */
import { type BackoffOptions, backoffDelayMs } from "../../shared/backoff.js";
import type { NstanceError } from "../../shared/errors.js";

/** Pause after each full pass over a shard's addresses: 200 ms, doubling, at most 2 s. */
export const DEFAULT_RETRY_BACKOFF: BackoffOptions = { initialMs: 200, maxMs: 2_000 };

/** How long a call may be retried in all when the caller sets nothing (the `--timeout` default). */
export const DEFAULT_RETRY_WINDOW_MS = 30_000;

/**
 * What a failed call tells about its effect: `not_run` (safe to send elsewhere), `unknown` (it may
 * have run: never retried), or `failed` (the server answered with a final error).
 */
export type CallOutcome = "not_run" | "unknown" | "failed";

/** grpc-js UNAVAILABLE for a call that never got a connection. */
const NO_CONNECTION = /^No connection established/;
/** Connection failures that another attempt cannot fix (a certificate the peer rejects). */
const TLS_REJECTED = /Failed to connect$|certificate|altnames|handshake|alert/i;
/** The server's refusal on a standby (src/server/api/require-leader.ts). */
const NOT_LEADER = /^not the shard leader/;
/** A standby's refusal while no leader is known (a handover in progress). */
const NO_LEADER_YET = /no leader elected yet/;
/** The leader's refusal before its reconciler runs (src/server/api/operator/require-reconciler.ts). */
const RECONCILER_NOT_RUNNING = /reconciler is not running/;

/** Classifies a failed call's error (code and message as `fromGrpcError` maps them). */
export function callOutcome(err: Pick<NstanceError, "code" | "message">): CallOutcome {
  switch (err.code) {
    case "precondition_failed":
      return NOT_LEADER.test(err.message) ? "not_run" : "failed";
    case "unavailable":
      if (NO_CONNECTION.test(err.message)) {
        const last = err.message.replace(/\.?\s*Resolution note:.*$/s, "");
        return TLS_REJECTED.test(last) ? "failed" : "not_run";
      }
      return RECONCILER_NOT_RUNNING.test(err.message) ? "not_run" : "unknown";
    case "deadline_exceeded":
      return "unknown";
    default:
      return "failed";
  }
}

/** The leader's Operator address named by a "not the shard leader" refusal, if any. */
export function leaderHint(message: string): string | undefined {
  if (!NOT_LEADER.test(message)) return undefined;
  return /\(operator ([^\s,)]+)/.exec(message)?.[1];
}

/** State of one shard call for {@link nextAttempt}. */
export interface AttemptState {
  /** Attempts made so far (≥ 1). */
  attempts: number;
  /** Number of addresses in the shard's HA set. */
  addressCount: number;
  /** Time since the first attempt started. */
  elapsedMs: number;
  /** Retries stop once this much time has passed since the first attempt. */
  windowMs: number;
  /** The pause after each full pass; defaults to {@link DEFAULT_RETRY_BACKOFF}. */
  backoff?: BackoffOptions;
  /** The call only reads (ListGroups, ListInstances …): an unknown outcome may be retried too. */
  readOnly?: boolean;
}

/**
 * After a failed attempt: `undefined` to give up, or the delay before the next attempt (0 within
 * a pass over the addresses, then a growing backoff after each full pass). Only a call that
 * certainly did not run is retried, or a read whose outcome is unknown; a standby's refusal naming
 * the leader only when the shard has another address to try (with one address it would refuse
 * again). A retry that could not start before the window ends is not made.
 */
export function nextAttempt(
  err: Pick<NstanceError, "code" | "message">,
  s: AttemptState,
): number | undefined {
  const outcome = callOutcome(err);
  if (outcome === "failed" || (outcome === "unknown" && !s.readOnly)) return undefined;
  const n = Math.max(1, s.addressCount);
  if (n === 1 && NOT_LEADER.test(err.message) && !NO_LEADER_YET.test(err.message)) {
    return undefined;
  }
  const delayMs =
    s.attempts % n === 0
      ? backoffDelayMs(s.attempts / n - 1, s.backoff ?? DEFAULT_RETRY_BACKOFF)
      : 0;
  return s.elapsedMs + delayMs < s.windowMs ? delayMs : undefined;
}
