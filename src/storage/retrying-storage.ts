// SPDX-License-Identifier: Apache-2.0
/**
 * A decorator that retries transient storage failures (network errors, timeouts, HTTP 5xx, 429)
 * with exponential backoff. Lost conditional writes and other permanent failures are never
 * retried. After the last attempt it throws a StorageError naming the operation and key.
 */
import type { BackoffOptions } from "../shared/backoff.js";
import { backoffDelayMs } from "../shared/backoff.js";
import { errorMessage, PreconditionFailedError, StorageError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { silentLogger } from "../shared/logger.js";
import { sleep } from "../shared/sleep.js";
import { isTransientError } from "./is-transient-error.js";
import { toBodyBuffer } from "./md5-etag.js";
import type { ObjectInfo, ObjectStorage, PutOptions, StoredObject } from "./object-storage.js";

/** Retry policy for {@link RetryingStorage}. */
export interface StorageRetryPolicy {
  /** Attempts per operation, including the first. */
  maxAttempts: number;
  /** Backoff between attempts: 100 ms, then 400 ms by default. */
  backoff: BackoffOptions;
  /** Time limit of one attempt, in ms; a timed-out attempt counts as transient. 0 = none. */
  attemptTimeoutMs: number;
}

/** Three attempts, 100 ms then 400 ms apart (±20 % jitter), 30 s per attempt. */
export const DEFAULT_STORAGE_RETRY_POLICY: StorageRetryPolicy = {
  maxAttempts: 3,
  backoff: { initialMs: 100, maxMs: 2_000, factor: 4, jitter: 0.2 },
  attemptTimeoutMs: 30_000,
};

/** Options for {@link RetryingStorage}. */
export interface RetryingStorageOptions {
  storage: ObjectStorage;
  /** Overrides fields of {@link DEFAULT_STORAGE_RETRY_POLICY}. */
  policy?: Partial<StorageRetryPolicy>;
  logger?: Logger;
  /** Injectable for tests: random source for jitter. */
  random?: () => number;
}

/** Wraps an ObjectStorage and retries its transient failures. */
export class RetryingStorage implements ObjectStorage {
  readonly description: string;
  readonly #inner: ObjectStorage;
  readonly #policy: StorageRetryPolicy;
  readonly #logger: Logger;
  readonly #random: () => number;

  constructor(opts: RetryingStorageOptions) {
    if (!opts.storage) throw new TypeError("storage is required");
    this.#inner = opts.storage;
    this.description = opts.storage.description;
    this.#policy = { ...DEFAULT_STORAGE_RETRY_POLICY, ...opts.policy };
    if (this.#policy.maxAttempts < 1) throw new TypeError("maxAttempts must be at least 1");
    this.#logger = opts.logger ?? silentLogger;
    this.#random = opts.random ?? Math.random;
  }

  get(key: string, signal?: AbortSignal): Promise<StoredObject | undefined> {
    return this.#retry("get", key, signal, (s) => this.#inner.get(key, s));
  }

  head(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined> {
    return this.#retry("head", key, signal, (s) => this.#inner.head(key, s));
  }

  /**
   * Retries a conditional write too. If an earlier attempt failed in a way that leaves its outcome
   * unknown (say the response was lost) and a retry then loses the race, the current object is
   * read: when it holds exactly our bytes, the earlier attempt won and its etag is returned.
   */
  async put(key: string, body: Buffer | string, opts: PutOptions = {}): Promise<string> {
    let ambiguous = false;
    const bytes = toBodyBuffer(body);
    try {
      return await this.#retry("put", key, opts.signal, (signal, attempt) => {
        if (attempt > 0) ambiguous = true;
        return this.#inner.put(key, bytes, { ...opts, signal });
      });
    } catch (err) {
      if (!(err instanceof PreconditionFailedError) || !ambiguous) throw err;
      const current = await this.get(key, opts.signal);
      if (current?.body.equals(bytes)) {
        this.#logger.info("Retried conditional write had already succeeded", { key });
        return current.etag;
      }
      throw err;
    }
  }

  delete(key: string, signal?: AbortSignal): Promise<void> {
    return this.#retry("delete", key, signal, (s) => this.#inner.delete(key, s));
  }

  list(prefix: string, signal?: AbortSignal): Promise<ObjectInfo[]> {
    return this.#retry("list", prefix, signal, (s) => this.#inner.list(prefix, s));
  }

  async #retry<T>(
    op: string,
    key: string,
    signal: AbortSignal | undefined,
    fn: (signal: AbortSignal | undefined, attempt: number) => Promise<T>,
  ): Promise<T> {
    const { maxAttempts, backoff, attemptTimeoutMs } = this.#policy;
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      // A referenced timer (unlike AbortSignal.timeout) keeps the process alive while it waits.
      const timeoutCtl = attemptTimeoutMs > 0 ? new AbortController() : undefined;
      const timer = timeoutCtl
        ? setTimeout(
            () => timeoutCtl.abort(new DOMException("attempt timed out", "TimeoutError")),
            attemptTimeoutMs,
          )
        : undefined;
      const timeout = timeoutCtl?.signal;
      const attemptSignal =
        signal && timeout ? AbortSignal.any([signal, timeout]) : (signal ?? timeout);
      try {
        try {
          return await fn(attemptSignal, attempt);
        } finally {
          clearTimeout(timer);
        }
      } catch (err) {
        // The caller gave up: report that, not a storage failure.
        if (signal?.aborted) throw signal.reason;
        const timedOut = timeout?.aborted === true;
        if (!timedOut && !isTransientError(err)) throw err;
        const last = attempt + 1 >= maxAttempts;
        const reason = timedOut ? `attempt timed out after ${attemptTimeoutMs}ms` : describe(err);
        if (last) {
          throw new StorageError(
            op,
            key,
            `failed after ${maxAttempts} attempt${maxAttempts === 1 ? "" : "s"}: ${reason}`,
            true,
            { cause: err },
          );
        }
        const delayMs = backoffDelayMs(attempt, backoff, this.#random);
        this.#logger.warn("Retrying storage operation", {
          op,
          key,
          attempt: attempt + 1,
          delay_ms: delayMs,
          err,
        });
        await sleep(delayMs, signal);
      }
    }
  }
}

/** The message of `err` without the `storage {op} {key}: ` prefix a StorageError already has. */
function describe(err: unknown): string {
  if (err instanceof StorageError) return err.message.replace(`storage ${err.op} ${err.key}: `, "");
  return errorMessage(err);
}
