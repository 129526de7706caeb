// SPDX-License-Identifier: Apache-2.0
/**
 * The object storage contract. All durable state lives behind this interface (file, S3, GCS), so a
 * shard can be rebuilt from its bucket. Reads return `undefined` for a missing object; a lost
 * conditional write throws {@link PreconditionFailedError}; other failures throw StorageError.
 */

/** An object read from storage. */
export interface StoredObject {
  body: Buffer;
  /** Opaque version token used for conditional writes (S3 ETag, GCS generation, file md5). */
  etag: string;
  /** Last modification time, when the backend knows it. */
  lastModified?: Date;
}

/** Metadata of an object, without its body. */
export interface ObjectInfo {
  key: string;
  etag: string;
  size: number;
  lastModified?: Date;
}

/** Condition for {@link ObjectStorage.put}. */
export type PutCondition =
  /** Write only if no object exists at the key. */
  | { ifNoneMatch: "*" }
  /** Write only if the current object has this etag. */
  | { ifMatch: string };

/** Options for {@link ObjectStorage.put}. */
export interface PutOptions {
  condition?: PutCondition;
  contentType?: string;
  signal?: AbortSignal;
}

/** A key/value object store with compare-and-swap writes. Keys are `/`-separated paths. */
export interface ObjectStorage {
  /** Human-readable description for logs (`file:/data/bucket`, `s3://bucket`). */
  readonly description: string;
  /** Reads an object; `undefined` when it does not exist. */
  get(key: string, signal?: AbortSignal): Promise<StoredObject | undefined>;
  /** Reads an object's metadata; `undefined` when it does not exist. */
  head(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined>;
  /**
   * Writes an object and returns its new etag. With a condition, throws
   * PreconditionFailedError when the condition does not hold (a lost race).
   */
  put(key: string, body: Buffer | string, opts?: PutOptions): Promise<string>;
  /** Deletes an object; deleting a missing object succeeds. */
  delete(key: string, signal?: AbortSignal): Promise<void>;
  /** Lists objects whose key starts with `prefix`, sorted by key. */
  list(prefix: string, signal?: AbortSignal): Promise<ObjectInfo[]>;
}
