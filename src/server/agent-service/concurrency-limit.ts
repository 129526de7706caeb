// SPDX-License-Identifier: Apache-2.0
/** A counting semaphore: at most N tasks run at once, the rest wait in arrival order. */

/** Runs async tasks with bounded concurrency. */
export class ConcurrencyLimit {
  readonly #max: number;
  readonly #waiting: Array<() => void> = [];
  #running = 0;

  constructor(max: number) {
    if (!(max >= 1)) throw new TypeError("max must be at least 1");
    this.#max = max;
  }

  /** Runs `fn` once a slot is free; resolves or rejects with its outcome. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#max) {
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else {
      this.#running++;
    }
    try {
      return await fn();
    } finally {
      const next = this.#waiting.shift();
      // The slot passes straight to the next waiter, so `#running` stays the same.
      if (next) next();
      else this.#running--;
    }
  }

  /** Tasks running now. */
  get running(): number {
    return this.#running;
  }
}
