// SPDX-License-Identifier: Apache-2.0
/** DeleteInstance: delete an instance of the caller's tenant now (idempotent). */
import { getInstance } from "../../../db/instances-table.js";
import type { ClientIdentity } from "../../../pki/client-identity.js";
import type {
  DeleteInstanceRequest,
  DeleteInstanceResponse,
} from "../../../protocol/gen/nstance/v1/operator.js";
import { NstanceError } from "../../../shared/errors.js";
import type { ApiContext } from "../api-context.js";
import { requireLeader } from "../require-leader.js";
import { requireInstanceId } from "./instance-access.js";
import { requireReconciler } from "./require-reconciler.js";

/**
 * Deletes an instance without drain (load balancers, provider, record), on-demand or managed (a
 * managed group is backfilled), and answers once it is gone: `deleted`, or `deleting` when another
 * delete of it is still finishing. Leader only. An unknown or already deleted instance answers
 * `unknown` (idempotent); another tenant's is PERMISSION_DENIED.
 */
export async function deleteInstance(
  ctx: ApiContext,
  caller: ClientIdentity,
  req: DeleteInstanceRequest,
): Promise<DeleteInstanceResponse> {
  requireLeader(ctx.leadership);
  requireInstanceId(req.instanceId);
  const row = getInstance(ctx.db, req.instanceId);
  if (row && row.tenant !== caller.tenant) {
    throw new NstanceError("permission_denied", `instance ${row.id} belongs to another tenant`);
  }
  if (!row || row.deletedAt !== undefined) return { status: "unknown" };
  const { reconciler } = requireReconciler(ctx);
  // No call signal: a delete that has begun runs to its end, whatever the client does.
  const outcome = await reconciler.deleteInstance(row.id, {
    reason: "operator",
    evidence: { client_id: caller.clientId },
  });
  if (outcome === "unknown") return { status: "unknown" };
  const after = getInstance(ctx.db, row.id);
  ctx.logger.info("Instance deleted by operator", {
    instance_id: row.id,
    tenant: row.tenant,
    group: row.groupKey,
    on_demand: row.onDemand,
    client_id: caller.clientId,
  });
  return { status: after?.deletedAt !== undefined ? "deleted" : "deleting" };
}
