// SPDX-License-Identifier: Apache-2.0
/** Queries over the `groups` and `config_state` tables. */
import type { Db } from "./database.js";

/** A group row: the effective group config with its drift hashes. */
export interface GroupRow {
  tenant: string;
  groupKey: string;
  isStatic: boolean;
  /** The effective group as JSON. */
  config: unknown;
  runtimeConfigHash: string;
  infraConfigHash: string;
  hashesUpdatedAt: number;
}

/** Where a loaded config object came from, for GetConfigStatus and the health JSON. */
export interface ConfigStateRow {
  name: "config" | "groups";
  etag: string;
  size: number;
  source: "storage" | "cache" | "missing";
  loadedAt: number;
}

/**
 * Replaces every group row and the config state in one transaction, so readers see either the old
 * config or the new one, never a mix (a kill -9 mid-sync leaves the old rows).
 */
export function replaceGroups(
  db: Db,
  groups: readonly GroupRow[],
  states: readonly ConfigStateRow[],
): void {
  const del = db.prepare("DELETE FROM groups");
  const ins = db.prepare(
    `INSERT INTO groups (tenant, group_key, is_static, config, runtime_config_hash, infra_config_hash, hashes_updated_at)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  const st = db.prepare(
    `INSERT INTO config_state (name, etag, size, source, loaded_at) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (name) DO UPDATE SET etag = excluded.etag, size = excluded.size,
       source = excluded.source, loaded_at = excluded.loaded_at`,
  );
  db.transaction(() => {
    del.run();
    for (const g of groups) {
      ins.run(
        g.tenant,
        g.groupKey,
        g.isStatic ? 1 : 0,
        JSON.stringify(g.config),
        g.runtimeConfigHash,
        g.infraConfigHash,
        g.hashesUpdatedAt,
      );
    }
    for (const s of states) st.run(s.name, s.etag, s.size, s.source, s.loadedAt);
  })();
}

interface RawGroupRow {
  tenant: string;
  group_key: string;
  is_static: number;
  config: string;
  runtime_config_hash: string;
  infra_config_hash: string;
  hashes_updated_at: number;
}

/** All group rows ordered by tenant and key. */
export function listGroups(db: Db): GroupRow[] {
  const rows = db.prepare("SELECT * FROM groups ORDER BY tenant, group_key").all() as RawGroupRow[];
  return rows.map((r) => ({
    tenant: r.tenant,
    groupKey: r.group_key,
    isStatic: r.is_static === 1,
    config: JSON.parse(r.config) as unknown,
    runtimeConfigHash: r.runtime_config_hash,
    infraConfigHash: r.infra_config_hash,
    hashesUpdatedAt: r.hashes_updated_at,
  }));
}

/** The recorded state of the config or groups object, if any was loaded. */
export function getConfigState(db: Db, name: ConfigStateRow["name"]): ConfigStateRow | undefined {
  const r = db.prepare("SELECT * FROM config_state WHERE name = ?").get(name) as
    | {
        name: ConfigStateRow["name"];
        etag: string;
        size: number;
        source: ConfigStateRow["source"];
        loaded_at: number;
      }
    | undefined;
  return r && { name: r.name, etag: r.etag, size: r.size, source: r.source, loadedAt: r.loaded_at };
}
