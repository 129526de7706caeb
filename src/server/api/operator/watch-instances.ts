// SPDX-License-Identifier: Apache-2.0
/** WatchInstances: drain notices of the caller's tenant. */
import type { ClientIdentity } from "../../../pki/client-identity.js";
import type { InstanceEvent } from "../../../protocol/gen/nstance/v1/operator.js";
import { drainSnapshot } from "../../../reconcile/drain-snapshot.js";
import type { ApiContext } from "../api-context.js";
import { UnimplementedError } from "../handler.js";
import { requireReconciler } from "./require-reconciler.js";
import { tenantEventStream } from "./tenant-event-stream.js";

/**
 * Streams the caller tenant's drain notices on the shard leader: first every instance draining now
 * (`pending_deletion` with its reason and `delete_at` deadline), then live `pending_deletion` and
 * `deleted` events. Acknowledge each with AcknowledgeDrained; a new leader may announce a drain
 * again, so handle repeats. A standby answers FAILED_PRECONDITION naming the leader; the stream
 * ends with UNAVAILABLE when this server's leadership ends.
 */
export async function* watchInstances(
  ctx: ApiContext,
  caller: ClientIdentity,
  signal: AbortSignal,
): AsyncGenerator<InstanceEvent> {
  const term = requireReconciler(ctx);
  if (!ctx.drainNotifier) throw new UnimplementedError("this server publishes no drain notices");
  yield* tenantEventStream(
    {
      events: ctx.drainNotifier,
      tenant: caller.tenant,
      term,
      snapshot: () => drainSnapshot(ctx.db, caller.tenant),
    },
    signal,
  );
}
