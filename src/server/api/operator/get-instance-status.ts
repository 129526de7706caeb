// SPDX-License-Identifier: Apache-2.0
/** GetInstanceStatus: one instance of the caller's tenant, from the SQLite cache. */

import type { ClientIdentity } from "../../../pki/client-identity.js";
import type {
  GetInstanceStatusRequest,
  GetInstanceStatusResponse,
} from "../../../protocol/gen/nstance/v1/operator.js";
import type { ApiContext } from "../api-context.js";
import { providerStatus, tenantInstance } from "./instance-access.js";

/**
 * The instance's provider status as last cached, creation time and last health report. NOT_FOUND
 * for an unknown instance, PERMISSION_DENIED for another tenant's. Works on standbys.
 */
export function getInstanceStatus(
  ctx: ApiContext,
  caller: ClientIdentity,
  req: GetInstanceStatusRequest,
): GetInstanceStatusResponse {
  const row = tenantInstance(ctx.db, caller, req.instanceId);
  return {
    instanceId: row.id,
    tenant: row.tenant,
    status: providerStatus(row),
    createdAt: new Date(row.createdAt),
    lastSeen: row.healthAt === undefined ? undefined : new Date(row.healthAt),
    providerInstanceId: row.providerId ?? "",
  };
}
