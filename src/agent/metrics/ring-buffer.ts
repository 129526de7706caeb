// SPDX-License-Identifier: Apache-2.0
/** A fixed-capacity FIFO that overwrites its oldest entry when full. */

/** Keeps the newest `capacity` items in insertion order. */
export class RingBuffer<T> {
  readonly #items: Array<T | undefined>;
  #start = 0;
  #size = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`ring buffer capacity must be a positive integer, got ${capacity}`);
    }
    this.#items = new Array<T | undefined>(capacity);
  }

  /** Maximum number of items kept. */
  get capacity(): number {
    return this.#items.length;
  }

  /** Number of items held. */
  get size(): number {
    return this.#size;
  }

  /** Appends `item`, dropping the oldest one when full. */
  push(item: T): void {
    const cap = this.#items.length;
    if (this.#size < cap) {
      this.#items[(this.#start + this.#size) % cap] = item;
      this.#size++;
    } else {
      this.#items[this.#start] = item;
      this.#start = (this.#start + 1) % cap;
    }
  }

  /** The newest item, or undefined when empty. */
  last(): T | undefined {
    if (this.#size === 0) return undefined;
    return this.#items[(this.#start + this.#size - 1) % this.#items.length];
  }

  /** A copy of the items, oldest first. */
  toArray(): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.#size; i++) {
      out.push(this.#items[(this.#start + i) % this.#items.length] as T);
    }
    return out;
  }
}
