// SPDX-License-Identifier: Apache-2.0
/**
 * "A newer stream replaces the older one": tracks one live stream per key (tenant) and ends the
 * previous holder when a new one claims the key (reference §3.3).
 */
import { NstanceError } from "../../shared/errors.js";

/** A claimed key: `signal` aborts when the stream is replaced or its parent signal aborts. */
export interface StreamClaim {
  signal: AbortSignal;
  /** Gives the key up, if this claim still holds it. Idempotent. */
  release(): void;
}

/** One live stream per key; a new claim aborts the previous one with NstanceError `aborted`. */
export class LatestStreamPerKey {
  readonly #holders = new Map<string, AbortController>();
  readonly #what: string;

  /** `what` names the stream kind in the replacement message, e.g. `WatchGroups`. */
  constructor(what: string) {
    this.#what = what;
  }

  /** Claims `key` for a stream whose own lifetime is `parent`. */
  claim(key: string, parent: AbortSignal): StreamClaim {
    this.#holders
      .get(key)
      ?.abort(
        new NstanceError("aborted", `replaced by a newer ${this.#what} stream of tenant ${key}`),
      );
    const ctl = new AbortController();
    this.#holders.set(key, ctl);
    const signal = AbortSignal.any([parent, ctl.signal]);
    return {
      signal,
      release: () => {
        if (this.#holders.get(key) === ctl) this.#holders.delete(key);
      },
    };
  }

  /** Number of live streams; for tests. */
  get size(): number {
    return this.#holders.size;
  }
}
