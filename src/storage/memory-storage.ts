// SPDX-License-Identifier: Apache-2.0
/** An in-process object store: the backend for unit tests and `npm start` without a bucket. */
import { PreconditionFailedError } from "../shared/errors.js";
import { compareKeys } from "./compare-keys.js";
import { md5Etag, toBodyBuffer } from "./md5-etag.js";
import type { ObjectInfo, ObjectStorage, PutOptions, StoredObject } from "./object-storage.js";
import { validateKeyPrefix, validateObjectKey } from "./validate-object-key.js";

interface Entry {
  body: Buffer;
  etag: string;
  lastModified: Date;
}

/** Options for {@link MemoryStorage}. */
export interface MemoryStorageOptions {
  /** Name shown in {@link MemoryStorage.description}. Defaults to `default`. */
  name?: string;
}

/**
 * Keeps objects in a Map. Etags are the MD5 of the body, as on the file backend and S3. Bodies are
 * copied in and out, so callers cannot change stored bytes by mutating a Buffer.
 */
export class MemoryStorage implements ObjectStorage {
  readonly description: string;
  readonly #objects = new Map<string, Entry>();

  constructor(opts: MemoryStorageOptions = {}) {
    this.description = `memory:${opts.name ?? "default"}`;
  }

  async get(key: string, signal?: AbortSignal): Promise<StoredObject | undefined> {
    validateObjectKey(key);
    signal?.throwIfAborted();
    const e = this.#objects.get(key);
    if (!e) return undefined;
    return { body: Buffer.from(e.body), etag: e.etag, lastModified: new Date(e.lastModified) };
  }

  async head(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined> {
    validateObjectKey(key);
    signal?.throwIfAborted();
    const e = this.#objects.get(key);
    if (!e) return undefined;
    return { key, etag: e.etag, size: e.body.length, lastModified: new Date(e.lastModified) };
  }

  async put(key: string, body: Buffer | string, opts: PutOptions = {}): Promise<string> {
    validateObjectKey(key);
    opts.signal?.throwIfAborted();
    // Compare and write with no await in between: that is what makes this atomic.
    const current = this.#objects.get(key);
    const cond = opts.condition;
    if (cond && "ifNoneMatch" in cond && current) {
      throw new PreconditionFailedError(key, `object ${key} already exists`);
    }
    if (cond && "ifMatch" in cond && current?.etag !== cond.ifMatch) {
      throw new PreconditionFailedError(
        key,
        current
          ? `object ${key} changed (etag is not ${cond.ifMatch})`
          : `object ${key} does not exist`,
      );
    }
    const copy = Buffer.from(toBodyBuffer(body));
    const etag = md5Etag(copy);
    this.#objects.set(key, { body: copy, etag, lastModified: new Date() });
    return etag;
  }

  async delete(key: string, signal?: AbortSignal): Promise<void> {
    validateObjectKey(key);
    signal?.throwIfAborted();
    this.#objects.delete(key);
  }

  async list(prefix: string, signal?: AbortSignal): Promise<ObjectInfo[]> {
    validateKeyPrefix(prefix);
    signal?.throwIfAborted();
    const out: ObjectInfo[] = [];
    for (const [key, e] of this.#objects) {
      if (key.startsWith(prefix)) {
        out.push({
          key,
          etag: e.etag,
          size: e.body.length,
          lastModified: new Date(e.lastModified),
        });
      }
    }
    return out.sort(compareKeys);
  }
}
