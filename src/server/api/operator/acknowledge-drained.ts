// SPDX-License-Identifier: Apache-2.0
/** AcknowledgeDrained: the operator drained an instance; the server may delete it now. */

import type { ClientIdentity } from "../../../pki/client-identity.js";
import type { Empty } from "../../../protocol/gen/google/protobuf/empty.js";
import type { AcknowledgeDrainedRequest } from "../../../protocol/gen/nstance/v1/operator.js";
import type { ApiContext } from "../api-context.js";
import { requireLeader } from "../require-leader.js";
import { tenantInstance } from "./instance-access.js";
import { reconcilerPending } from "./reconciler-pending.js";

/**
 * Leader only; NOT_FOUND / PERMISSION_DENIED as for any instance; then UNIMPLEMENTED until the
 * reconciler deletes drained instances.
 */
export function acknowledgeDrained(
  ctx: ApiContext,
  caller: ClientIdentity,
  req: AcknowledgeDrainedRequest,
): Promise<Empty> {
  requireLeader(ctx.leadership);
  tenantInstance(ctx.db, caller, req.instanceId);
  throw reconcilerPending("AcknowledgeDrained");
}
