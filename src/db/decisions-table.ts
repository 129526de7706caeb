// SPDX-License-Identifier: Apache-2.0
/**
 * Writes to the `decisions` table: the history of every decision about an instance (created,
 * found unhealthy, replacement started, drain notified, acked or timed out, deleted …) with its
 * reason and the evidence it rested on (issue 7). Reads live in instances-table.ts
 * (`listInstanceDecisions`). Rows go with their instance when garbage collection purges it.
 */
import type { Db } from "./database.js";

/** The decisions the server records, in the order an instance's life usually visits them. */
export const DECISIONS = [
  /** The row and storage record were written; the provider create is next. */
  "create_requested",
  /** The provider accepted the create. */
  "created",
  /** The provider create (or a step before it) failed; the instance is abandoned. */
  "create_failed",
  /** The agent registered. */
  "registered",
  /** The agent renewed its client certificate (same key; evidence: new and previous serial). */
  "certificate_renewed",
  /** A health verdict said the instance is unhealthy. */
  "found_unhealthy",
  /** The agent reported again before anything acted on its unhealthy verdict; it was cleared. */
  "recovered",
  /** The provider announced a spot/preemption termination. */
  "termination_notice",
  /** A replacement for this instance was created (evidence names it). */
  "replacement_started",
  /** The operator was told (WatchInstances `pending_deletion`) that the instance will go. */
  "drain_notified",
  /** The operator acknowledged the drain. */
  "drain_acked",
  /** An acknowledgement arrived for an instance that was not draining; nothing changed. */
  "drain_ack_ignored",
  /** The drain deadline passed without an acknowledgement. */
  "drain_timed_out",
  /** Load balancers, provider and record were told; the instance is gone. */
  "deleted",
  /** A delete step failed; it is retried with backoff. */
  "delete_failed",
  /** Rebuilding the cache found the provider no longer has the VM. */
  "vanished",
] as const;
/** One of {@link DECISIONS}. */
export type Decision = (typeof DECISIONS)[number];

/** A decision to record. */
export interface NewDecision {
  instanceId: string;
  decision: Decision;
  /** Why, in the reconciler's vocabulary (`scale-down`, `config-drift`, `missed-reports` …). */
  reason: string;
  /** The facts it rested on (provider status, report age, replacement ID …). */
  evidence?: Record<string, unknown>;
  /** Unix ms. */
  at: number;
}

/** Appends one decision to an instance's history. */
export function recordDecision(db: Db, d: NewDecision): void {
  db.prepare(
    "INSERT INTO decisions (instance_id, at, decision, reason, evidence) VALUES (?, ?, ?, ?, ?)",
  ).run(d.instanceId, d.at, d.decision, d.reason, JSON.stringify(d.evidence ?? {}));
}

/** Deletes the whole history of an instance; returns the number of rows removed. */
export function deleteDecisions(db: Db, instanceId: string): number {
  return db.prepare("DELETE FROM decisions WHERE instance_id = ?").run(instanceId).changes;
}
