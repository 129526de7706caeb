// SPDX-License-Identifier: Apache-2.0
/**
 * A prefix decorator: `new ScopedStorage({ storage, prefix: "shard/us-west-2a/" })` reads and
 * writes `shard/us-west-2a/<key>` and lists keys relative to the prefix, so components never
 * build shard paths themselves.
 */
import type { ObjectInfo, ObjectStorage, PutOptions, StoredObject } from "./object-storage.js";
import { validateKeyPrefix, validateObjectKey } from "./validate-object-key.js";

/** Options for {@link ScopedStorage}. */
export interface ScopedStorageOptions {
  storage: ObjectStorage;
  /** Key prefix, normally ending in `/` (`cluster/`, `shard/{shard}/`); may be empty. */
  prefix: string;
}

/** An ObjectStorage view of the keys under one prefix of another. */
export class ScopedStorage implements ObjectStorage {
  readonly description: string;
  /** The prefix this view adds to every key. */
  readonly prefix: string;
  readonly #inner: ObjectStorage;

  constructor(opts: ScopedStorageOptions) {
    if (!opts.storage) throw new TypeError("storage is required");
    validateKeyPrefix(opts.prefix);
    this.#inner = opts.storage;
    this.prefix = opts.prefix;
    this.description = `${opts.storage.description}/${opts.prefix}`.replace(/\/+$/, "/");
  }

  /** A view one level further down: `scope("instance/")` of `shard/x/` is `shard/x/instance/`. */
  scope(prefix: string): ScopedStorage {
    return new ScopedStorage({ storage: this.#inner, prefix: this.prefix + prefix });
  }

  async get(key: string, signal?: AbortSignal): Promise<StoredObject | undefined> {
    validateObjectKey(key);
    return this.#inner.get(this.prefix + key, signal);
  }

  async head(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined> {
    validateObjectKey(key);
    const info = await this.#inner.head(this.prefix + key, signal);
    return info && { ...info, key };
  }

  async put(key: string, body: Buffer | string, opts?: PutOptions): Promise<string> {
    validateObjectKey(key);
    return this.#inner.put(this.prefix + key, body, opts);
  }

  async delete(key: string, signal?: AbortSignal): Promise<void> {
    validateObjectKey(key);
    return this.#inner.delete(this.prefix + key, signal);
  }

  async list(prefix: string, signal?: AbortSignal): Promise<ObjectInfo[]> {
    const infos = await this.#inner.list(this.prefix + prefix, signal);
    return infos.map((info) => ({ ...info, key: info.key.slice(this.prefix.length) }));
  }
}
