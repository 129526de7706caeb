// SPDX-License-Identifier: Apache-2.0
/** In-process mutual exclusion per key, so concurrent writers in one process queue instead of spin. */

/** A FIFO async mutex per string key; idle keys hold no memory. */
export class KeyMutex {
  readonly #tails = new Map<string, Promise<void>>();

  /**
   * Runs `fn` once every earlier holder of `key` has finished and returns its result. When `signal`
   * aborts while waiting, rejects with its reason and `fn` never runs; later waiters keep their turn.
   */
  async run<T>(key: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const current = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => current);
    this.#tails.set(key, tail);
    // Forget the key only once the last holder is done: a waiter that gave up (aborted) releases
    // its turn early, but the holder before it may still be running.
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    try {
      await waitOrAbort(previous, signal);
      return await fn();
    } finally {
      release();
    }
  }

  /** Number of keys with a holder or waiters; for tests. */
  get size(): number {
    return this.#tails.size;
  }
}

function waitOrAbort(p: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return p;
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}
