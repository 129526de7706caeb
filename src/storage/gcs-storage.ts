// SPDX-License-Identifier: Apache-2.0
/**
 * The Google Cloud Storage backend. The etag is the object's generation: create-only writes send
 * `ifGenerationMatch=0`, replacements `ifGenerationMatch=<generation>`, and a 412 is a lost race.
 * Uploads are simple (non-resumable) requests, which suit small state objects and are atomic.
 */
import type { File } from "@google-cloud/storage";
import { Storage } from "@google-cloud/storage";
import { PreconditionFailedError } from "../shared/errors.js";
import { compareKeys } from "./compare-keys.js";
import { httpStatusOf, wrapStorageError } from "./is-transient-error.js";
import { toBodyBuffer } from "./md5-etag.js";
import type { ObjectInfo, ObjectStorage, PutOptions, StoredObject } from "./object-storage.js";
import { validateKeyPrefix, validateObjectKey } from "./validate-object-key.js";

/** Objects per list page (the GCS maximum). */
export const DEFAULT_GCS_LIST_PAGE_SIZE = 1000;

/** Options for {@link GcsStorage}. */
export interface GcsStorageOptions {
  bucket: string;
  /**
   * API endpoint (`http://127.0.0.1:4443` for an emulator). Defaults to the client's choice:
   * `STORAGE_EMULATOR_HOST` when set, else Google's endpoint.
   */
  apiEndpoint?: string;
  /** Project for requests that need one; object operations do not. */
  projectId?: string;
  /** Service account key file; without it Application Default Credentials are used. */
  keyFilename?: string;
  /** See {@link DEFAULT_GCS_LIST_PAGE_SIZE}. */
  listPageSize?: number;
  /** A preconfigured client; apiEndpoint, projectId and keyFilename are then ignored. */
  storage?: Storage;
}

/** Object storage in a GCS bucket, with etag = generation. */
export class GcsStorage implements ObjectStorage {
  readonly description: string;
  readonly #bucket: ReturnType<Storage["bucket"]>;
  readonly #pageSize: number;

  constructor(opts: GcsStorageOptions) {
    if (!opts.bucket) throw new TypeError("bucket is required");
    this.description = `gs://${opts.bucket}`;
    this.#pageSize = opts.listPageSize ?? DEFAULT_GCS_LIST_PAGE_SIZE;
    const storage =
      opts.storage ??
      new Storage({
        apiEndpoint: opts.apiEndpoint,
        projectId: opts.projectId,
        keyFilename: opts.keyFilename,
        // The retrying decorator owns retries, so a lost race is never hidden by a client retry.
        retryOptions: { autoRetry: false },
      });
    this.#bucket = storage.bucket(opts.bucket);
  }

  async get(key: string, signal?: AbortSignal): Promise<StoredObject | undefined> {
    validateObjectKey(key);
    signal?.throwIfAborted();
    try {
      return await readObject(this.#bucket.file(key), signal);
    } catch (err) {
      if (httpStatusOf(err) === 404) return undefined;
      throw wrapStorageError("get", key, err);
    }
  }

  async head(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined> {
    validateObjectKey(key);
    signal?.throwIfAborted();
    try {
      const [md] = await raceAbort(this.#bucket.file(key).getMetadata(), signal);
      return toInfo(key, md);
    } catch (err) {
      if (httpStatusOf(err) === 404) return undefined;
      throw wrapStorageError("head", key, err);
    }
  }

  async put(key: string, body: Buffer | string, opts: PutOptions = {}): Promise<string> {
    validateObjectKey(key);
    opts.signal?.throwIfAborted();
    const cond = opts.condition;
    let ifGenerationMatch: number | string | undefined;
    if (cond && "ifNoneMatch" in cond) ifGenerationMatch = 0;
    if (cond && "ifMatch" in cond) {
      // A generation is a decimal number; anything else cannot match (and GCS would answer 400).
      if (!/^[0-9]+$/.test(cond.ifMatch)) {
        throw new PreconditionFailedError(key, `etag ${cond.ifMatch} is not a GCS generation`);
      }
      ifGenerationMatch = cond.ifMatch;
    }
    const file = this.#bucket.file(key);
    try {
      await raceAbort(
        file.save(toBodyBuffer(body), {
          resumable: false,
          contentType: opts.contentType,
          preconditionOpts: ifGenerationMatch === undefined ? undefined : { ifGenerationMatch },
        }),
        opts.signal,
      );
    } catch (err) {
      const status = httpStatusOf(err);
      // GCS answers an ifGenerationMatch on a missing object with 412 too; 404 is defensive.
      if (cond && (status === 412 || status === 404)) {
        throw new PreconditionFailedError(key, `conditional write lost for ${key}`, {
          cause: err,
        });
      }
      throw wrapStorageError("put", key, err);
    }
    return String(file.metadata.generation);
  }

  async delete(key: string, signal?: AbortSignal): Promise<void> {
    validateObjectKey(key);
    signal?.throwIfAborted();
    try {
      await raceAbort(this.#bucket.file(key).delete({ ignoreNotFound: true }), signal);
    } catch (err) {
      if (httpStatusOf(err) === 404) return;
      throw wrapStorageError("delete", key, err);
    }
  }

  async list(prefix: string, signal?: AbortSignal): Promise<ObjectInfo[]> {
    validateKeyPrefix(prefix);
    signal?.throwIfAborted();
    const out: ObjectInfo[] = [];
    let pageToken: string | undefined;
    try {
      do {
        const [files, next] = await raceAbort(
          this.#bucket.getFiles({
            prefix: prefix === "" ? undefined : prefix,
            autoPaginate: false,
            maxResults: this.#pageSize,
            pageToken,
          }),
          signal,
        );
        for (const f of files) out.push(toInfo(f.name, f.metadata));
        pageToken = (next as { pageToken?: string } | null | undefined)?.pageToken;
      } while (pageToken);
    } catch (err) {
      throw wrapStorageError("list", prefix, err);
    }
    return out.sort(compareKeys);
  }
}

function toInfo(
  key: string,
  md: { generation?: string | number; size?: string | number; updated?: string },
): ObjectInfo {
  return {
    key,
    etag: String(md.generation ?? ""),
    size: Number(md.size ?? 0),
    lastModified: md.updated ? new Date(md.updated) : undefined,
  };
}

/**
 * Downloads an object in one request, taking the generation from the response headers so body and
 * etag always belong together. Aborting `signal` destroys the request.
 */
function readObject(file: File, signal: AbortSignal | undefined): Promise<StoredObject> {
  return new Promise<StoredObject>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let headers: Record<string, string | string[] | undefined> = {};
    const stream = file.createReadStream();
    const onAbort = (): void => {
      stream.destroy(signal?.reason as Error);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    stream.on("response", (res: { headers?: Record<string, string | string[] | undefined> }) => {
      headers = res.headers ?? {};
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", (err) => {
      signal?.removeEventListener("abort", onAbort);
      reject(err);
    });
    stream.on("end", () => {
      signal?.removeEventListener("abort", onAbort);
      const generation = headers["x-goog-generation"];
      const lastModified = headers["last-modified"];
      resolve({
        body: Buffer.concat(chunks),
        etag: String(generation ?? ""),
        lastModified: typeof lastModified === "string" ? new Date(lastModified) : undefined,
      });
    });
  });
}

/**
 * Settles with `p`, or rejects with the abort reason when `signal` aborts first. The client has
 * no cancellation for these calls, so the request itself may still complete.
 */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}
