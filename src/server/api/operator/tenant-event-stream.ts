// SPDX-License-Identifier: Apache-2.0
/**
 * The body of the leader-only watch streams (WatchInstances, WatchErrors): subscribe to the
 * caller tenant's events, send a snapshot, then live events, for as long as the client listens
 * and this server's leadership term lasts. Streams do not replace each other: every stream of a
 * tenant gets every event (an operator's controller and `nstance-admin instance drains` coexist).
 */
import type { TenantEvents } from "../../../reconcile/tenant-events.js";
import { NstanceError } from "../../../shared/errors.js";
import type { TermReconciler } from "../api-context.js";
import { EventQueue } from "../event-queue.js";

/** Options for {@link tenantEventStream}. */
export interface TenantEventStreamOptions<T> {
  events: TenantEvents<T>;
  tenant: string;
  /** The term the stream belongs to: when it ends, the stream ends with UNAVAILABLE. */
  term: TermReconciler;
  /** Events sent first; read after subscribing, so no event falls between (one may come twice). */
  snapshot?: () => readonly T[];
  /** Events a slow client may have queued; see {@link EventQueue}. */
  capacity?: number;
}

/**
 * Yields the snapshot, then each event of the tenant. Ends by throwing: the client's abort when it
 * cancels (or the server stops), NstanceError `unavailable` when the leadership term ends (the
 * client reconnects to the new leader), `resource_exhausted` when the client fell too far behind.
 */
export async function* tenantEventStream<T>(
  opts: TenantEventStreamOptions<T>,
  signal: AbortSignal,
): AsyncGenerator<T> {
  const queue = new EventQueue<T>(opts.capacity === undefined ? {} : { capacity: opts.capacity });
  const unsubscribe = opts.events.subscribe(opts.tenant, (event) => queue.push(event));
  const until = AbortSignal.any([signal, opts.term.signal]);
  try {
    for (const event of opts.snapshot?.() ?? []) yield event;
    for (;;) {
      let event: T;
      try {
        event = await queue.next(until);
      } catch (err) {
        if (!signal.aborted && opts.term.signal.aborted) {
          throw new NstanceError(
            "unavailable",
            `leadership term ${opts.term.term} of this server ended; reconnect to the shard leader`,
            { cause: err },
          );
        }
        throw err;
      }
      yield event;
    }
  } finally {
    unsubscribe();
  }
}
