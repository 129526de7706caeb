// SPDX-License-Identifier: Apache-2.0
/** The standby rule: mutating RPCs run only on the shard leader; others name the leader. */
import { NstanceError } from "../../shared/errors.js";
import type { Leadership } from "./api-context.js";

/** The FAILED_PRECONDITION message for a call that needs the shard leader. */
export function notLeaderMessage(leadership: Leadership): string {
  const leader = leadership.leader();
  return leader
    ? `not the shard leader; the leader is ${leader.id} at ${leader.addr || "an unknown address"}`
    : "not the shard leader; no leader elected yet";
}

/** Throws NstanceError `precondition_failed` naming the leader unless this server leads. */
export function requireLeader(leadership: Leadership): void {
  if (!leadership.isLeader()) {
    throw new NstanceError("precondition_failed", notLeaderMessage(leadership));
  }
}
