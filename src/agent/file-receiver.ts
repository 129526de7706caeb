// SPDX-License-Identifier: Apache-2.0
/**
 * Applies file patches from the server to the recv directory, all or nothing.
 *
 * Every file is validated first; one bad file rejects the whole patch, and each bad file's reason
 * goes to `recv/errors/<name>` for the next health report. A valid patch is staged in a hidden
 * directory inside recv (same filesystem, so renames are atomic), fsynced, and marked committed
 * with a journal; only then are the files renamed into place, error files removed, the config hash
 * recorded and `write-files.last` stamped. A crash before the commit mark leaves nothing behind
 * (the stage is discarded on recovery); a crash after it is rolled forward on recovery. No reader
 * ever sees a partially written file.
 */
import { lstat, mkdir, mkdtemp, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { errorMessage, NstanceError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { DEFAULT_RECV_FILE_MODE } from "./agent-config.js";
import {
  isNodeError,
  removeIfExists,
  syncDir,
  writeFileAtomic,
  writeNewFileSynced,
} from "./atomic-write.js";
import {
  checkReceivedFileContent,
  checkReceivedFileName,
  ERRORS_DIR,
  WRITE_FILES_LAST,
} from "./received-file-validation.js";

/** Mode of directories the receiver creates (recv, recv/errors). */
export const RECV_DIR_MODE = 0o750;
/** Name prefix of staging directories inside recv (hidden by the leading dot). */
export const STAGING_PREFIX = ".patch-";
/** Journal file inside a staging directory; its presence means "committed, roll forward". */
const COMMIT_FILE = ".commit";

/** One file of a patch. */
export interface PatchFile {
  /** Plain base name inside the recv dir. */
  filename: string;
  content: Uint8Array | string;
  /** Modification time to give the file; defaults to the time of writing. */
  lastModified?: Date;
}

/** A set of files that must be applied together, and the runtime config hash they bring. */
export interface FilePatch {
  files: readonly PatchFile[];
  /** Written to `identity/config.hash` once every file is in place. */
  configHash: string;
}

/** Outcome of {@link FileReceiver.apply}. */
export type FilePatchResult =
  | { applied: true; files: string[]; completedAtMs: number }
  | {
      applied: false;
      /** One line for logs and the health report's `patch_error`. */
      reason: string;
      /** Reason per offending file name (names that could not be written included). */
      errors: Map<string, string>;
    };

/** The one identity operation the receiver needs (IdentityDir provides it). */
export interface ConfigHashWriter {
  writeConfigHash(hash: string): Promise<void>;
}

/** Options for {@link FileReceiver}. */
export interface FileReceiverOptions {
  /** Absolute path of the recv dir (`NSTANCE_RECV_DIR`). */
  recvDir: string;
  /** Where the patch's config hash is recorded. */
  identity: ConfigHashWriter;
  /** Mode of received files, error files and `write-files.last`. Defaults to 0640. */
  fileMode?: number;
  logger: Logger;
  /** Clock in ms for `write-files.last`; defaults to `Date.now`. */
  now?: () => number;
}

interface CommitRecord {
  config_hash: string;
  files: string[];
}

/** Validates and applies file patches; patches are applied one at a time. */
export class FileReceiver {
  readonly #recvDir: string;
  readonly #identity: ConfigHashWriter;
  readonly #fileMode: number;
  readonly #logger: Logger;
  readonly #now: () => number;
  #queue: Promise<unknown> = Promise.resolve();
  #lastPatchError: string | undefined;

  constructor(opts: FileReceiverOptions) {
    if (!opts.recvDir) throw new TypeError("recvDir is required");
    if (!opts.identity) throw new TypeError("identity is required");
    if (!opts.logger) throw new TypeError("logger is required");
    this.#recvDir = opts.recvDir;
    this.#identity = opts.identity;
    this.#fileMode = opts.fileMode ?? DEFAULT_RECV_FILE_MODE;
    this.#logger = opts.logger;
    this.#now = opts.now ?? Date.now;
  }

  /** Why the last patch was rejected; undefined when it applied (or none arrived yet). */
  get lastPatchError(): string | undefined {
    return this.#lastPatchError;
  }

  /**
   * Finishes or discards patches interrupted by a crash: committed stages are rolled forward,
   * uncommitted ones and stray temporary files are removed. Also run before every patch.
   */
  recover(): Promise<void> {
    return this.#serial(() => this.#recover());
  }

  /**
   * Validates `patch` and applies it whole, or rejects it whole. Resolves with the outcome for
   * validation failures; throws only on I/O errors (after which {@link recover} cleans up). An
   * abort before the commit point leaves the recv dir untouched; after it, the patch completes.
   */
  apply(patch: FilePatch, signal?: AbortSignal): Promise<FilePatchResult> {
    return this.#serial(async () => {
      const result = await this.#apply(patch, signal);
      this.#lastPatchError = result.applied ? undefined : result.reason;
      return result;
    });
  }

  async #apply(patch: FilePatch, signal?: AbortSignal): Promise<FilePatchResult> {
    signal?.throwIfAborted();
    const errors = new Map<string, string>();
    const writableErrors = new Map<string, string>();
    // As IdentityDir stores it: a hash that would not read back as sent is refused up front.
    const hash = patch.configHash;
    if (hash.trim() === "" || hash.trim() !== hash || /[\r\n]/.test(hash)) {
      errors.set("", "config hash must be one non-empty line without surrounding spaces");
    }
    const seen = new Set<string>();
    const files: Array<{ name: string; content: Uint8Array; mtime: Date | undefined }> = [];
    for (const f of patch.files) {
      const nameProblem = checkReceivedFileName(f.filename);
      if (nameProblem) {
        errors.set(f.filename, nameProblem);
        continue;
      }
      if (seen.has(f.filename)) {
        errors.set(f.filename, "file appears twice in the patch");
        continue;
      }
      seen.add(f.filename);
      const content = typeof f.content === "string" ? Buffer.from(f.content, "utf8") : f.content;
      const contentProblem = checkReceivedFileContent(f.filename, content);
      if (contentProblem) {
        errors.set(f.filename, contentProblem);
        writableErrors.set(f.filename, contentProblem);
      }
      files.push({ name: f.filename, content, mtime: f.lastModified });
    }

    for (const f of files) {
      if (errors.has(f.name)) continue;
      const st = await lstat(join(this.#recvDir, f.name)).catch((err: unknown) => {
        if (isNodeError(err, "ENOENT") || isNodeError(err, "ENOTDIR")) return undefined;
        throw err;
      });
      if (st?.isDirectory()) {
        errors.set(f.name, "a directory of that name exists in the recv dir");
      }
    }

    if (errors.size > 0) {
      const reason = `patch rejected: ${[...errors].map(([n, r]) => `${n === "" ? "config hash" : JSON.stringify(n)}: ${r}`).join("; ")}`;
      this.#logger.warn("Rejected file patch", {
        files: files.length,
        invalid: [...errors.keys()],
        reason,
      });
      await this.#writeErrorFiles(writableErrors);
      return { applied: false, reason, errors };
    }

    await this.#recover();
    await mkdir(this.#recvDir, { recursive: true, mode: RECV_DIR_MODE });
    const stage = await mkdtemp(join(this.#recvDir, STAGING_PREFIX));
    let committed = false;
    try {
      // In parallel, so the fsyncs overlap: it matters for patches of many small files.
      // allSettled, not all: every write must have finished before a failure removes the stage.
      const writes = await Promise.allSettled(
        files.map((f) =>
          writeNewFileSynced(join(stage, f.name), f.content, this.#fileMode, f.mtime),
        ),
      );
      const failed = writes.find((w) => w.status === "rejected");
      if (failed) throw failed.reason;
      signal?.throwIfAborted();
      const record: CommitRecord = {
        config_hash: patch.configHash,
        files: files.map((f) => f.name),
      };
      await writeFileAtomic(join(stage, COMMIT_FILE), JSON.stringify(record), { mode: 0o600 });
      committed = true;
    } finally {
      if (!committed) await rm(stage, { recursive: true, force: true });
    }
    const completedAtMs = await this.#rollForward(stage, {
      config_hash: patch.configHash,
      files: files.map((f) => f.name),
    });
    this.#logger.info("Applied file patch", {
      files: files.map((f) => f.name),
      config_hash: patch.configHash,
      completed_at: completedAtMs,
    });
    return { applied: true, files: files.map((f) => f.name), completedAtMs };
  }

  /** Moves a committed stage's files into place and records the patch; returns the completion time. */
  async #rollForward(stage: string, record: CommitRecord): Promise<number> {
    for (const name of record.files) {
      try {
        await rename(join(stage, name), join(this.#recvDir, name));
      } catch (err) {
        // Already moved by an earlier, interrupted roll-forward.
        if (!isNodeError(err, "ENOENT")) throw err;
      }
    }
    await syncDir(this.#recvDir);
    for (const name of record.files) await removeIfExists(join(this.#recvDir, ERRORS_DIR, name));
    await this.#identity.writeConfigHash(record.config_hash);
    const completedAtMs = this.#now();
    await writeFileAtomic(join(this.#recvDir, WRITE_FILES_LAST), String(completedAtMs), {
      mode: this.#fileMode,
    });
    await rm(stage, { recursive: true, force: true });
    return completedAtMs;
  }

  async #recover(): Promise<void> {
    let entries: string[];
    try {
      entries = await readdir(this.#recvDir);
    } catch (err) {
      if (isNodeError(err, "ENOENT")) return;
      throw err;
    }
    for (const name of entries) {
      const path = join(this.#recvDir, name);
      if (name.startsWith(STAGING_PREFIX)) {
        const record = await readCommit(path);
        if (record === undefined) {
          await rm(path, { recursive: true, force: true });
          this.#logger.info("Discarded an uncommitted file patch", { stage: name });
          continue;
        }
        try {
          await this.#rollForward(path, record);
          this.#logger.info("Completed an interrupted file patch", { files: record.files });
        } catch (err) {
          // Keeping a stage that cannot be finished would block every later patch; the server
          // resends because config.hash did not move.
          this.#logger.error("Cannot complete an interrupted file patch; discarding it", {
            files: record.files,
            err: errorMessage(err),
          });
          await rm(path, { recursive: true, force: true });
        }
      } else if (/^\..+\.[0-9a-f]{12}\.tmp$/.test(name)) {
        await rm(path, { force: true });
      }
    }
  }

  async #writeErrorFiles(errors: Map<string, string>): Promise<void> {
    if (errors.size === 0) return;
    const dir = join(this.#recvDir, ERRORS_DIR);
    await mkdir(dir, { recursive: true, mode: RECV_DIR_MODE });
    const st = await lstat(dir);
    if (!st.isDirectory()) {
      throw new NstanceError("precondition_failed", `${dir} is not a directory`);
    }
    for (const [name, reason] of errors) {
      await writeFileAtomic(join(dir, name), `${reason}\n`, { mode: this.#fileMode });
    }
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => undefined);
    return next;
  }
}

async function readCommit(stage: string): Promise<CommitRecord | undefined> {
  let text: string;
  try {
    text = await readFile(join(stage, COMMIT_FILE), "utf8");
  } catch (err) {
    if (isNodeError(err, "ENOENT") || isNodeError(err, "ENOTDIR")) return undefined;
    throw err;
  }
  try {
    const r = JSON.parse(text) as Partial<CommitRecord>;
    if (typeof r.config_hash !== "string" || !Array.isArray(r.files)) return undefined;
    // The journal lives in a directory only the agent writes, but check names anyway.
    const files = r.files.filter(
      (f): f is string => typeof f === "string" && checkReceivedFileName(f) === undefined,
    );
    return { config_hash: r.config_hash, files };
  } catch {
    return undefined;
  }
}
