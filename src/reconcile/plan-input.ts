// SPDX-License-Identifier: Apache-2.0
/**
 * Adapters from what the server stores (SQLite rows, effective groups) to the planner's input
 * shapes (plan-types.ts). Pure, so a table tests the mapping.
 */
import type { EffectiveGroup } from "../config/server-config.js";
import type { LiveInstance } from "../db/instance-lifecycle.js";
import type { DrainReason, PlanGroup, PlanInstance, PlanInstanceStatus } from "./plan-types.js";

const DRAIN_REASONS: ReadonlySet<string> = new Set<DrainReason>([
  "scale-down",
  "group-deleted",
  "unhealthy",
  "config-drift",
  "eligible-expiry",
  "forced-expiry",
  "spot-terminating",
]);

/** The drain reason stored in a row as a {@link DrainReason}; unknown text counts as `unhealthy`. */
export function toDrainReason(text: string | undefined): DrainReason {
  return text !== undefined && DRAIN_REASONS.has(text) ? (text as DrainReason) : "unhealthy";
}

/**
 * The planner's status of a live row: `deleting`/`deleted` from the provider, `running` once the
 * agent registered (a registered agent proves the VM runs) or the provider said so, else `pending`.
 */
export function planStatusOf(row: LiveInstance): PlanInstanceStatus {
  const s = row.providerStatus;
  if (s === "deleting" || s === "deleted") return s;
  if (row.registeredAt !== undefined || s === "running") return "running";
  return "pending";
}

/** A live row as the planner sees it. */
export function toPlanInstance(row: LiveInstance): PlanInstance {
  const p: PlanInstance = {
    id: row.id,
    tenant: row.tenant,
    group: row.groupKey,
    onDemand: row.onDemand,
    createdAt: row.createdAt,
    status: planStatusOf(row),
    infraHash: row.infraConfigHash,
  };
  if (row.providerId !== undefined) p.providerId = row.providerId;
  if (row.registeredAt !== undefined) p.registeredAt = row.registeredAt;
  if (row.unhealthyAt !== undefined) {
    p.unhealthy = { reason: row.unhealthyReason ?? "unhealthy", skipDrain: row.unhealthySkipDrain };
  }
  if (row.drainStartedAt !== undefined) {
    p.drain = {
      startedAt: row.drainStartedAt,
      deadlineAt: row.drainDeadlineAt ?? row.drainStartedAt,
      reason: toDrainReason(row.drainReason),
      ...(row.drainAckedAt === undefined ? {} : { ackedAt: row.drainAckedAt }),
    };
  }
  if (row.spotNoticeAt !== undefined) {
    p.spotNotice = row.spotDeadlineAt === undefined ? {} : { deadlineAt: row.spotDeadlineAt };
  }
  if (row.replacedBy !== undefined) p.replacedBy = row.replacedBy;
  return p;
}

/** A configured group as the planner sees it. */
export function toPlanGroup(
  g: EffectiveGroup,
  createRateLimitMs: number,
  subnetCapacity: boolean,
): PlanGroup {
  return {
    tenant: g.tenant,
    key: g.key,
    size: g.size,
    infraHash: g.infraHash,
    drainTimeoutMs: g.drainTimeoutMs,
    createRateLimitMs,
    ...(subnetCapacity ? {} : { subnetCapacity: false }),
  };
}
