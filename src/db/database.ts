// SPDX-License-Identifier: Apache-2.0
/**
 * The local SQLite cache (`{cachedir}/db/nstance.db`, WAL). It holds groups with their hashes,
 * instances, health reports, drain state and decisions. It is a cache: every table can be rebuilt from
 * object storage and the provider, so deleting the directory never loses anything durable.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { MIGRATIONS } from "./migrations.js";

/** The database handle type used across the server. */
export type Db = BetterSqlite3.Database;

/** Options for {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /** Path of the database file, or `:memory:`. */
  path: string;
  /** Busy timeout in ms. Defaults to {@link DEFAULT_BUSY_TIMEOUT_MS}. */
  busyTimeoutMs?: number;
}

/** How long a statement waits for a lock held by another connection. */
export const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/** Opens (creating if needed) the database, enables WAL and foreign keys, and migrates it. */
export function openDatabase(opts: OpenDatabaseOptions): Db {
  if (opts.path !== ":memory:") mkdirSync(dirname(opts.path), { recursive: true });
  const db = new BetterSqlite3(opts.path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = NORMAL");
  db.pragma("foreign_keys = ON");
  db.pragma(`busy_timeout = ${opts.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS}`);
  migrate(db);
  return db;
}

/** Applies every migration newer than the database's `user_version`, each in its own transaction. */
export function migrate(db: Db): number {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(
      `database schema version ${current} is newer than this build knows (${MIGRATIONS.length}); ` +
        "delete the cache directory to rebuild it from object storage",
    );
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
  return MIGRATIONS.length;
}

/** Returns `ok` or the integrity problems SQLite reports. */
export function integrityCheck(db: Db): string {
  const rows = db.pragma("integrity_check") as Array<{ integrity_check: string }>;
  return rows.map((r) => r.integrity_check).join("; ");
}
