// SPDX-License-Identifier: Apache-2.0
/** WatchGroups: the tenant's groups as UPSERT events on connect, then live changes. */
import type { Db } from "../../../db/database.js";
import type { ClientIdentity } from "../../../pki/client-identity.js";
import { type GroupEvent, GroupEvent_Type } from "../../../protocol/gen/nstance/v1/operator.js";
import type { GroupChange } from "../../config-store.js";
import type { ApiContext } from "../api-context.js";
import { EventQueue } from "../event-queue.js";
import type { LatestStreamPerKey } from "../latest-stream.js";
import { toGroupStatus } from "./group-status.js";

/** The GroupEvent for a change, or `undefined` when it belongs to another tenant. */
export function toGroupEvent(db: Db, tenant: string, change: GroupChange): GroupEvent | undefined {
  if (change.type === "upsert") {
    if (change.group.tenant !== tenant) return undefined;
    return { type: GroupEvent_Type.TYPE_UPSERT, group: toGroupStatus(db, change.group) };
  }
  if (change.tenant !== tenant) return undefined;
  return {
    type: GroupEvent_Type.TYPE_DELETE,
    group: {
      key: change.key,
      tenant: change.tenant,
      template: "",
      size: 0,
      instanceType: "",
      subnetPool: "",
      vars: {},
      isStatic: false,
      etag: "",
      actualSize: 0,
      providerIds: [],
    },
  };
}

/**
 * Streams the caller tenant's groups: a snapshot (every group as UPSERT), then each change. Works
 * on standbys. A newer WatchGroups stream of the same tenant ends this one with ABORTED; a consumer
 * that falls too far behind is ended with RESOURCE_EXHAUSTED and should reconnect.
 */
export async function* watchGroups(
  ctx: ApiContext,
  caller: ClientIdentity,
  streams: LatestStreamPerKey,
  signal: AbortSignal,
): AsyncGenerator<GroupEvent> {
  const claim = streams.claim(caller.tenant, signal);
  const queue = new EventQueue<GroupEvent>();
  // Subscribe before the snapshot so no change is missed; one seen twice is harmless (UPSERT).
  const unsubscribe = ctx.configStore.subscribe((change) => {
    const event = toGroupEvent(ctx.db, caller.tenant, change);
    if (event) queue.push(event);
  });
  try {
    const snapshot = ctx.configStore
      .current()
      .effective.groups.filter((g) => g.tenant === caller.tenant);
    for (const g of snapshot) {
      yield { type: GroupEvent_Type.TYPE_UPSERT, group: toGroupStatus(ctx.db, g) };
    }
    for (;;) yield await queue.next(claim.signal);
  } finally {
    unsubscribe();
    claim.release();
  }
}
