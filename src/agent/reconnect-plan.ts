// SPDX-License-Identifier: Apache-2.0
/**
 * What a stream does after it failed, as pure functions: how long to wait and with which retry
 * number. The backoff is per server address (seed 003: 5 s, doubling), so moving to another
 * server starts from the initial delay rather than carrying the count of a server that was down.
 * A standby's refusal that names a leader sends the stream to the other addresses at once (at
 * most once round all of them in a row, so servers that only point at each other still back
 * off). A stream of the channel reaching a server clears that server's count.
 */
import { status } from "@grpc/grpc-js";

/** Message prefix of the servers' FAILED_PRECONDITION answer when they are not the leader. */
export const NOT_LEADER_PREFIX = "not the shard leader";

/** One stream's reconnect state; treat as immutable. */
export interface ReconnectState {
  /** Consecutive failures per server address since it was last reached. */
  failures: ReadonlyMap<string, number>;
  /** Immediate retries in a row (standby refusals that named a leader). */
  immediateInARow: number;
}

/** The state of a stream that has not failed yet. */
export const INITIAL_RECONNECT_STATE: ReconnectState = { failures: new Map(), immediateInARow: 0 };

/** How a stream attempt ended, as far as choosing the next server and delay goes. */
export type StreamFailureKind =
  | "ended"
  | "standby_named_leader"
  | "standby"
  | "unreachable"
  | "other";

/** Classifies a stream's outcome: `undefined` (ended by the server) or the error it failed with. */
export function streamFailureKind(err: unknown): StreamFailureKind {
  if (err === undefined) return "ended";
  const e = err as { code?: unknown; details?: unknown; message?: unknown };
  if (e.code === status.UNAVAILABLE) return "unreachable";
  if (e.code !== status.FAILED_PRECONDITION) return "other";
  const text = String(e.details ?? e.message ?? "");
  if (!text.includes(NOT_LEADER_PREFIX)) return "other";
  return text.includes("the leader is ") ? "standby_named_leader" : "standby";
}

/** One failed (or ended) attempt, as {@link planReconnect} sees it. */
export interface ReconnectEvent {
  /** The address the attempt used. */
  fromAddr: string;
  /** The address the next attempt will use (the channel may have moved on). */
  toAddr: string;
  /** How long the attempt's stream was up. */
  upMs: number;
  /** The error it failed with; undefined when the server ended it. */
  failure: unknown;
  /** How many server addresses the channel has. */
  addrCount: number;
  /** A stream that stayed up this long counts as healthy: its server's count starts over. */
  stableAfterMs: number;
}

/** The decision of {@link planReconnect}. */
export interface ReconnectPlan {
  state: ReconnectState;
  /** Retry at once, without backoff (a standby named a leader and the channel moved on). */
  immediate: boolean;
  /** 0-based backoff exponent for the wait before the next attempt (0 when immediate). */
  backoffAttempt: number;
}

/** Decides the next attempt after one ended or failed; see the file comment. */
export function planReconnect(state: ReconnectState, event: ReconnectEvent): ReconnectPlan {
  const failures = new Map(state.failures);
  const before = event.upMs >= event.stableAfterMs ? 0 : (failures.get(event.fromAddr) ?? 0);
  failures.set(event.fromAddr, before + 1);
  const moved = event.toAddr !== event.fromAddr;
  const immediate =
    moved &&
    streamFailureKind(event.failure) === "standby_named_leader" &&
    state.immediateInARow < event.addrCount - 1;
  return {
    state: { failures, immediateInARow: immediate ? state.immediateInARow + 1 : 0 },
    immediate,
    // Retry number k of a server waits initial × factor^(k-1); a fresh server waits the initial.
    backoffAttempt: immediate ? 0 : Math.max(0, (failures.get(event.toAddr) ?? 0) - 1),
  };
}

/** The state after some stream of the channel reached `addr`: that server's count starts over. */
export function afterServerReached(state: ReconnectState, addr: string): ReconnectState {
  if (!state.failures.get(addr) && state.immediateInARow === 0) return state;
  const failures = new Map(state.failures);
  failures.delete(addr);
  return { failures, immediateInARow: 0 };
}
