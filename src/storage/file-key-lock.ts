// SPDX-License-Identifier: Apache-2.0
/**
 * Per-key mutual exclusion across processes that share a directory: a lock is a file created
 * atomically (write a temp file, then `link()` it into place, which fails if the lock exists), so
 * its content is always complete. A lock whose holder process is gone, or that is older than
 * `staleMs`, is broken under a second "break" lock so that two breakers cannot both remove it.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, readlinkSync } from "node:fs";
import { link, mkdir, readFile, stat, unlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { StorageError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { silentLogger } from "../shared/logger.js";
import { sleep } from "../shared/sleep.js";
import { KeyMutex } from "./key-mutex.js";

/** Age after which a lock is broken even if its holder process seems alive, in ms. */
export const DEFAULT_LOCK_STALE_MS = 30_000;
/** How long to wait for a busy lock before failing (transiently), in ms. */
export const DEFAULT_LOCK_TIMEOUT_MS = 30_000;
/** Longest pause between two attempts to take a busy lock, in ms. */
const MAX_POLL_MS = 25;

/** Options for {@link FileKeyLock}. */
export interface FileKeyLockOptions {
  /** Directory holding the lock files; created on first use. */
  dir: string;
  /** See {@link DEFAULT_LOCK_STALE_MS}. */
  staleMs?: number;
  /** See {@link DEFAULT_LOCK_TIMEOUT_MS}. */
  timeoutMs?: number;
  logger?: Logger;
}

/** What a lock file records about its holder. */
interface LockRecord {
  pid: number;
  host: string;
  token: string;
  key: string;
  acquired_at: string;
}

/** Runs callbacks while holding a per-key lock that other processes on this host respect too. */
export class FileKeyLock {
  readonly #dir: string;
  readonly #staleMs: number;
  readonly #timeoutMs: number;
  readonly #logger: Logger;
  readonly #local = new KeyMutex();
  readonly #host = hostIdentity();
  #dirReady: Promise<unknown> | undefined;

  constructor(opts: FileKeyLockOptions) {
    if (!opts.dir) throw new TypeError("dir is required");
    this.#dir = opts.dir;
    this.#staleMs = opts.staleMs ?? DEFAULT_LOCK_STALE_MS;
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
    this.#logger = opts.logger ?? silentLogger;
  }

  /** Path of the lock file for `key`. */
  lockPath(key: string): string {
    return join(this.#dir, createHash("sha256").update(key).digest("hex").slice(0, 40));
  }

  /**
   * Runs `fn` while holding the lock for `key`. Waiters in this process queue in memory, so only
   * one of them polls the lock file. Throws a transient StorageError after `timeoutMs` of waiting.
   */
  run<T>(key: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.#local.run(
      key,
      async () => {
        const path = this.lockPath(key);
        const token = await this.#acquire(key, path, signal);
        try {
          return await fn();
        } finally {
          await this.#release(key, path, token);
        }
      },
      signal,
    );
  }

  async #acquire(key: string, path: string, signal: AbortSignal | undefined): Promise<string> {
    this.#dirReady ??= mkdir(this.#dir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
      this.#dirReady = undefined;
      throw err;
    });
    await this.#dirReady;
    const token = randomBytes(12).toString("hex");
    const record: LockRecord = {
      pid: process.pid,
      host: this.#host,
      token,
      key,
      acquired_at: new Date().toISOString(),
    };
    const deadline = Date.now() + this.#timeoutMs;
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      HELD_TOKENS.add(token);
      let created = false;
      try {
        created = await this.#tryCreate(path, JSON.stringify(record));
      } finally {
        if (!created) HELD_TOKENS.delete(token);
      }
      if (created) return token;
      const holder = await this.#inspect(path);
      if (holder === undefined) continue;
      if (this.#isStale(holder) && (await this.#breakStale(path, holder.raw, holder.record))) {
        continue;
      }
      if (Date.now() >= deadline) {
        throw new StorageError(
          "lock",
          key,
          `timed out after ${this.#timeoutMs}ms waiting for lock ${path}` +
            (holder?.record ? ` held by pid ${holder.record.pid} on ${holder.record.host}` : ""),
          true,
        );
      }
      const pauseMs = Math.min(MAX_POLL_MS, 1 + attempt);
      await sleep(pauseMs + Math.random() * pauseMs, signal);
    }
  }

  /** Creates `path` with `content` unless it exists; the content is complete when it appears. */
  async #tryCreate(path: string, content: string): Promise<boolean> {
    const tmp = `${path}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
    await writeFile(tmp, content, { mode: 0o600 });
    try {
      await link(tmp, path);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EEXIST") return false;
      if (code !== "EPERM" && code !== "ENOTSUP" && code !== "ENOSYS") throw err;
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
    // No hard links on this file system: exclusive create, whose content may briefly be empty
    // (an empty lock is only ever broken by age).
    try {
      await writeFile(path, content, { flag: "wx", mode: 0o600 });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw err;
    }
  }

  async #inspect(
    path: string,
  ): Promise<{ raw: string; record: LockRecord | undefined; ageMs: number } | undefined> {
    try {
      const [raw, st] = await Promise.all([readFile(path, "utf8"), stat(path)]);
      return { raw, record: parseRecord(raw), ageMs: Date.now() - st.mtimeMs };
    } catch (err) {
      // Released between our create attempt and this read: just try again.
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }

  #isStale(holder: { record: LockRecord | undefined; ageMs: number }): boolean {
    if (holder.ageMs > this.#staleMs) return true;
    const r = holder.record;
    if (r === undefined || r.host !== this.#host) return false;
    // Our own pid but not a token we hold: left by an earlier process that had the same pid
    // (common in containers, where the server is often pid 1).
    if (r.pid === process.pid) return !HELD_TOKENS.has(r.token);
    return !isProcessAlive(r.pid);
  }

  /**
   * Removes the lock at `path` if it still has the content we judged stale. Returns false when
   * another process is breaking it at the same time.
   */
  async #breakStale(
    path: string,
    staleRaw: string,
    record: LockRecord | undefined,
  ): Promise<boolean> {
    const breakPath = `${path}.break`;
    const token = randomBytes(12).toString("hex");
    const mine = JSON.stringify({ pid: process.pid, host: this.#host, token });
    HELD_TOKENS.add(token);
    if (!(await this.#tryCreate(breakPath, mine))) {
      HELD_TOKENS.delete(token);
      // Another process is breaking this lock. If that breaker died mid-way, clear its marker.
      const breaker = await this.#inspect(breakPath);
      if (breaker && this.#isStale(breaker)) await unlink(breakPath).catch(() => undefined);
      return false;
    }
    try {
      const now = await readFile(path, "utf8").catch(() => undefined);
      if (now === staleRaw) {
        await unlink(path).catch(() => undefined);
        this.#logger.warn("Broke stale storage lock", {
          lock_path: path,
          holder_pid: record?.pid,
          holder_host: record?.host,
          key: record?.key,
        });
      }
    } finally {
      HELD_TOKENS.delete(token);
      await unlink(breakPath).catch(() => undefined);
    }
    return true;
  }

  async #release(key: string, path: string, token: string): Promise<void> {
    HELD_TOKENS.delete(token);
    const raw = await readFile(path, "utf8").catch(() => undefined);
    if (raw !== undefined && parseRecord(raw)?.token === token) {
      await unlink(path);
      return;
    }
    // Someone judged our lock stale and broke it: mutual exclusion may have been violated.
    this.#logger.warn("Storage lock was broken while held", { lock_path: path, key });
  }
}

/** Tokens of the locks this process holds (across every FileKeyLock instance). */
const HELD_TOKENS = new Set<string>();

function parseRecord(raw: string): LockRecord | undefined {
  try {
    const r = JSON.parse(raw) as Partial<LockRecord>;
    return typeof r.pid === "number" && typeof r.token === "string" ? (r as LockRecord) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Identifies the pid space this process lives in: the host name plus, on Linux, the boot id and the
 * pid namespace. A pid is only checked for liveness when the lock was taken in the same pid space
 * (containers sharing a host name and a volume must not judge each other's pids).
 */
export function hostIdentity(): string {
  const parts = [hostname()];
  try {
    parts.push(readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim());
    parts.push(readlinkSync("/proc/self/ns/pid"));
  } catch {
    // Not Linux, or /proc is hidden: the host name alone has to do.
  }
  return parts.join("/");
}

/** True when a process with this pid exists on this host (EPERM means it exists but is not ours). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
