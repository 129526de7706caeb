// SPDX-License-Identifier: Apache-2.0
/**
 * A bounded push→pull queue between synchronous event sources (group changes) and one streaming
 * RPC. A consumer that falls too far behind is told to reconnect rather than buffering without
 * bound: a new stream starts with a fresh snapshot, so nothing is lost.
 */
import { NstanceError } from "../../shared/errors.js";

/** Events a stream may have queued before it is ended with RESOURCE_EXHAUSTED. */
export const DEFAULT_EVENT_QUEUE_CAPACITY = 1000;

/** A FIFO of events for one consumer. */
export class EventQueue<T> {
  readonly #items: T[] = [];
  readonly #capacity: number;
  #overflowed = false;
  #wake: (() => void) | undefined;

  constructor(opts: { capacity?: number } = {}) {
    this.#capacity = opts.capacity ?? DEFAULT_EVENT_QUEUE_CAPACITY;
  }

  /** Adds an event; past capacity the queue is marked overflowed and `next()` throws. */
  push(item: T): void {
    if (this.#overflowed) return;
    if (this.#items.length >= this.#capacity) this.#overflowed = true;
    else this.#items.push(item);
    this.#wake?.();
  }

  /**
   * The next event, waiting for one. Rejects with the signal's reason on abort, and with
   * NstanceError `resource_exhausted` once the queue overflowed.
   */
  async next(signal: AbortSignal): Promise<T> {
    for (;;) {
      signal.throwIfAborted();
      if (this.#overflowed) {
        throw new NstanceError(
          "resource_exhausted",
          `the stream fell more than ${this.#capacity} events behind; reconnect for a fresh snapshot`,
        );
      }
      const item = this.#items.shift();
      if (item !== undefined) return item;
      await new Promise<void>((resolve) => {
        const done = () => {
          this.#wake = undefined;
          signal.removeEventListener("abort", done);
          resolve();
        };
        this.#wake = done;
        signal.addEventListener("abort", done, { once: true });
      });
    }
  }
}
