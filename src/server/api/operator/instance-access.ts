// SPDX-License-Identifier: Apache-2.0
/** Tenant scoping of instance RPCs, and how an instance row reads to operators. */
import type { Db } from "../../../db/database.js";
import { getInstance, type InstanceRow, providerStatusOf } from "../../../db/instances-table.js";
import type { ClientIdentity } from "../../../pki/client-identity.js";
import { NstanceError } from "../../../shared/errors.js";

/** Throws NstanceError `invalid_argument` when an instance ID is empty. */
export function requireInstanceId(id: string): void {
  if (id === "") throw new NstanceError("invalid_argument", "instance_id is required");
}

/**
 * The caller tenant's instance `id`: NOT_FOUND when no such instance exists, PERMISSION_DENIED
 * when it belongs to another tenant (as the reference answers).
 */
export function tenantInstance(db: Db, caller: ClientIdentity, id: string): InstanceRow {
  requireInstanceId(id);
  const row = getInstance(db, id);
  if (!row) throw new NstanceError("not_found", `instance ${id} does not exist`);
  if (row.tenant !== caller.tenant) {
    throw new NstanceError("permission_denied", `instance ${id} belongs to another tenant`);
  }
  return row;
}

/** Provider-level status: `deleted` once soft-deleted, else the provider's, else `pending`. */
export function providerStatus(row: InstanceRow): string {
  if (row.deletedAt !== undefined) return "deleted";
  return providerStatusOf(row) ?? "pending";
}

/** Lifecycle status for lists: like {@link providerStatus}, but `draining` while a drain runs. */
export function lifecycleStatus(row: InstanceRow): string {
  const s = providerStatus(row);
  if (s === "deleted" || s === "deleting") return s;
  return row.drainStartedAt !== undefined ? "draining" : s;
}

/** `unhealthy` once marked so, `healthy` after a report, else `unknown`. */
export function healthOf(row: InstanceRow): string {
  if (row.unhealthyAt !== undefined) return "unhealthy";
  return row.healthAt !== undefined ? "healthy" : "unknown";
}
