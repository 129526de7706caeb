// SPDX-License-Identifier: Apache-2.0
/**
 * An ObjectStorage decorator that times and counts every operation, and remembers recent outcomes
 * for the readiness check. A lost conditional write is a `conflict` (the normal answer to a race),
 * not an error; an aborted call is neither. Behaviour is unchanged: results and errors pass through.
 */
import { errorMessage, isAbortError, PreconditionFailedError } from "../../shared/errors.js";
import type {
  ObjectInfo,
  ObjectStorage,
  PutOptions,
  StoredObject,
} from "../../storage/object-storage.js";
import { CallHealth, type CallHealthSnapshot } from "./call-health.js";
import type { ServerMetrics, StorageOutcome } from "./server-metrics.js";

/** Options for {@link MeteredStorage}. */
export interface MeteredStorageOptions {
  storage: ObjectStorage;
  metrics: Pick<ServerMetrics, "storageOperation">;
  now?: () => number;
}

/** Wraps an ObjectStorage with metrics; see the file comment. */
export class MeteredStorage implements ObjectStorage {
  readonly #s: ObjectStorage;
  readonly #metrics: MeteredStorageOptions["metrics"];
  readonly #now: () => number;
  readonly #health = new CallHealth();

  constructor(opts: MeteredStorageOptions) {
    if (!opts.storage) throw new TypeError("storage is required");
    this.#s = opts.storage;
    this.#metrics = opts.metrics;
    this.#now = opts.now ?? Date.now;
  }

  /** The wrapped backend's description. */
  get description(): string {
    return this.#s.description;
  }

  /** Recent operation outcomes, failures counted over `windowMs`. */
  health(windowMs: number): CallHealthSnapshot {
    return this.#health.snapshot(this.#now(), windowMs);
  }

  async #op<T>(operation: string, key: string, fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    let outcome: StorageOutcome = "ok";
    try {
      return await fn();
    } catch (err) {
      if (err instanceof PreconditionFailedError) outcome = "conflict";
      else if (isAbortError(err)) outcome = "aborted";
      else {
        outcome = "error";
        this.#health.failed(this.#now(), `${operation} ${key}: ${errorMessage(err)}`);
      }
      throw err;
    } finally {
      this.#metrics.storageOperation(operation, performance.now() - started, outcome);
      // A lost race proves storage answered.
      if (outcome === "ok" || outcome === "conflict") this.#health.ok(this.#now());
    }
  }

  get(key: string, signal?: AbortSignal): Promise<StoredObject | undefined> {
    return this.#op("get", key, () => this.#s.get(key, signal));
  }

  head(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined> {
    return this.#op("head", key, () => this.#s.head(key, signal));
  }

  put(key: string, body: Buffer | string, opts?: PutOptions): Promise<string> {
    return this.#op("put", key, () => this.#s.put(key, body, opts));
  }

  delete(key: string, signal?: AbortSignal): Promise<void> {
    return this.#op("delete", key, () => this.#s.delete(key, signal));
  }

  list(prefix: string, signal?: AbortSignal): Promise<ObjectInfo[]> {
    return this.#op("list", prefix, () => this.#s.list(prefix, signal));
  }
}
