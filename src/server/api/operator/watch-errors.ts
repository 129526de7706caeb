// SPDX-License-Identifier: Apache-2.0
/** WatchErrors: provider, create and delete failures of the caller's tenant. */
import type { ClientIdentity } from "../../../pki/client-identity.js";
import type { ErrorEvent } from "../../../protocol/gen/nstance/v1/operator.js";
import type { ApiContext } from "../api-context.js";
import { UnimplementedError } from "../handler.js";
import { requireReconciler } from "./require-reconciler.js";
import { tenantEventStream } from "./tenant-event-stream.js";

/**
 * Streams the caller tenant's failures as they happen on the shard leader: failed creates and
 * deletes (with the retry the reconciler will make, or that it gave up) and mass-failure alerts.
 * No snapshot: past failures are in each instance's history. Leader only, like WatchInstances.
 */
export async function* watchErrors(
  ctx: ApiContext,
  caller: ClientIdentity,
  signal: AbortSignal,
): AsyncGenerator<ErrorEvent> {
  const term = requireReconciler(ctx);
  if (!ctx.errorNotifier) throw new UnimplementedError("this server publishes no error events");
  yield* tenantEventStream({ events: ctx.errorNotifier, tenant: caller.tenant, term }, signal);
}
