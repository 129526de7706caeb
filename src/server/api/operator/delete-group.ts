// SPDX-License-Identifier: Apache-2.0
/** DeleteGroup: remove a dynamic group (or a static group's dynamic overrides). */

import type { ClientIdentity } from "../../../pki/client-identity.js";
import type { Empty } from "../../../protocol/gen/google/protobuf/empty.js";
import type { DeleteGroupRequest } from "../../../protocol/gen/nstance/v1/operator.js";
import { NstanceError } from "../../../shared/errors.js";
import type { ApiContext } from "../api-context.js";
import { requireLeader } from "../require-leader.js";

/**
 * Deletes group `key` of the caller's tenant from the dynamic groups file; leader only. An unknown
 * group (another tenant's included) is NOT_FOUND; a static group without overrides is
 * INVALID_ARGUMENT.
 */
export async function deleteGroup(
  ctx: ApiContext,
  caller: ClientIdentity,
  req: DeleteGroupRequest,
  signal?: AbortSignal,
): Promise<Empty> {
  requireLeader(ctx.leadership);
  if (req.key === "") throw new NstanceError("invalid_argument", "key is required");
  const remaining = await ctx.configStore.deleteGroup(caller.tenant, req.key, signal);
  ctx.logger.info(remaining ? "Group overrides deleted" : "Group deleted", {
    tenant: caller.tenant,
    group: req.key,
    client_id: caller.clientId,
  });
  return {};
}
