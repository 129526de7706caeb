// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { integrityCheck, migrate, openDatabase } from "./database.js";
import { getConfigState, listGroups, replaceGroups } from "./groups-table.js";
import { MIGRATIONS } from "./migrations.js";

describe("database", () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it("creates the file in WAL mode at the latest schema version", async () => {
    const dir = await mkdtemp(join(tmpdir(), "nstance-db-"));
    dirs.push(dir);
    const db = openDatabase({ path: join(dir, "db", "nstance.db") });
    assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
    assert.equal(db.pragma("user_version", { simple: true }), MIGRATIONS.length);
    assert.equal(integrityCheck(db), "ok");
    // Re-running migrations is a no-op.
    assert.equal(migrate(db), MIGRATIONS.length);
    db.close();
  });

  it("refuses a database from a newer build with a hint", () => {
    const db = openDatabase({ path: ":memory:" });
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    assert.throws(() => migrate(db), /newer than this build.*delete the cache directory/);
  });

  it("replaces groups atomically and keeps config state", () => {
    const db = openDatabase({ path: ":memory:" });
    const row = {
      tenant: "default",
      groupKey: "web",
      isStatic: true,
      config: { size: 3 },
      runtimeConfigHash: "sha256:a",
      infraConfigHash: "sha256:b",
      hashesUpdatedAt: 1,
    };
    replaceGroups(
      db,
      [row, { ...row, groupKey: "api" }],
      [{ name: "config", etag: "e1", size: 10, source: "storage", loadedAt: 1 }],
    );
    assert.deepEqual(
      listGroups(db).map((g) => g.groupKey),
      ["api", "web"],
    );
    // A failing replacement (duplicate key) rolls back entirely.
    assert.throws(() => replaceGroups(db, [row, row], []));
    assert.equal(listGroups(db).length, 2);
    replaceGroups(
      db,
      [{ ...row, config: { size: 5 } }],
      [{ name: "config", etag: "e2", size: 11, source: "cache", loadedAt: 2 }],
    );
    assert.deepEqual(listGroups(db)[0]?.config, { size: 5 });
    assert.equal(getConfigState(db, "config")?.etag, "e2");
    assert.equal(getConfigState(db, "groups"), undefined);
  });
});
