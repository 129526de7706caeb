// SPDX-License-Identifier: Apache-2.0
/**
 * Builds the ObjectStorage named by `--storage` / `--bucket`. The cloud backends are loaded with
 * `await import()` only when chosen, so the agent and the admin CLI never load the cloud SDKs.
 * Every backend comes wrapped in {@link RetryingStorage}.
 */
import { NstanceError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { silentLogger } from "../shared/logger.js";
import type { ObjectStorage } from "./object-storage.js";
import type { StorageRetryPolicy } from "./retrying-storage.js";
import { RetryingStorage } from "./retrying-storage.js";

/** The storage backends, as `--storage` names them (`memory` is for tests and dev). */
export const STORAGE_KINDS = ["file", "s3", "gcs", "memory"] as const;
/** One of {@link STORAGE_KINDS}. */
export type StorageKind = (typeof STORAGE_KINDS)[number];

/** Options for {@link createStorage}. */
export interface CreateStorageOptions {
  /** Backend; a string so CLI input can be passed as is (unknown kinds are rejected). */
  kind: StorageKind | (string & {});
  /** Bucket name (s3, gcs), bucket directory (file) or a name (memory, optional). */
  bucket: string;
  /**
   * Custom endpoint URL: the S3 endpoint (else `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`) or the
   * GCS API endpoint (else `STORAGE_EMULATOR_HOST`).
   */
  endpoint?: string;
  /** S3 region; else `AWS_REGION`, `AWS_DEFAULT_REGION`, then `us-east-1`. */
  region?: string;
  /** S3 path-style addressing; else `AWS_S3_USE_PATH_STYLE=true`. */
  forcePathStyle?: boolean;
  /** GCS project; else `GOOGLE_CLOUD_PROJECT`. */
  projectId?: string;
  /** Objects per list request (s3, gcs); the service maximum by default. */
  listPageSize?: number;
  /** fsync writes (file). Defaults to true. */
  fsync?: boolean;
  /** Retry policy overrides, or `false` for no retry decorator. */
  retry?: Partial<StorageRetryPolicy> | false;
  logger?: Logger;
}

/**
 * Creates a storage backend. `env` supplies the standard AWS and GCS variables (defaults to
 * `process.env`); credentials not found there come from each SDK's default chain. Throws
 * NstanceError `invalid_argument` for an unknown kind or a missing bucket.
 */
export async function createStorage(
  opts: CreateStorageOptions,
  env: Record<string, string | undefined> = process.env,
): Promise<ObjectStorage> {
  const logger = opts.logger ?? silentLogger;
  const backend = await createBackend(opts, env, logger);
  if (opts.retry === false) return backend;
  return new RetryingStorage({
    storage: backend,
    policy: opts.retry,
    logger: logger.child({ storage: backend.description }),
  });
}

async function createBackend(
  opts: CreateStorageOptions,
  env: Record<string, string | undefined>,
  logger: Logger,
): Promise<ObjectStorage> {
  const kind = opts.kind as StorageKind;
  if (!STORAGE_KINDS.includes(kind)) {
    throw new NstanceError(
      "invalid_argument",
      `unknown storage kind ${JSON.stringify(opts.kind)} (want one of ${STORAGE_KINDS.join(", ")})`,
    );
  }
  if (!opts.bucket && kind !== "memory") {
    throw new NstanceError("invalid_argument", `a bucket is required for ${kind} storage`);
  }
  switch (kind) {
    case "memory": {
      const { MemoryStorage } = await import("./memory-storage.js");
      return new MemoryStorage({ name: opts.bucket || undefined });
    }
    case "file": {
      const { FileStorage } = await import("./file-storage.js");
      return new FileStorage({ dir: opts.bucket, fsync: opts.fsync, logger });
    }
    case "s3": {
      const { S3Storage } = await import("./s3-storage.js");
      const accessKeyId = env.AWS_ACCESS_KEY_ID;
      const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
      return new S3Storage({
        bucket: opts.bucket,
        endpoint: opts.endpoint ?? (env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined),
        region: opts.region ?? (env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined),
        forcePathStyle: opts.forcePathStyle ?? isTrue(env.AWS_S3_USE_PATH_STYLE),
        credentials:
          accessKeyId && secretAccessKey
            ? { accessKeyId, secretAccessKey, sessionToken: env.AWS_SESSION_TOKEN || undefined }
            : undefined,
        listPageSize: opts.listPageSize,
      });
    }
    case "gcs": {
      const { GcsStorage } = await import("./gcs-storage.js");
      return new GcsStorage({
        bucket: opts.bucket,
        apiEndpoint: opts.endpoint ?? withScheme(env.STORAGE_EMULATOR_HOST),
        projectId: opts.projectId ?? (env.GOOGLE_CLOUD_PROJECT || undefined),
        listPageSize: opts.listPageSize,
      });
    }
  }
}

function isTrue(v: string | undefined): boolean {
  return v !== undefined && ["true", "1", "yes"].includes(v.toLowerCase());
}

/** `STORAGE_EMULATOR_HOST` is often `host:port`; the client needs a URL. */
function withScheme(host: string | undefined): string | undefined {
  if (!host) return undefined;
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(host) ? host : `http://${host}`;
}
