// SPDX-License-Identifier: Apache-2.0
/**
 * The server's current configuration after boot: reloads (RefreshConfig) and operator edits of the
 * dynamic groups file (UpsertGroup, DeleteGroup), each validated before anything changes, written
 * to storage with a conditional put, and synced to SQLite. Subscribers hear every group change.
 */
import { mkdir, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { canonicalJson } from "../config/canonical-json.js";
import {
  applyGroupDelete,
  applyGroupUpsert,
  type GroupUpsert,
  serializeDynamicGroups,
} from "../config/group-ops.js";
import { buildEffectiveConfig, parseDynamicGroups } from "../config/load-config.js";
import type { DynamicGroups, EffectiveConfig, EffectiveGroup } from "../config/server-config.js";
import type { Db } from "../db/database.js";
import { type ConfigStateRow, replaceGroups } from "../db/groups-table.js";
import { errorMessage, NstanceError, PreconditionFailedError } from "../shared/errors.js";
import type { Logger } from "../shared/logger.js";
import { KeyMutex } from "../storage/key-mutex.js";
import type { ObjectStorage } from "../storage/object-storage.js";
import {
  cachePath,
  configKey,
  groupsKey,
  type LoadedConfig,
  loadConfigOnce,
} from "./config-loader.js";

/** Retries of a groups write that lost its conditional put to another writer (re-read each time). */
export const DEFAULT_GROUP_WRITE_RETRIES = 4;

/** A change to one effective group. */
export type GroupChange =
  | { type: "upsert"; group: EffectiveGroup }
  | { type: "delete"; tenant: string; key: string };

/** Receives group changes; called synchronously, after SQLite and `current()` are updated. */
export type GroupChangeListener = (change: GroupChange) => void;

/** What {@link ConfigStore.refresh} reports. */
export interface RefreshResult {
  /** True when the static config or the dynamic groups changed. */
  updated: boolean;
  /** Etag of the static config before the reload. */
  prevEtag: string;
  /** Etag of the static config now. */
  etag: string;
}

/** Options for {@link ConfigStore}. */
export interface ConfigStoreOptions {
  /** The bucket (not scoped): config and groups live at `config/{shard}.jsonc`, `groups/{shard}.jsonc`. */
  storage: ObjectStorage;
  shard: string;
  /** Where the disk copies of config and groups are kept (`--cachedir`). */
  cachedir: string;
  db: Db;
  logger: Logger;
  /** The configuration loaded at boot. */
  initial: LoadedConfig;
  /** Defaults to {@link DEFAULT_GROUP_WRITE_RETRIES}. */
  groupWriteRetries?: number;
  now?: () => number;
}

const groupId = (g: { tenant: string; key: string }): string => `${g.tenant}/${g.key}`;

/** The changes between two sets of effective groups: deletions first, then upserts. */
export function diffGroups(
  before: readonly EffectiveGroup[],
  after: readonly EffectiveGroup[],
): GroupChange[] {
  const old = new Map(before.map((g) => [groupId(g), canonicalJson(g)]));
  const next = new Set(after.map(groupId));
  const changes: GroupChange[] = [];
  for (const g of before) {
    if (!next.has(groupId(g))) changes.push({ type: "delete", tenant: g.tenant, key: g.key });
  }
  for (const g of after) {
    if (old.get(groupId(g)) !== canonicalJson(g)) changes.push({ type: "upsert", group: g });
  }
  return changes;
}

/**
 * Holds the loaded configuration and applies changes to it one at a time. Every change is complete
 * or absent: an invalid config or edit throws before storage, SQLite or `current()` change.
 */
export class ConfigStore {
  readonly #opts: ConfigStoreOptions;
  readonly #mutex = new KeyMutex();
  readonly #listeners = new Set<GroupChangeListener>();
  #current: LoadedConfig;

  constructor(opts: ConfigStoreOptions) {
    if (!opts.storage) throw new TypeError("storage is required");
    if (!opts.db) throw new TypeError("db is required");
    if (!opts.initial) throw new TypeError("initial is required");
    this.#opts = opts;
    this.#current = opts.initial;
  }

  /** The configuration in force. */
  current(): LoadedConfig {
    return this.#current;
  }

  /** The effective group `tenant/key`, or `undefined`. */
  group(tenant: string, key: string): EffectiveGroup | undefined {
    return this.#current.effective.groups.find((g) => g.tenant === tenant && g.key === key);
  }

  /** Calls `listener` for every later group change; returns the unsubscribe function. */
  subscribe(listener: GroupChangeListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /**
   * Reloads static config and dynamic groups from storage (the boot load's semantics, one attempt).
   * An invalid config throws NstanceError `invalid_argument` listing every problem, and the old
   * configuration stays in force, in memory and in SQLite.
   */
  refresh(signal?: AbortSignal): Promise<RefreshResult> {
    return this.#mutex.run(
      "config",
      async () => {
        const before = this.#current;
        const loaded = await loadConfigOnce(
          {
            storage: this.#opts.storage,
            shard: this.#opts.shard,
            cachedir: this.#opts.cachedir,
            db: this.#opts.db,
            logger: this.#opts.logger,
            ...(this.#opts.now ? { now: this.#opts.now } : {}),
          },
          signal,
        );
        this.#install(loaded, before);
        const updated =
          loaded.configState.etag !== before.configState.etag ||
          loaded.groupsState.etag !== before.groupsState.etag;
        this.#opts.logger.info("Configuration refreshed", {
          updated,
          prev_etag: before.configState.etag,
          etag: loaded.configState.etag,
          groups_etag: loaded.groupsState.etag,
        });
        return { updated, prevEtag: before.configState.etag, etag: loaded.configState.etag };
      },
      signal,
    );
  }

  /**
   * Reloads only when the config or groups object in storage differs from the loaded one (two HEAD
   * requests otherwise); returns `undefined` when nothing changed. Standbys call this periodically
   * so their reads follow the leader's writes; the new leader calls {@link refresh} on acquisition.
   */
  async refreshIfChanged(signal?: AbortSignal): Promise<RefreshResult | undefined> {
    const { storage, shard } = this.#opts;
    const [config, groups] = await Promise.all([
      storage.head(configKey(shard), signal),
      storage.head(groupsKey(shard), signal),
    ]);
    const cur = this.#current;
    const groupsSame =
      groups === undefined
        ? cur.groupsState.source === "missing"
        : groups.etag === cur.groupsState.etag;
    if (config?.etag === cur.configState.etag && groupsSame) return undefined;
    return this.refresh(signal);
  }

  /**
   * Creates or changes group `tenant/key` in the dynamic groups file and returns the effective
   * group. Restricted fields of a static group and every other rule violation throw NstanceError
   * `invalid_argument` with the reason; a write that keeps losing to other writers throws `aborted`.
   */
  async upsertGroup(
    tenant: string,
    key: string,
    update: GroupUpsert,
    signal?: AbortSignal,
  ): Promise<EffectiveGroup> {
    await this.#editGroups(
      (dynamic, config) => applyGroupUpsert(dynamic, config, tenant, key, update),
      signal,
    );
    const g = this.group(tenant, key);
    if (!g) throw new NstanceError("internal", `group ${tenant}/${key} vanished after upsert`);
    return g;
  }

  /**
   * Deletes group `tenant/key` from the dynamic groups file. For a static group with overrides only
   * the overrides go, and the static group (returned) remains. Throws `not_found` for an unknown
   * group and `invalid_argument` for a static group without overrides.
   */
  async deleteGroup(
    tenant: string,
    key: string,
    signal?: AbortSignal,
  ): Promise<EffectiveGroup | undefined> {
    await this.#editGroups(
      (dynamic, config) => applyGroupDelete(dynamic, config, tenant, key),
      signal,
    );
    return this.group(tenant, key);
  }

  #editGroups(
    edit: (dynamic: DynamicGroups, config: LoadedConfig["config"]) => DynamicGroups,
    signal?: AbortSignal,
  ): Promise<void> {
    return this.#mutex.run(
      "config",
      async () => {
        const { storage, shard } = this.#opts;
        const key = groupsKey(shard);
        const retries = this.#opts.groupWriteRetries ?? DEFAULT_GROUP_WRITE_RETRIES;
        let base = {
          dynamic: this.#current.effective.dynamic,
          etag: this.#current.groupsEtag,
        };
        for (let attempt = 0; ; attempt++) {
          const config = this.#current.config;
          const nextDynamic = edit(base.dynamic, config);
          const text = serializeDynamicGroups(nextDynamic);
          // Validates the whole file, not just the edited entry, before anything is written.
          const effective = buildEffectiveConfig(config, nextDynamic, {
            groupsFile: `${storage.description}/${key}`,
            groupsText: text,
          });
          let etag: string;
          try {
            etag = await storage.put(key, text, {
              condition: base.etag === undefined ? { ifNoneMatch: "*" } : { ifMatch: base.etag },
              contentType: "application/json",
              signal,
            });
          } catch (err) {
            if (!(err instanceof PreconditionFailedError)) throw err;
            if (attempt >= retries) {
              throw new NstanceError(
                "aborted",
                `${key} kept changing under concurrent writers (${attempt + 1} attempts); try again`,
                { cause: err },
              );
            }
            this.#opts.logger.info("Dynamic groups changed concurrently; re-reading", {
              key,
              attempt: attempt + 1,
            });
            base = await this.#readGroups(signal);
            continue;
          }
          await this.#installGroups(effective, text, etag);
          return;
        }
      },
      signal,
    );
  }

  async #readGroups(
    signal?: AbortSignal,
  ): Promise<{ dynamic: DynamicGroups; etag: string | undefined }> {
    const key = groupsKey(this.#opts.shard);
    const obj = await this.#opts.storage.get(key, signal);
    if (!obj) return { dynamic: {}, etag: undefined };
    const file = `${this.#opts.storage.description}/${key}`;
    return { dynamic: parseDynamicGroups(obj.body.toString("utf8"), file), etag: obj.etag };
  }

  /** Syncs a written groups file into SQLite, the disk cache and memory, then notifies. */
  async #installGroups(effective: EffectiveConfig, text: string, etag: string): Promise<void> {
    const before = this.#current;
    const now = (this.#opts.now ?? Date.now)();
    const groupsState: ConfigStateRow = {
      name: "groups",
      etag,
      size: Buffer.byteLength(text),
      source: "storage",
      loadedAt: now,
    };
    replaceGroups(
      this.#opts.db,
      effective.groups.map((g) => ({
        tenant: g.tenant,
        groupKey: g.key,
        isStatic: g.isStatic,
        config: g,
        runtimeConfigHash: g.runtimeHash,
        infraConfigHash: g.infraHash,
        hashesUpdatedAt: now,
      })),
      [before.configState, groupsState],
    );
    this.#install(
      { ...before, effective, groupsState, groupsText: text, groupsEtag: etag },
      before,
    );
    await this.#writeCache(groupsKey(this.#opts.shard), text);
  }

  #install(next: LoadedConfig, before: LoadedConfig): void {
    this.#current = next;
    for (const change of diffGroups(before.effective.groups, next.effective.groups)) {
      for (const listener of this.#listeners) {
        try {
          listener(change);
        } catch (err) {
          // One broken subscriber must not stop the others or undo a change already in force.
          this.#opts.logger.error("Group change listener failed", { err: errorMessage(err) });
        }
      }
    }
  }

  async #writeCache(key: string, text: string): Promise<void> {
    const path = cachePath(this.#opts.cachedir, key);
    try {
      await mkdir(dirname(path), { recursive: true });
      const tmp = `${path}.${process.pid}.tmp`;
      await writeFile(tmp, text);
      await rename(tmp, path);
    } catch (err) {
      // The cache only matters when storage is down at the next boot; storage already has the file.
      this.#opts.logger.warn("Cannot update the cached groups file", {
        path,
        err: errorMessage(err),
      });
    }
  }
}
