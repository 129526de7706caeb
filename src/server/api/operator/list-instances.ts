// SPDX-License-Identifier: Apache-2.0
/** ListInstances: the caller tenant's instances, from the SQLite cache. */

import { listTenantInstances } from "../../../db/instances-table.js";
import type { ClientIdentity } from "../../../pki/client-identity.js";
import type {
  ListInstancesRequest,
  ListInstancesResponse,
} from "../../../protocol/gen/nstance/v1/operator.js";
import type { ApiContext } from "../api-context.js";
import { healthOf, lifecycleStatus } from "./instance-access.js";

/** Lists the caller tenant's instances (optionally of one group) by creation time. Works on standbys. */
export function listInstances(
  ctx: ApiContext,
  caller: ClientIdentity,
  req: ListInstancesRequest,
): ListInstancesResponse {
  const now = (ctx.now ?? Date.now)();
  const group = req.group === "" ? undefined : req.group;
  return {
    instances: listTenantInstances(ctx.db, caller.tenant, group).map((row) => ({
      instanceId: row.id,
      tenant: row.tenant,
      group: row.groupKey,
      onDemand: row.onDemand,
      status: lifecycleStatus(row),
      providerInstanceId: row.providerId ?? "",
      createdAt: new Date(row.createdAt),
      registeredAt: row.registeredAt === undefined ? undefined : new Date(row.registeredAt),
      lastReportAt: row.healthAt === undefined ? undefined : new Date(row.healthAt),
      health: healthOf(row),
      ageSeconds: Math.max(0, Math.floor((now - row.createdAt) / 1000)),
    })),
  };
}
