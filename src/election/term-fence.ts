// SPDX-License-Identifier: Apache-2.0
/**
 * Leadership-term fencing for leader-only work. Every leader-only action carries the term it was
 * started under; work whose term has moved on is dropped, and storage writes made through a guarded
 * storage check the term immediately before they are sent.
 */
import { NstanceError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { silentLogger } from "../shared/logger.js";
import type {
  ObjectInfo,
  ObjectStorage,
  PutOptions,
  StoredObject,
} from "../storage/object-storage.js";

/** What a fence asks the elector: is this term still the one we lead, and its abort signal. */
export interface TermSource {
  /** True while this server leads under `term` and its lease has not lapsed. */
  isCurrentTerm(term: number): boolean;
  /** The signal that aborts when `term` ends; `undefined` when `term` is not current. */
  termSignal(term: number): AbortSignal | undefined;
}

/** Leader-only work was refused because its leadership term has ended. */
export class StaleTermError extends NstanceError {
  readonly term: number;
  constructor(term: number, what = "leader-only work") {
    super("aborted", `${what} dropped: leadership term ${term} has ended`);
    this.term = term;
    this.name = "StaleTermError";
  }
}

/** Options for {@link TermFence}. */
export interface TermFenceOptions {
  source: TermSource;
  logger?: Logger;
}

/** Drops leader-only work whose term has moved on. */
export class TermFence {
  readonly #source: TermSource;
  readonly #logger: Logger;
  #dropped = 0;

  constructor(opts: TermFenceOptions) {
    if (!opts?.source) throw new TypeError("source is required");
    this.#source = opts.source;
    this.#logger = opts.logger ?? silentLogger;
  }

  /** Number of actions dropped because their term had ended. */
  get dropped(): number {
    return this.#dropped;
  }

  /** True while `term` is the term this server leads under. */
  isCurrentTerm(term: number): boolean {
    return this.#source.isCurrentTerm(term);
  }

  /** Throws {@link StaleTermError} unless `term` is current; call between the steps of long work. */
  assertCurrent(term: number, what?: string): void {
    if (!this.#source.isCurrentTerm(term)) throw new StaleTermError(term, what);
  }

  /**
   * Runs `fn` if `term` is current, passing the term's signal (pass it to every I/O call so the
   * work stops when the term ends). Returns `undefined` without calling `fn` when the term has
   * moved on. Errors of `fn` propagate.
   */
  async run<T>(
    term: number,
    fn: (signal: AbortSignal) => Promise<T>,
    what = "leader-only work",
  ): Promise<T | undefined> {
    const signal = this.#source.isCurrentTerm(term) ? this.#source.termSignal(term) : undefined;
    if (!signal || signal.aborted) {
      this.#dropped++;
      this.#logger.debug("Dropped work of an old leadership term", { term, work: what });
      return undefined;
    }
    return fn(signal);
  }

  /**
   * Wraps `storage` for leader-only writes under `term`: `put` and `delete` check the term right
   * before the request is sent (throwing {@link StaleTermError}) and are aborted when the term
   * ends. Reads pass through unchanged.
   */
  guardStorage(storage: ObjectStorage, term: number): ObjectStorage {
    return new TermGuardedStorage(storage, term, this);
  }

  /** The term's signal combined with `signal`; throws StaleTermError when the term is not current. */
  signalFor(term: number, signal: AbortSignal | undefined, what: string): AbortSignal {
    const termSignal = this.#source.isCurrentTerm(term) ? this.#source.termSignal(term) : undefined;
    if (!termSignal || termSignal.aborted) {
      this.#dropped++;
      throw new StaleTermError(term, what);
    }
    return signal ? AbortSignal.any([termSignal, signal]) : termSignal;
  }
}

class TermGuardedStorage implements ObjectStorage {
  readonly description: string;
  readonly #inner: ObjectStorage;
  readonly #term: number;
  readonly #fence: TermFence;

  constructor(inner: ObjectStorage, term: number, fence: TermFence) {
    this.#inner = inner;
    this.#term = term;
    this.#fence = fence;
    this.description = inner.description;
  }

  get(key: string, signal?: AbortSignal): Promise<StoredObject | undefined> {
    return this.#inner.get(key, signal);
  }

  head(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined> {
    return this.#inner.head(key, signal);
  }

  list(prefix: string, signal?: AbortSignal): Promise<ObjectInfo[]> {
    return this.#inner.list(prefix, signal);
  }

  async put(key: string, body: Buffer | string, opts: PutOptions = {}): Promise<string> {
    const signal = this.#fence.signalFor(this.#term, opts.signal, `put ${key}`);
    return this.#inner.put(key, body, { ...opts, signal });
  }

  async delete(key: string, signal?: AbortSignal): Promise<void> {
    const s = this.#fence.signalFor(this.#term, signal, `delete ${key}`);
    return this.#inner.delete(key, s);
  }
}
