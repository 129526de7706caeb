// SPDX-License-Identifier: Apache-2.0
/**
 * The S3 backend (AWS or any S3-compatible store with conditional writes). Create-only writes send
 * `If-None-Match: *`, replacements `If-Match: <etag>`; a 412, or a 409 ConditionalRequestConflict
 * (S3's answer to two conditional writes racing), is a lost race. Etags are returned without quotes.
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { PreconditionFailedError } from "../shared/errors.js";
import { compareKeys } from "./compare-keys.js";
import { httpStatusOf, wrapStorageError } from "./is-transient-error.js";
import { toBodyBuffer } from "./md5-etag.js";
import type { ObjectInfo, ObjectStorage, PutOptions, StoredObject } from "./object-storage.js";
import { validateKeyPrefix, validateObjectKey } from "./validate-object-key.js";

/** Region used when neither the options nor the environment name one. */
export const DEFAULT_S3_REGION = "us-east-1";
/** Keys per ListObjectsV2 page (the S3 maximum). */
export const DEFAULT_S3_LIST_PAGE_SIZE = 1000;
/**
 * Attempts the SDK makes per call. One, because the retrying decorator owns retries (with the
 * etag check that makes a retried conditional write safe to report).
 */
export const DEFAULT_S3_SDK_MAX_ATTEMPTS = 1;

/** Static credentials; without them the SDK's default chain (env, profile, IMDS…) is used. */
export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Options for {@link S3Storage}. */
export interface S3StorageOptions {
  bucket: string;
  /** Defaults to {@link DEFAULT_S3_REGION}. */
  region?: string;
  /** Custom endpoint URL (MinIO, s3rver, …); AWS by default. */
  endpoint?: string;
  /** Address buckets as `endpoint/bucket` instead of `bucket.endpoint`. Defaults to false. */
  forcePathStyle?: boolean;
  credentials?: S3Credentials;
  /** See {@link DEFAULT_S3_LIST_PAGE_SIZE}. */
  listPageSize?: number;
  /** See {@link DEFAULT_S3_SDK_MAX_ATTEMPTS}. */
  sdkMaxAttempts?: number;
  /** A preconfigured client; the endpoint, region and credential options are then ignored. */
  client?: S3Client;
}

/** Removes the quotes S3 puts around etags (`"abc"` → `abc`, `W/"abc"` → `abc`). */
export function unquoteEtag(etag: string): string {
  return etag.replace(/^W\//, "").replace(/^"(.*)"$/, "$1");
}

function isNotFound(err: unknown): boolean {
  const name = (err as { name?: unknown }).name;
  return name === "NoSuchKey" || name === "NotFound" || httpStatusOf(err) === 404;
}

/** Object storage in an S3 bucket. */
export class S3Storage implements ObjectStorage {
  readonly description: string;
  readonly #bucket: string;
  readonly #client: S3Client;
  readonly #pageSize: number;

  constructor(opts: S3StorageOptions) {
    if (!opts.bucket) throw new TypeError("bucket is required");
    this.#bucket = opts.bucket;
    this.description = `s3://${opts.bucket}`;
    this.#pageSize = opts.listPageSize ?? DEFAULT_S3_LIST_PAGE_SIZE;
    this.#client =
      opts.client ??
      new S3Client({
        region: opts.region ?? DEFAULT_S3_REGION,
        endpoint: opts.endpoint,
        forcePathStyle: opts.forcePathStyle ?? false,
        credentials: opts.credentials,
        maxAttempts: opts.sdkMaxAttempts ?? DEFAULT_S3_SDK_MAX_ATTEMPTS,
        // Follow a 301 to the bucket's real region instead of failing on a wrong AWS_REGION.
        followRegionRedirects: true,
      });
  }

  async get(key: string, signal?: AbortSignal): Promise<StoredObject | undefined> {
    validateObjectKey(key);
    try {
      const out = await this.#client.send(
        new GetObjectCommand({ Bucket: this.#bucket, Key: key }),
        { abortSignal: signal },
      );
      const bytes = out.Body ? await out.Body.transformToByteArray() : new Uint8Array();
      return {
        body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
        etag: unquoteEtag(out.ETag ?? ""),
        lastModified: out.LastModified,
      };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw wrapStorageError("get", key, err);
    }
  }

  async head(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined> {
    validateObjectKey(key);
    try {
      const out = await this.#client.send(
        new HeadObjectCommand({ Bucket: this.#bucket, Key: key }),
        { abortSignal: signal },
      );
      return {
        key,
        etag: unquoteEtag(out.ETag ?? ""),
        size: out.ContentLength ?? 0,
        lastModified: out.LastModified,
      };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw wrapStorageError("head", key, err);
    }
  }

  async put(key: string, body: Buffer | string, opts: PutOptions = {}): Promise<string> {
    validateObjectKey(key);
    const cond = opts.condition;
    try {
      const out = await this.#client.send(
        new PutObjectCommand({
          Bucket: this.#bucket,
          Key: key,
          Body: toBodyBuffer(body),
          ContentType: opts.contentType,
          IfNoneMatch: cond && "ifNoneMatch" in cond ? "*" : undefined,
          IfMatch: cond && "ifMatch" in cond ? `"${cond.ifMatch}"` : undefined,
        }),
        { abortSignal: opts.signal },
      );
      return unquoteEtag(out.ETag ?? "");
    } catch (err) {
      const status = httpStatusOf(err);
      const name = (err as { name?: unknown }).name;
      // A 404 answers If-Match on a missing object; a 409 means a concurrent conditional write won.
      if (
        cond &&
        (status === 412 ||
          name === "PreconditionFailed" ||
          status === 409 ||
          name === "ConditionalRequestConflict" ||
          ("ifMatch" in cond && isNotFound(err)))
      ) {
        throw new PreconditionFailedError(key, `conditional write lost for ${key}`, {
          cause: err,
        });
      }
      throw wrapStorageError("put", key, err);
    }
  }

  async delete(key: string, signal?: AbortSignal): Promise<void> {
    validateObjectKey(key);
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: key }), {
        abortSignal: signal,
      });
    } catch (err) {
      if (isNotFound(err)) return;
      throw wrapStorageError("delete", key, err);
    }
  }

  async list(prefix: string, signal?: AbortSignal): Promise<ObjectInfo[]> {
    validateKeyPrefix(prefix);
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    try {
      do {
        const page = await this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.#bucket,
            Prefix: prefix === "" ? undefined : prefix,
            ContinuationToken: token,
            MaxKeys: this.#pageSize,
          }),
          { abortSignal: signal },
        );
        for (const o of page.Contents ?? []) {
          if (o.Key === undefined) continue;
          out.push({
            key: o.Key,
            etag: unquoteEtag(o.ETag ?? ""),
            size: o.Size ?? 0,
            lastModified: o.LastModified,
          });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    } catch (err) {
      throw wrapStorageError("list", prefix, err);
    }
    return out.sort(compareKeys);
  }

  /** Releases the client's sockets. */
  destroy(): void {
    this.#client.destroy();
  }
}
