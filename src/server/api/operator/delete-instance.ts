// SPDX-License-Identifier: Apache-2.0
/** DeleteInstance: delete an instance of the caller's tenant (idempotent). */
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
import { reconcilerPending } from "./reconciler-pending.js";

/**
 * Leader only. An unknown or already deleted instance answers `unknown` (idempotent); another
 * tenant's is PERMISSION_DENIED; a live one is UNIMPLEMENTED until the reconciler deletes it.
 */
export function deleteInstance(
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
  if (!row || row.deletedAt !== undefined) return Promise.resolve({ status: "unknown" });
  throw reconcilerPending("DeleteInstance");
}
