// SPDX-License-Identifier: Apache-2.0
/**
 * The local-directory backend: the bucket is a directory and a key is a relative path in it.
 * Writes go to a temp file in the target's directory, are fsynced and renamed into place, so a
 * crash (even kill -9) leaves the old object or the new one, never a mix. Every write and delete
 * holds a per-key lock in `{dir}.locks/` that other processes respect, so conditional writes are
 * safe across processes on one host.
 */
import { randomBytes } from "node:crypto";
import type { Dirent } from "node:fs";
import { link, mkdir, open, readdir, rename, rmdir, unlink } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import { PreconditionFailedError, StorageError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { silentLogger } from "../shared/logger.js";
import { compareKeys } from "./compare-keys.js";
import { FileKeyLock } from "./file-key-lock.js";
import { wrapStorageError } from "./is-transient-error.js";
import { md5Etag, toBodyBuffer } from "./md5-etag.js";
import type { ObjectInfo, ObjectStorage, PutOptions, StoredObject } from "./object-storage.js";
import { TEMP_FILE_PREFIX, validateKeyPrefix, validateObjectKey } from "./validate-object-key.js";

/** Permissions of object files: objects can hold keys and secrets, so owner only. */
export const DEFAULT_FILE_MODE = 0o600;
/** Permissions of directories the backend creates. */
export const DEFAULT_DIR_MODE = 0o700;
/** Files list() reads at the same time to compute etags. */
const LIST_READ_CONCURRENCY = 8;
/** Attempts at a write whose directory another writer's delete pruned meanwhile. */
const WRITE_DIR_RACE_ATTEMPTS = 5;

/** Options for {@link FileStorage}. */
export interface FileStorageOptions {
  /** The bucket directory; created on the first write. */
  dir: string;
  /** fsync files and directories on write. Defaults to true; tests may turn it off for speed. */
  fsync?: boolean;
  /** Age after which another process's lock is broken, in ms. See DEFAULT_LOCK_STALE_MS. */
  lockStaleMs?: number;
  /** How long a write waits for a busy key lock, in ms. See DEFAULT_LOCK_TIMEOUT_MS. */
  lockTimeoutMs?: number;
  /** See {@link DEFAULT_FILE_MODE}. */
  fileMode?: number;
  /** See {@link DEFAULT_DIR_MODE}. */
  dirMode?: number;
  logger?: Logger;
}

/** Object storage in a local directory, with etag = MD5 hex of the content. */
export class FileStorage implements ObjectStorage {
  readonly description: string;
  readonly #root: string;
  readonly #fsync: boolean;
  readonly #fileMode: number;
  readonly #dirMode: number;
  readonly #locks: FileKeyLock;

  constructor(opts: FileStorageOptions) {
    if (!opts.dir) throw new TypeError("dir is required");
    this.#root = resolve(opts.dir);
    this.description = `file:${this.#root}`;
    this.#fsync = opts.fsync ?? true;
    this.#fileMode = opts.fileMode ?? DEFAULT_FILE_MODE;
    this.#dirMode = opts.dirMode ?? DEFAULT_DIR_MODE;
    this.#locks = new FileKeyLock({
      dir: `${this.#root}.locks`,
      staleMs: opts.lockStaleMs,
      timeoutMs: opts.lockTimeoutMs,
      logger: opts.logger ?? silentLogger,
    });
  }

  /** Absolute path of the bucket directory. */
  get dir(): string {
    return this.#root;
  }

  async get(key: string, signal?: AbortSignal): Promise<StoredObject | undefined> {
    validateObjectKey(key);
    signal?.throwIfAborted();
    try {
      const r = await this.#read(key);
      return r && { body: r.body, etag: md5Etag(r.body), lastModified: r.mtime };
    } catch (err) {
      throw wrapStorageError("get", key, err);
    }
  }

  async head(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined> {
    validateObjectKey(key);
    signal?.throwIfAborted();
    try {
      const r = await this.#read(key);
      return r && { key, etag: md5Etag(r.body), size: r.body.length, lastModified: r.mtime };
    } catch (err) {
      throw wrapStorageError("head", key, err);
    }
  }

  async put(key: string, body: Buffer | string, opts: PutOptions = {}): Promise<string> {
    validateObjectKey(key);
    const bytes = toBodyBuffer(body);
    const etag = md5Etag(bytes);
    const cond = opts.condition;
    try {
      await this.#locks.run(
        key,
        async () => {
          if (cond && "ifMatch" in cond) {
            const current = await this.#read(key);
            if (!current) throw new PreconditionFailedError(key, `object ${key} does not exist`);
            if (md5Etag(current.body) !== cond.ifMatch) {
              throw new PreconditionFailedError(
                key,
                `object ${key} changed (etag is not ${cond.ifMatch})`,
              );
            }
          }
          await this.#writeAtomic(key, bytes, cond !== undefined && "ifNoneMatch" in cond);
        },
        opts.signal,
      );
    } catch (err) {
      throw wrapStorageError("put", key, err);
    }
    return etag;
  }

  async delete(key: string, signal?: AbortSignal): Promise<void> {
    validateObjectKey(key);
    try {
      await this.#locks.run(
        key,
        async () => {
          try {
            await unlink(this.#pathOf(key));
          } catch (err) {
            const code = (err as NodeJS.ErrnoException).code;
            // Missing, or the key names a directory of other keys: either way no such object.
            if (code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR" || code === "EPERM") {
              return;
            }
            throw err;
          }
          await this.#pruneEmptyDirs(dirname(this.#pathOf(key)));
        },
        signal,
      );
    } catch (err) {
      throw wrapStorageError("delete", key, err);
    }
  }

  async list(prefix: string, signal?: AbortSignal): Promise<ObjectInfo[]> {
    validateKeyPrefix(prefix);
    signal?.throwIfAborted();
    const slash = prefix.lastIndexOf("/");
    const baseKey = slash >= 0 ? prefix.slice(0, slash + 1) : "";
    const keys: string[] = [];
    try {
      await this.#walk(baseKey, prefix, keys, signal);
      const infos: ObjectInfo[] = [];
      for (let i = 0; i < keys.length; i += LIST_READ_CONCURRENCY) {
        signal?.throwIfAborted();
        const batch = await Promise.all(
          keys.slice(i, i + LIST_READ_CONCURRENCY).map(async (key) => {
            const r = await this.#read(key);
            // Deleted since the directory was read: not part of the listing.
            return r && { key, etag: md5Etag(r.body), size: r.body.length, lastModified: r.mtime };
          }),
        );
        for (const info of batch) if (info) infos.push(info);
      }
      return infos.sort(compareKeys);
    } catch (err) {
      throw wrapStorageError("list", prefix, err);
    }
  }

  #pathOf(key: string): string {
    return join(this.#root, ...key.split("/"));
  }

  /** Reads the object at `key`, or `undefined`; body and mtime come from one open file. */
  async #read(key: string): Promise<{ body: Buffer; mtime: Date } | undefined> {
    let fh: Awaited<ReturnType<typeof open>>;
    try {
      fh = await open(this.#pathOf(key), "r");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return undefined;
      throw err;
    }
    try {
      const st = await fh.stat();
      // A directory holding longer keys (`a/` when `a/b` exists) is not an object.
      if (!st.isFile()) return undefined;
      return { body: await fh.readFile(), mtime: st.mtime };
    } finally {
      await fh.close();
    }
  }

  /**
   * Writes via temp file + fsync + rename. Create-only writes use link(), which refuses to
   * replace an existing file, so even a lock broken by mistake cannot clobber an object.
   */
  async #writeAtomic(key: string, body: Buffer, createOnly: boolean): Promise<void> {
    const target = this.#pathOf(key);
    const dir = dirname(target);
    for (let attempt = 1; ; attempt++) {
      const tmp = join(dir, `${TEMP_FILE_PREFIX}${process.pid}-${randomBytes(6).toString("hex")}`);
      try {
        await mkdir(dir, { recursive: true, mode: this.#dirMode });
        await this.#writeTemp(tmp, body);
      } catch (err) {
        await unlink(tmp).catch(() => undefined);
        const code = (err as NodeJS.ErrnoException).code;
        // A delete of the last object in `dir` pruned it between our mkdir and open: try again.
        if (code === "ENOENT" && attempt < WRITE_DIR_RACE_ATTEMPTS) continue;
        if (code === "ENOTDIR" || code === "EEXIST") throw this.#conflict(key, err);
        throw err;
      }
      try {
        await this.#commit(key, tmp, target, createOnly);
      } finally {
        await unlink(tmp).catch(() => undefined);
      }
      if (this.#fsync) await this.#syncDir(dir);
      return;
    }
  }

  async #writeTemp(tmp: string, body: Buffer): Promise<void> {
    const fh = await open(tmp, "wx", this.#fileMode);
    try {
      await fh.writeFile(body);
      if (this.#fsync) await fh.sync();
    } finally {
      await fh.close();
    }
  }

  async #commit(key: string, tmp: string, target: string, createOnly: boolean): Promise<void> {
    if (createOnly) {
      try {
        await link(tmp, target);
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "EEXIST") {
          const isObject = await this.#read(key).then((r) => r !== undefined);
          if (isObject) throw new PreconditionFailedError(key, `object ${key} already exists`);
          throw this.#conflict(key, err);
        }
        // No hard links here (some network and FUSE file systems): the lock and the existence
        // check below have to do.
        if (code !== "EPERM" && code !== "ENOTSUP" && code !== "ENOSYS") throw err;
      }
      if (await this.#read(key))
        throw new PreconditionFailedError(key, `object ${key} already exists`);
    }
    try {
      await rename(tmp, target);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EISDIR" || code === "ENOTDIR") throw this.#conflict(key, err);
      throw err;
    }
  }

  #conflict(key: string, cause: unknown): StorageError {
    return new StorageError(
      "put",
      key,
      "key conflicts with a directory of other keys (a file backend cannot hold both `a` and `a/b`)",
      false,
      { cause },
    );
  }

  async #syncDir(dir: string): Promise<void> {
    const fh = await open(dir, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  /** Removes directories left empty by a delete, up to (not including) the bucket directory. */
  async #pruneEmptyDirs(dir: string): Promise<void> {
    let current = dir;
    while (current.startsWith(this.#root + sep)) {
      try {
        await rmdir(current);
      } catch {
        // Not empty (another key, or a writer's temp file), or already gone: stop here.
        return;
      }
      current = dirname(current);
    }
  }

  async #walk(
    dirKey: string,
    prefix: string,
    out: string[],
    signal: AbortSignal | undefined,
  ): Promise<void> {
    signal?.throwIfAborted();
    let entries: Dirent[];
    try {
      entries = await readdir(dirKey === "" ? this.#root : this.#pathOf(dirKey.slice(0, -1)), {
        withFileTypes: true,
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return;
      throw err;
    }
    for (const e of entries) {
      if (e.name.startsWith(TEMP_FILE_PREFIX)) continue;
      const key = dirKey + e.name;
      if (e.isDirectory()) {
        const sub = `${key}/`;
        // Descend only where keys can still start with the prefix.
        if (sub.startsWith(prefix) || prefix.startsWith(sub)) {
          await this.#walk(sub, prefix, out, signal);
        }
      } else if (e.isFile() && key.startsWith(prefix)) {
        out.push(key);
      }
    }
  }
}
