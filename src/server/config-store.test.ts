// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { shardConfigText } from "../../test/support/shard-fixture.js";
import type { EffectiveGroup } from "../config/server-config.js";
import { type Db, openDatabase } from "../db/database.js";
import { listGroups } from "../db/groups-table.js";
import { NstanceError } from "../shared/errors.js";
import { silentLogger } from "../shared/logger.js";
import { MemoryStorage } from "../storage/memory-storage.js";
import type { PutOptions } from "../storage/object-storage.js";
import { cachePath, configKey, groupsKey, loadConfigOnce } from "./config-loader.js";
import { ConfigStore, diffGroups, type GroupChange } from "./config-store.js";

const SHARD = "local";

/** Another writer that changes the groups file right before each of our conditional puts. */
class RacingStorage extends MemoryStorage {
  races = 0;
  puts = 0;
  override async put(key: string, body: Buffer | string, opts?: PutOptions): Promise<string> {
    if (key === groupsKey(SHARD) && opts?.condition && this.races > 0) {
      this.races--;
      const cur = await this.get(key);
      const n = this.puts++;
      const doc = JSON.parse(cur?.body.toString() ?? "{}") as Record<
        string,
        Record<string, unknown>
      >;
      doc.default = { ...doc.default, [`racer${n}`]: { template: "web", size: 1 } };
      await super.put(key, JSON.stringify(doc));
    }
    return super.put(key, body, opts);
  }
}

describe("ConfigStore", () => {
  let dir: string;
  let storage: RacingStorage;
  let db: Db;
  let store: ConfigStore;
  const changes: GroupChange[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "nstance-config-store-"));
    storage = new RacingStorage();
    await storage.put(configKey(SHARD), await shardConfigText());
    db = openDatabase({ path: ":memory:" });
    const opts = { storage, shard: SHARD, cachedir: dir, db, logger: silentLogger };
    store = new ConfigStore({ ...opts, initial: await loadConfigOnce(opts), groupWriteRetries: 2 });
    store.subscribe((c) => changes.push(c));
  });
  after(async () => {
    db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("creates the groups file create-only, syncs SQLite and the disk cache, and notifies", async () => {
    changes.length = 0;
    const g = await store.upsertGroup("default", "batch", { template: "web", size: 2 });
    assert.equal(g.size, 2);
    assert.equal(store.current().groupsEtag, (await storage.head(groupsKey(SHARD)))?.etag);
    assert.ok(listGroups(db).some((r) => r.groupKey === "batch"));
    const cached = await readFile(cachePath(dir, groupsKey(SHARD)), "utf8");
    assert.equal(cached, (await storage.get(groupsKey(SHARD)))?.body.toString());
    assert.deepEqual(
      changes.map((c) => (c.type === "upsert" ? `upsert ${c.group.key}` : `delete ${c.key}`)),
      ["upsert batch"],
    );
  });

  it("re-reads and retries when another writer wins, keeping its change", async () => {
    storage.races = 2;
    await store.upsertGroup("default", "batch", { size: 4 });
    const keys = store.current().effective.groups.map((g) => g.key);
    assert.ok(keys.includes("racer0") && keys.includes("racer1"), keys.join(","));
    assert.equal(store.group("default", "batch")?.size, 4);
  });

  it("gives up with `aborted` after the configured retries, changing nothing", async () => {
    const before = store.current();
    storage.races = 3; // first attempt + 2 retries all lose
    await assert.rejects(
      store.upsertGroup("default", "batch", { size: 9 }),
      (err: unknown) => err instanceof NstanceError && err.code === "aborted",
    );
    assert.equal(store.current(), before);
    assert.equal(store.group("default", "batch")?.size, 4);
    storage.races = 0;
  });

  it("refuses an invalid edit before writing anything", async () => {
    const etag = (await storage.head(groupsKey(SHARD)))?.etag;
    await assert.rejects(
      store.upsertGroup("default", "web", { template: "nope" }),
      (err: unknown) => err instanceof NstanceError && err.code === "invalid_argument",
    );
    assert.equal((await storage.head(groupsKey(SHARD)))?.etag, etag);
  });

  it("keeps the old config (memory and SQLite) when a refresh finds an invalid one", async () => {
    const before = store.current();
    const rows = listGroups(db);
    await storage.put(configKey(SHARD), '{ "cluster": 1 }');
    await assert.rejects(
      store.refresh(),
      (err: unknown) => err instanceof NstanceError && err.code === "invalid_argument",
    );
    assert.equal(store.current(), before);
    assert.deepEqual(listGroups(db), rows);
    await storage.put(configKey(SHARD), await shardConfigText());
    const res = await store.refresh();
    // The config text is the same, but the racing writer's last groups change is new to us.
    assert.equal(res.updated, true);
    assert.equal(res.etag, res.prevEtag);
    assert.ok(store.group("default", "racer4"));
    assert.equal((await store.refresh()).updated, false);
  });

  it("refreshIfChanged reloads only when storage holds another version", async () => {
    assert.equal(await store.refreshIfChanged(), undefined);
    const doc = JSON.parse((await storage.get(groupsKey(SHARD)))!.body.toString()) as Record<
      string,
      Record<string, unknown>
    >;
    doc.default = { ...doc.default, "written-by-leader": { template: "web", size: 1 } };
    await storage.put(groupsKey(SHARD), JSON.stringify(doc));
    const res = await store.refreshIfChanged();
    assert.equal(res?.updated, true);
    assert.ok(store.group("default", "written-by-leader"));
    assert.equal(await store.refreshIfChanged(), undefined);
  });

  it("survives a throwing listener", async () => {
    const off = store.subscribe(() => {
      throw new Error("boom");
    });
    await store.deleteGroup("default", "racer0");
    off();
    assert.equal(store.group("default", "racer0"), undefined);
  });
});

describe("diffGroups", () => {
  const g = (key: string, size: number) =>
    ({ tenant: "t", key, size }) as unknown as EffectiveGroup;
  it("reports deletions first, then new and changed groups", () => {
    const out = diffGroups([g("a", 1), g("b", 1), g("c", 1)], [g("b", 2), g("c", 1), g("d", 1)]);
    assert.deepEqual(
      out.map((c) => (c.type === "delete" ? `-${c.key}` : `+${c.group.key}`)),
      ["-a", "+b", "+d"],
    );
  });
});
