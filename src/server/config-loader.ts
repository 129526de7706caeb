// SPDX-License-Identifier: Apache-2.0
/**
 * The seed's boot-time configuration load: static config, dynamic groups, then the merged groups and
 * their hashes synced into SQLite — one atomic step, retried with 1 s and 2 s backoff. When storage is
 * unreachable, the copies kept in `--cachedir` are used.
 */
import { createHash } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { EffectiveConfig } from "../config/load-config.js";
import {
  buildEffectiveConfig,
  parseDynamicGroups,
  parseStaticConfig,
} from "../config/load-config.js";
import type { ServerConfig } from "../config/server-config.js";
import type { Db } from "../db/database.js";
import { type ConfigStateRow, replaceGroups } from "../db/groups-table.js";
import { errorMessage, NstanceError, StorageError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { sleep } from "../shared/sleep.js";
import type { ObjectStorage } from "../storage/object-storage.js";

/** Delays between the three attempts of the boot load (seed 000: 1 s, 2 s). */
export const DEFAULT_LOAD_RETRY_DELAYS_MS: readonly number[] = [1000, 2000];

/** Storage key of a shard's static config (seed 000). */
export const configKey = (shard: string): string => `config/${shard}.jsonc`;
/** Storage key of a shard's dynamic groups (seed 000). */
export const groupsKey = (shard: string): string => `groups/${shard}.jsonc`;

/** A successfully loaded, validated and synced configuration. */
export interface LoadedConfig {
  config: ServerConfig;
  effective: EffectiveConfig;
  configState: ConfigStateRow;
  groupsState: ConfigStateRow;
  /** Raw groups text and its etag, for conditional writes of dynamic groups. */
  groupsText: string;
  groupsEtag: string | undefined;
}

/** Options for {@link loadConfigOnce} and {@link loadConfigWithRetry}. */
export interface ConfigLoaderOptions {
  storage: ObjectStorage;
  shard: string;
  cachedir: string;
  db: Db;
  logger: Logger;
  now?: () => number;
}

interface Fetched {
  text: string;
  etag: string | undefined;
  source: ConfigStateRow["source"];
  file: string;
}

const md5 = (text: string): string => createHash("md5").update(text).digest("hex");

/** Path of the cached copy of a storage key. */
export function cachePath(cachedir: string, key: string): string {
  return join(cachedir, "objects", key);
}

async function writeCache(cachedir: string, key: string, text: string): Promise<void> {
  const path = cachePath(cachedir, key);
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}

async function readCache(cachedir: string, key: string): Promise<string | undefined> {
  try {
    return await readFile(cachePath(cachedir, key), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

async function fetchObject(
  opts: ConfigLoaderOptions,
  key: string,
  required: boolean,
  signal?: AbortSignal,
): Promise<Fetched> {
  const file = `${opts.storage.description}/${key}`;
  try {
    const obj = await opts.storage.get(key, signal);
    if (obj === undefined) {
      if (required) throw new NstanceError("not_found", `${file} does not exist`);
      return { text: "{}", etag: undefined, source: "missing", file };
    }
    return { text: obj.body.toString("utf8"), etag: obj.etag, source: "storage", file };
  } catch (err) {
    if (!(err instanceof StorageError)) throw err;
    const cached = await readCache(opts.cachedir, key);
    if (cached === undefined) {
      throw new NstanceError(
        "unavailable",
        `${errorMessage(err)}; no cached copy in ${opts.cachedir}`,
        {
          cause: err,
        },
      );
    }
    opts.logger.warn("Storage unreachable, using cached copy", { key, err: errorMessage(err) });
    return { text: cached, etag: undefined, source: "cache", file: cachePath(opts.cachedir, key) };
  }
}

/** One attempt: fetch both files, parse, validate, merge, hash and sync to SQLite. */
export async function loadConfigOnce(
  opts: ConfigLoaderOptions,
  signal?: AbortSignal,
): Promise<LoadedConfig> {
  const now = opts.now ?? Date.now;
  const cfg = await fetchObject(opts, configKey(opts.shard), true, signal);
  const grp = await fetchObject(opts, groupsKey(opts.shard), false, signal);
  const config = parseStaticConfig(cfg.text, cfg.file);
  if (config.shard.id !== opts.shard) {
    throw new NstanceError(
      "invalid_argument",
      `${cfg.file}: shard.id is "${config.shard.id}" but this server runs shard "${opts.shard}"`,
    );
  }
  const dynamic = parseDynamicGroups(grp.text, grp.file);
  const effective = buildEffectiveConfig(config, dynamic, {
    groupsFile: grp.file,
    groupsText: grp.text,
  });
  const loadedAt = now();
  const state = (name: ConfigStateRow["name"], f: Fetched): ConfigStateRow => ({
    name,
    etag: f.etag ?? md5(f.text),
    size: Buffer.byteLength(f.text),
    source: f.source,
    loadedAt,
  });
  const configState = state("config", cfg);
  const groupsState = state("groups", grp);
  replaceGroups(
    opts.db,
    effective.groups.map((g) => ({
      tenant: g.tenant,
      groupKey: g.key,
      isStatic: g.isStatic,
      config: g,
      runtimeConfigHash: g.runtimeHash,
      infraConfigHash: g.infraHash,
      hashesUpdatedAt: loadedAt,
    })),
    [configState, groupsState],
  );
  // Refresh the disk copies only from storage, so a cache never overwrites itself with itself.
  if (cfg.source === "storage") await writeCache(opts.cachedir, configKey(opts.shard), cfg.text);
  if (grp.source !== "cache") await writeCache(opts.cachedir, groupsKey(opts.shard), grp.text);
  return {
    config,
    effective,
    configState,
    groupsState,
    groupsText: grp.text,
    groupsEtag: grp.etag,
  };
}

/**
 * Runs {@link loadConfigOnce} up to `retryDelaysMs.length + 1` times. Throws the last error when
 * every attempt fails; the caller then logs it as fatal and keeps answering 503.
 */
export async function loadConfigWithRetry(
  opts: ConfigLoaderOptions & {
    retryDelaysMs?: readonly number[];
    sleepFn?: (ms: number, signal?: AbortSignal) => Promise<void>;
  },
  signal?: AbortSignal,
): Promise<LoadedConfig> {
  const delays = opts.retryDelaysMs ?? DEFAULT_LOAD_RETRY_DELAYS_MS;
  const wait = opts.sleepFn ?? sleep;
  for (let attempt = 0; ; attempt++) {
    try {
      return await loadConfigOnce(opts, signal);
    } catch (err) {
      if (signal?.aborted) throw err;
      const delay = delays[attempt];
      if (delay === undefined) throw err;
      opts.logger.warn("Configuration load failed, retrying", {
        attempt: attempt + 1,
        retry_in_ms: delay,
        err: errorMessage(err),
      });
      await wait(delay, signal);
    }
  }
}
