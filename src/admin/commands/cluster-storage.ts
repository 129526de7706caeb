// SPDX-License-Identifier: Apache-2.0
/**
 * Flags of the cluster commands that read the bucket directly: `--storage`, `--bucket` and the
 * secrets encryption key (`--encryption-key-env NAME` or `--encryption-key-file PATH`).
 */
import type { Command } from "commander";
import { loadEncryptionKey } from "../../pki/secret-box.js";
import { formatDurationMs } from "../../shared/duration.js";
import { errorMessage, isAbortError, NstanceError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import { createStorage } from "../../storage/create-storage.js";
import type { ObjectStorage } from "../../storage/object-storage.js";
import type { AdminIo } from "../command-context.js";
import { UsageError } from "../usage-error.js";

/** Storage backends the cluster commands accept. */
export const CLUSTER_STORAGE_KINDS = ["file", "s3", "gcs"] as const;

/** The storage and key flags as commander parses them. */
export interface ClusterStorageFlags {
  storage?: string;
  bucket?: string;
  encryptionKeyEnv?: string;
  encryptionKeyFile?: string;
}

/** Adds `--storage`, `--bucket` and, unless `withKey` is false, the encryption key flags. */
export function addClusterStorageOptions(cmd: Command, withKey = true): Command {
  cmd
    .option(
      "--storage <kind>",
      `object storage of the cluster: ${CLUSTER_STORAGE_KINDS.join(", ")}`,
    )
    .option("--bucket <bucket>", "the cluster's bucket (for file: a directory)");
  if (withKey) {
    cmd
      .option(
        "--encryption-key-env <name>",
        "environment variable holding the 32-byte secrets key (raw, hex or base64)",
      )
      .option("--encryption-key-file <path>", "file holding the 32-byte secrets key");
  }
  return cmd;
}

/** True when `--storage` or `--bucket` was given. */
export function hasStorageFlags(flags: ClusterStorageFlags): boolean {
  return flags.storage !== undefined || flags.bucket !== undefined;
}

/** Opens the bucket; UsageError when a flag is missing or names an unknown backend. */
export async function openClusterStorage(
  flags: ClusterStorageFlags,
  io: AdminIo,
  logger: Logger,
): Promise<ObjectStorage> {
  if (!flags.storage || !flags.bucket) {
    throw new UsageError("--storage and --bucket are required");
  }
  if (!(CLUSTER_STORAGE_KINDS as readonly string[]).includes(flags.storage)) {
    throw new UsageError(
      `unknown --storage "${flags.storage}" (want one of ${CLUSTER_STORAGE_KINDS.join(", ")})`,
    );
  }
  try {
    return await createStorage({ kind: flags.storage, bucket: flags.bucket, logger }, io.env);
  } catch (err) {
    if (err instanceof NstanceError && err.code === "invalid_argument") {
      throw new UsageError(errorMessage(err), { cause: err });
    }
    throw err;
  }
}

/**
 * Loads the encryption key named by the flags, or `undefined` when neither is given (for
 * clusters whose secrets are stored unencrypted). UsageError for both flags, a missing variable,
 * an unreadable file or a key that is not 32 bytes; the key never appears in a message.
 */
export async function loadFlagEncryptionKey(
  flags: ClusterStorageFlags,
  io: AdminIo,
): Promise<Buffer | undefined> {
  if (flags.encryptionKeyEnv !== undefined && flags.encryptionKeyFile !== undefined) {
    throw new UsageError("--encryption-key-env and --encryption-key-file are mutually exclusive");
  }
  const source =
    flags.encryptionKeyEnv !== undefined
      ? { provider: "env" as const, source: flags.encryptionKeyEnv }
      : flags.encryptionKeyFile !== undefined
        ? { provider: "file" as const, source: flags.encryptionKeyFile }
        : undefined;
  if (!source) return undefined;
  try {
    return await loadEncryptionKey(source, io.env);
  } catch (err) {
    throw new UsageError(errorMessage(err), { cause: err });
  }
}

/**
 * Runs `fn` with a signal that aborts on the caller's signal or after `timeoutMs`; an abort by
 * the deadline becomes NstanceError `deadline_exceeded` (exit code 3).
 */
export async function withDeadline<T>(
  timeoutMs: number,
  signal: AbortSignal | undefined,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const deadline = AbortSignal.timeout(timeoutMs);
  const combined = signal ? AbortSignal.any([signal, deadline]) : deadline;
  try {
    return await fn(combined);
  } catch (err) {
    if (deadline.aborted && isAbortError(err)) {
      throw new NstanceError(
        "deadline_exceeded",
        `storage did not answer within ${formatDurationMs(timeoutMs)} (--timeout)`,
        { cause: err },
      );
    }
    throw err;
  }
}
