// SPDX-License-Identifier: Apache-2.0
/** The standby rule: mutating RPCs run only on the shard leader; others name the leader. */
import { NstanceError } from "../../shared/errors.js";
import type { Leadership } from "./api-context.js";

/**
 * The FAILED_PRECONDITION message for a call that needs the shard leader. It names the leader's
 * Operator address when known (`… the leader is s2 (operator 10.0.0.2:8993)`), which clients can
 * dial; otherwise its election address.
 */
export function notLeaderMessage(leadership: Leadership): string {
  const leader = leadership.leader();
  if (!leader) return "not the shard leader; no leader elected yet";
  if (leader.operatorAddr) {
    return `not the shard leader; the leader is ${leader.id} (operator ${leader.operatorAddr})`;
  }
  return `not the shard leader; the leader is ${leader.id} at ${leader.addr || "an unknown address"}`;
}

/** Throws NstanceError `precondition_failed` naming the leader unless this server leads. */
export function requireLeader(leadership: Leadership): void {
  if (!leadership.isLeader()) {
    throw new NstanceError("precondition_failed", notLeaderMessage(leadership));
  }
}
