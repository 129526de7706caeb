// SPDX-License-Identifier: Apache-2.0
/** A LIFO stack of stop functions: the TypeScript counterpart of Go's deferred Stop calls. */

/** Collects stop callbacks and runs them in reverse order, once. */
export class Closer {
  readonly #stack: Array<{ name: string; fn: () => Promise<void> | void }> = [];
  #closed: Promise<void> | undefined;

  /** Registers `fn` to run on close, before everything registered earlier. */
  add(name: string, fn: () => Promise<void> | void): void {
    this.#stack.push({ name, fn });
  }

  /** Runs every stop function in reverse order; failures are collected into an AggregateError. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      const errors: unknown[] = [];
      while (this.#stack.length > 0) {
        const { name, fn } = this.#stack.pop()!;
        try {
          await fn();
        } catch (err) {
          errors.push(new Error(`stop ${name}`, { cause: err }));
        }
      }
      if (errors.length > 0) throw new AggregateError(errors, "shutdown failed");
    })();
    return this.#closed;
  }
}
