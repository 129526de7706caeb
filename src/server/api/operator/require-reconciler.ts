// SPDX-License-Identifier: Apache-2.0
/** The leader rule for instance RPCs: they act through the reconciler of the current term. */
import { NstanceError } from "../../../shared/errors.js";
import type { ApiContext, TermReconciler } from "../api-context.js";
import { requireLeader } from "../require-leader.js";

/**
 * The reconciler of the current term. A standby answers FAILED_PRECONDITION naming the leader (as
 * {@link requireLeader}); a leader whose shard management has not started yet (cache rebuild) or
 * has just ended answers UNAVAILABLE, which clients retry.
 */
export function requireReconciler(ctx: ApiContext): TermReconciler {
  requireLeader(ctx.leadership);
  const current = ctx.reconciler?.();
  if (!current || current.signal.aborted) {
    throw new NstanceError(
      "unavailable",
      "this server leads the shard but its reconciler is not running (starting up or handing over); retry shortly",
    );
  }
  return current;
}
