// SPDX-License-Identifier: Apache-2.0
/**
 * Per-tenant publish/subscribe between the reconciler and the Operator API's watch streams: the
 * reconciler publishes drain notices (WatchInstances) and failures (WatchErrors); each stream
 * subscribes for its caller's tenant and pushes into its own bounded queue. It outlives leadership
 * terms, so streams stay subscribed while one reconciler replaces another.
 */
import type { ErrorEvent, InstanceEvent } from "../protocol/gen/nstance/v1/operator.js";
import { errorMessage } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { silentLogger } from "../shared/logger.js";

/** Receives one event; called synchronously by {@link TenantEvents.publish}. */
export type TenantEventListener<T> = (event: T) => void;

/** Options for {@link TenantEvents}. */
export interface TenantEventsOptions {
  logger?: Logger;
}

/** Fans events out to the subscribers of their tenant (and to subscribers of every tenant). */
export class TenantEvents<T> {
  readonly #byTenant = new Map<string, Set<TenantEventListener<T>>>();
  readonly #all = new Set<TenantEventListener<T>>();
  readonly #logger: Logger;

  constructor(opts: TenantEventsOptions = {}) {
    this.#logger = opts.logger ?? silentLogger;
  }

  /**
   * Calls `listener` for every later event of `tenant` (`undefined`: of every tenant). Returns the
   * unsubscribe function (idempotent).
   */
  subscribe(tenant: string | undefined, listener: TenantEventListener<T>): () => void {
    if (tenant === undefined) {
      this.#all.add(listener);
      return () => {
        this.#all.delete(listener);
      };
    }
    let set = this.#byTenant.get(tenant);
    if (!set) {
      set = new Set();
      this.#byTenant.set(tenant, set);
    }
    set.add(listener);
    return () => {
      const s = this.#byTenant.get(tenant);
      s?.delete(listener);
      if (s?.size === 0) this.#byTenant.delete(tenant);
    };
  }

  /** Delivers `event` to the tenant's subscribers; a throwing subscriber does not stop the rest. */
  publish(tenant: string, event: T): void {
    for (const listener of [...(this.#byTenant.get(tenant) ?? []), ...this.#all]) {
      try {
        listener(event);
      } catch (err) {
        this.#logger.error("Event subscriber failed", { tenant, err: errorMessage(err) });
      }
    }
  }

  /** Number of subscriptions; for tests and metrics. */
  get subscriberCount(): number {
    let n = this.#all.size;
    for (const s of this.#byTenant.values()) n += s.size;
    return n;
  }
}

/** Drain notices (`InstanceEvent{status: "pending_deletion" | "deleted"}`) for WatchInstances. */
export type DrainNotifier = TenantEvents<InstanceEvent>;

/** Provider, create and delete failures and mass-failure alerts for WatchErrors. */
export type ErrorNotifier = TenantEvents<ErrorEvent>;
