// SPDX-License-Identifier: Apache-2.0
/**
 * The shard servers' Operator addresses, read from their heartbeats, so that a standby's "not the
 * shard leader" refusal can name an address an operator (or `nstance-admin`) can dial. Lookups are
 * synchronous; an unknown or old entry starts a background re-read, at most once per interval.
 */
import { errorMessage } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { runInBackground } from "../../shared/run-in-background.js";
import type { ServerHeartbeat } from "../server-registry.js";
import type { Leadership } from "./api-context.js";

/** Minimum time between two re-reads of the heartbeats (one heartbeat interval). */
export const DEFAULT_OPERATOR_ADDRESS_REFRESH_MS = 5_000;

/** Where the heartbeats come from ({@link ServerRegistry}). */
export interface OperatorAddressSource {
  list(signal?: AbortSignal): Promise<Array<ServerHeartbeat & { stale: boolean }>>;
}

/** Options for {@link LeaderOperatorAddresses}. */
export interface LeaderOperatorAddressesOptions {
  source: OperatorAddressSource;
  /** Minimum time between re-reads; defaults to {@link DEFAULT_OPERATOR_ADDRESS_REFRESH_MS}. */
  refreshMs?: number;
  logger: Logger;
  /** Clock in unix ms. Defaults to `Date.now`. */
  now?: () => number;
}

/** Server ID → advertised Operator address, refreshed lazily from the heartbeats. */
export class LeaderOperatorAddresses {
  readonly #o: LeaderOperatorAddressesOptions;
  readonly #refreshMs: number;
  readonly #ctl = new AbortController();
  #byId = new Map<string, string>();
  #readAt = Number.NEGATIVE_INFINITY;
  #reading: Promise<void> | undefined;

  constructor(opts: LeaderOperatorAddressesOptions) {
    this.#o = opts;
    this.#refreshMs = opts.refreshMs ?? DEFAULT_OPERATOR_ADDRESS_REFRESH_MS;
  }

  /** The Operator address of server `id` as last read, or undefined; may start a re-read. */
  operatorOf(id: string): string | undefined {
    const addr = this.#byId.get(id);
    const now = (this.#o.now ?? Date.now)();
    if (!this.#reading && !this.#ctl.signal.aborted && now - this.#readAt >= this.#refreshMs) {
      this.#readAt = now;
      this.#reading = runInBackground(
        "operator address refresh",
        () => this.refresh(this.#ctl.signal),
        this.#o.logger,
      ).finally(() => {
        this.#reading = undefined;
      });
    }
    return addr;
  }

  /** Re-reads the live servers' heartbeats now; on a storage error the last map stays. */
  async refresh(signal?: AbortSignal): Promise<void> {
    try {
      const all = await this.#o.source.list(signal);
      const next = new Map<string, string>();
      for (const s of all) {
        const op = s.addresses?.operator;
        if (!s.stale && op) next.set(s.id, op);
      }
      this.#byId = next;
    } catch (err) {
      if (!signal?.aborted) {
        this.#o.logger.debug("Cannot read the servers' Operator addresses", {
          err: errorMessage(err),
        });
      }
    }
  }

  /** A {@link Leadership} whose leader carries its Operator address when known. */
  wrap(inner: Leadership): Leadership {
    return {
      isLeader: () => inner.isLeader(),
      leader: () => {
        const l = inner.leader();
        if (!l) return undefined;
        const operatorAddr = this.operatorOf(l.id);
        return operatorAddr ? { ...l, operatorAddr } : l;
      },
    };
  }

  /** Cancels a re-read in progress and waits for it. Idempotent. */
  async stop(): Promise<void> {
    this.#ctl.abort();
    await this.#reading;
  }
}
