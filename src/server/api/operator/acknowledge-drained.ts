// SPDX-License-Identifier: Apache-2.0
/** AcknowledgeDrained: the operator drained an instance; the server deletes it now. */
import type { ClientIdentity } from "../../../pki/client-identity.js";
import type { Empty } from "../../../protocol/gen/google/protobuf/empty.js";
import type { AcknowledgeDrainedRequest } from "../../../protocol/gen/nstance/v1/operator.js";
import { NstanceError } from "../../../shared/errors.js";
import type { ApiContext } from "../api-context.js";
import { requireLeader } from "../require-leader.js";
import { tenantInstance } from "./instance-access.js";
import { requireReconciler } from "./require-reconciler.js";

/**
 * Records the acknowledgement; the reconciler then deletes the instance without waiting for its
 * drain deadline. Leader only. A repeated acknowledgement succeeds, also once the instance is gone.
 * NOT_FOUND: no such instance, or it was deleted without this acknowledgement (its deadline passed,
 * or an operator deleted it); PERMISSION_DENIED: another tenant's; FAILED_PRECONDITION: it is not
 * draining (nothing changes).
 */
export function acknowledgeDrained(
  ctx: ApiContext,
  caller: ClientIdentity,
  req: AcknowledgeDrainedRequest,
): Empty {
  requireLeader(ctx.leadership);
  const row = tenantInstance(ctx.db, caller, req.instanceId);
  const { reconciler } = requireReconciler(ctx);
  // A retried acknowledgement whose instance is already gone (as acknowledged) succeeds too.
  if (row.deletedAt !== undefined && row.drainAckedAt !== undefined) return {};
  const outcome = reconciler.acknowledgeDrained(row.id);
  switch (outcome) {
    case "acked":
      ctx.logger.info("Drain acknowledged", {
        instance_id: row.id,
        tenant: row.tenant,
        group: row.groupKey,
        client_id: caller.clientId,
      });
      return {};
    case "already_acked":
      return {};
    case "not_draining":
      throw new NstanceError(
        "precondition_failed",
        `instance ${row.id} is not draining; only an instance announced as pending_deletion can be acknowledged`,
      );
    case "unknown":
      throw new NstanceError("not_found", `instance ${row.id} has already been deleted`);
  }
}
