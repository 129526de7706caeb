// SPDX-License-Identifier: Apache-2.0
/** CreateInstance: an on-demand instance in a group of the caller's tenant. */

import type { ClientIdentity } from "../../../pki/client-identity.js";
import type {
  CreateInstanceRequest,
  CreateInstanceResponse,
} from "../../../protocol/gen/nstance/v1/operator.js";
import { NstanceError } from "../../../shared/errors.js";
import type { ApiContext } from "../api-context.js";
import { requireLeader } from "../require-leader.js";
import { reconcilerPending } from "./reconciler-pending.js";

/**
 * Checks an on-demand create (leader only; `config.group` required, INVALID_ARGUMENT; the group
 * must exist in the caller's tenant, NOT_FOUND), then answers UNIMPLEMENTED until the reconciler
 * can provision it.
 */
export function createInstance(
  ctx: ApiContext,
  caller: ClientIdentity,
  req: CreateInstanceRequest,
): Promise<CreateInstanceResponse> {
  requireLeader(ctx.leadership);
  if (!req.config || req.config.group === "") {
    throw new NstanceError("invalid_argument", "config.group is required");
  }
  if (!ctx.configStore.group(caller.tenant, req.config.group)) {
    throw new NstanceError(
      "not_found",
      `group ${req.config.group} does not exist in tenant ${caller.tenant}`,
    );
  }
  throw reconcilerPending("CreateInstance");
}
