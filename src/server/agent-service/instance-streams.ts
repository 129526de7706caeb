// SPDX-License-Identifier: Apache-2.0
/**
 * Server streams addressed by instance (ReceiveFiles, ReceiveKeyRequests): only the newest stream
 * of an instance is served — opening a new one ends the old one with ABORTED — and other parts of
 * the server push messages to an instance without knowing which call carries them.
 */
import { NstanceError } from "../../shared/errors.js";
import { EventQueue } from "../api/event-queue.js";

/** Messages an instance's stream may have queued before it is ended with RESOURCE_EXHAUSTED. */
export const DEFAULT_INSTANCE_STREAM_CAPACITY = 4096;

/** An open stream's end of the registry. */
export interface InstanceStreamClaim<T> {
  /** Aborts when the stream is replaced or its own signal aborts. */
  signal: AbortSignal;
  /** The next message to send, waiting for one (rejects when `signal` aborts). */
  next(): Promise<T>;
  /** Gives the instance up, if this stream still holds it. Idempotent. */
  release(): void;
}

interface Holder<T> {
  ctl: AbortController;
  queue: EventQueue<T>;
}

/** One live stream per instance, with a message queue each. */
export class InstanceStreams<T> {
  readonly #holders = new Map<string, Holder<T>>();
  readonly #what: string;
  readonly #capacity: number;

  /** `what` names the RPC in the replacement message, e.g. `ReceiveFiles`. */
  constructor(what: string, opts: { capacity?: number } = {}) {
    this.#what = what;
    this.#capacity = opts.capacity ?? DEFAULT_INSTANCE_STREAM_CAPACITY;
  }

  /** Claims `instanceId` for a stream whose own lifetime is `parent`; the older stream ends. */
  open(instanceId: string, parent: AbortSignal): InstanceStreamClaim<T> {
    this.#holders
      .get(instanceId)
      ?.ctl.abort(
        new NstanceError("aborted", `replaced by a newer ${this.#what} stream of ${instanceId}`),
      );
    const holder: Holder<T> = {
      ctl: new AbortController(),
      queue: new EventQueue<T>({ capacity: this.#capacity }),
    };
    this.#holders.set(instanceId, holder);
    const signal = AbortSignal.any([parent, holder.ctl.signal]);
    return {
      signal,
      next: () => holder.queue.next(signal),
      release: () => {
        if (this.#holders.get(instanceId) === holder) this.#holders.delete(instanceId);
      },
    };
  }

  /** Ends every open stream with `reason` (server shutdown); later opens still work. */
  closeAll(reason: unknown): void {
    for (const holder of this.#holders.values()) holder.ctl.abort(reason);
    this.#holders.clear();
  }

  /** Queues `messages` (in order, together) on the instance's stream; false when none is open. */
  send(instanceId: string, messages: readonly T[]): boolean {
    const holder = this.#holders.get(instanceId);
    if (!holder || holder.ctl.signal.aborted) return false;
    for (const m of messages) holder.queue.push(m);
    return true;
  }

  /** True while the instance has an open stream. */
  has(instanceId: string): boolean {
    return this.#holders.has(instanceId);
  }

  /** Number of open streams. */
  get size(): number {
    return this.#holders.size;
  }
}
