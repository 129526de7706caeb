// SPDX-License-Identifier: Apache-2.0
/**
 * A FIFO limit on concurrent work (registration, file delivery, provider checks). Registration is
 * CPU-bound (certificate issuance): with every call of a storm in flight at once, all of them
 * advance in lockstep and finish together at the end. Admitting a few at a time in arrival order
 * keeps throughput and lets early callers finish early; a caller that gave up (cancelled, deadline
 * passed) while queued costs nothing.
 */

/** Runs at most `limit` tasks at once; the others wait in arrival order. */
export class ConcurrencyLimit {
  readonly #limit: number;
  #running = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new TypeError("limit must be ≥ 1");
    this.#limit = limit;
  }

  /**
   * Runs `fn` once a slot is free. When `signal` aborts while waiting, rejects with its reason
   * and `fn` never runs.
   */
  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    if (this.#running >= this.#limit) {
      await new Promise<void>((resolve, reject) => {
        const admit = () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
        const onAbort = () => {
          const i = this.#waiting.indexOf(admit);
          if (i >= 0) this.#waiting.splice(i, 1);
          reject(signal?.reason);
        };
        this.#waiting.push(admit);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    } else {
      this.#running++;
    }
    try {
      return await fn();
    } finally {
      const next = this.#waiting.shift();
      // The slot passes straight to the next waiter, so `running` stays the same.
      if (next) next();
      else this.#running--;
    }
  }

  /** Tasks running now; for tests. */
  get running(): number {
    return this.#running;
  }

  /** Tasks waiting for a slot; for tests. */
  get waiting(): number {
    return this.#waiting.length;
  }
}
