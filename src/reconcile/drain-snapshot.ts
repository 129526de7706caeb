// SPDX-License-Identifier: Apache-2.0
/**
 * Drain notices as WatchInstances sends them: the `pending_deletion` event of one draining
 * instance, and the snapshot a new stream starts with (every draining instance of the tenant,
 * with its real reason rather than the reference's constant `unhealthy`).
 */
import type { Db } from "../db/database.js";
import { type LiveInstance, listDrainingInstances } from "../db/instance-lifecycle.js";
import type { InstanceEvent } from "../protocol/gen/nstance/v1/operator.js";

/** The `pending_deletion` event of a draining row. */
export function pendingDeletionEvent(row: LiveInstance): InstanceEvent {
  const startedAt = row.drainStartedAt ?? row.createdAt;
  return {
    instanceId: row.id,
    tenant: row.tenant,
    providerInstanceId: row.providerId ?? "",
    group: row.groupKey,
    status: "pending_deletion",
    reason: row.drainReason ?? "unhealthy",
    unhealthyAt: new Date(row.unhealthyAt ?? startedAt),
    deleteAt: new Date(row.drainDeadlineAt ?? startedAt),
  };
}

/** Every instance of `tenant` that is draining now, as `pending_deletion` events, oldest first. */
export function drainSnapshot(db: Db, tenant: string): InstanceEvent[] {
  return listDrainingInstances(db, tenant)
    .filter((r) => r.drainAckedAt === undefined)
    .map(pendingDeletionEvent);
}
