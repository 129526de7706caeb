// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type Db, openDatabase } from "../../db/database.js";
import { insertPendingInstance } from "../../db/instances-table.js";
import type { HealthReportRequest } from "../../protocol/gen/nstance/v1/agent.js";
import { silentLogger } from "../../shared/logger.js";
import { HealthStore } from "./health-store.js";
import { IngestStats } from "./ingest-stats.js";

const report = (instanceId: string, count: number): HealthReportRequest => ({
  version: "1.0.0",
  instanceId,
  count,
  timestamp: new Date(),
  started: undefined,
  windowStart: undefined,
  windowEnd: undefined,
  uptime: 1,
  oneMinute: undefined,
  fiveMinutes: undefined,
  fifteenMinutes: undefined,
  files: {},
  terminationNotice: undefined,
  configHash: `sha256:${count}`,
  patchError: "",
});

describe("HealthStore", () => {
  let db: Db;
  const clock = 1_000_000;
  before(() => {
    db = openDatabase({ path: ":memory:" });
    for (const id of ["a", "b"]) {
      insertPendingInstance(db, {
        id,
        tenant: "default",
        groupKey: "web",
        nonce: id,
        infraConfigHash: "h",
        createdAt: 0,
      });
    }
  });
  after(() => db.close());

  it("commits a batch in one transaction, latest report on the row, sampled history", async () => {
    const stats = new IngestStats();
    const store = new HealthStore({
      db,
      logger: silentLogger,
      stats,
      flushIntervalMs: 10_000,
      historyIntervalMs: 60_000,
      now: () => clock,
    });
    store.start();
    const pending = [
      store.record("a", report("a", 1), clock),
      store.record("a", report("a", 2), clock + 1_000),
      store.record("b", report("b", 1), clock + 2_000),
      store.record("ghost", report("ghost", 1), clock),
    ];
    store.flush();
    assert.deepEqual(await Promise.all(pending), ["stored", "stored", "stored", "unknown"]);
    const row = db
      .prepare("SELECT health_at, config_hash, health FROM instances WHERE id = 'a'")
      .get() as {
      health_at: number;
      config_hash: string;
      health: string;
    };
    assert.equal(row.health_at, clock + 1_000);
    assert.equal(row.config_hash, "sha256:2");
    assert.equal((JSON.parse(row.health) as { count: number }).count, 2);
    const history = db
      .prepare("SELECT instance_id, received_at FROM health_reports ORDER BY rowid")
      .all();
    assert.deepEqual(
      history.map((r) => ({ ...(r as object) })),
      [
        { instance_id: "a", received_at: clock },
        { instance_id: "b", received_at: clock + 2_000 },
      ],
      "at most one history row per instance per interval",
    );
    assert.equal(stats.snapshot().stored, 3);
    await store.stop();
    await assert.rejects(store.record("a", report("a", 3), clock), /health store is stopped/);
  });

  it("commits by itself after the flush interval", async () => {
    const store = new HealthStore({ db, logger: silentLogger, flushIntervalMs: 5 });
    store.start();
    assert.equal(await store.record("b", report("b", 9), Date.now()), "stored");
    await store.stop();
  });

  it("sheds reports beyond the queue bound instead of growing without limit", async () => {
    const stats = new IngestStats();
    const store = new HealthStore({
      db,
      logger: silentLogger,
      stats,
      maxQueued: 2,
      flushIntervalMs: 10_000,
    });
    store.start();
    const a = store.record("a", report("a", 1), clock);
    const b = store.record("b", report("b", 1), clock);
    assert.equal(await store.record("a", report("a", 2), clock), "shed");
    assert.equal(store.queued, 2);
    store.flush();
    assert.deepEqual(await Promise.all([a, b]), ["stored", "stored"]);
    assert.equal(store.queued, 0);
    assert.equal(
      await Promise.race([store.record("a", report("a", 3), clock), Promise.resolve("pending")]),
      "pending",
    );
    assert.equal(stats.snapshot().shed, 1);
    await store.stop();
  });

  it("prunes history by age and by count per instance", () => {
    db.prepare("DELETE FROM health_reports").run();
    const ins = db.prepare(
      "INSERT INTO health_reports (instance_id, received_at, report) VALUES (?, ?, '{}')",
    );
    for (let i = 0; i < 5; i++) ins.run("a", clock - i * 1000);
    ins.run("b", clock - 10 * 3_600_000);
    const store = new HealthStore({
      db,
      logger: silentLogger,
      historyMaxAgeMs: 3_600_000,
      historyMaxPerInstance: 3,
      now: () => clock,
    });
    assert.equal(store.prune(), 3);
    const left = db
      .prepare("SELECT instance_id, received_at FROM health_reports ORDER BY received_at DESC")
      .all();
    assert.deepEqual(
      left.map((r) => ({ ...(r as object) })),
      [0, 1, 2].map((i) => ({ instance_id: "a", received_at: clock - i * 1000 })),
    );
  });
});

describe("HealthStore with its writer thread", () => {
  it("commits a database file's reports from a worker thread, readable at once here", async () => {
    const dir = await mkdtemp(join(tmpdir(), "nstance-health-store-"));
    const db = openDatabase({ path: join(dir, "db", "nstance.db") });
    try {
      insertPendingInstance(db, {
        id: "t1",
        tenant: "default",
        groupKey: "web",
        nonce: "t1",
        infraConfigHash: "h",
        createdAt: 0,
      });
      const stats = new IngestStats();
      const store = new HealthStore({
        db,
        logger: silentLogger,
        stats,
        flushIntervalMs: 5,
        writerThread: true,
      });
      store.start();
      const results = await Promise.all([
        store.record("t1", report("t1", 1), 1000),
        store.record("nope", report("nope", 1), 1000),
      ]);
      assert.deepEqual(results, ["stored", "unknown"]);
      const row = db
        .prepare("SELECT health_at, config_hash FROM instances WHERE id = 't1'")
        .get() as {
        health_at: number;
        config_hash: string;
      };
      assert.deepEqual({ ...row }, { health_at: 1000, config_hash: "sha256:1" });
      assert.equal(
        (db.prepare("SELECT COUNT(*) AS n FROM health_reports").get() as { n: number }).n,
        1,
      );
      // Main-thread writes still work while the thread holds its own connection.
      db.prepare("UPDATE instances SET hostname = 'h' WHERE id = 't1'").run();
      const last = store.record("t1", report("t1", 2), 2000);
      await store.stop();
      assert.equal(await last, "stored", "stop commits what is pending");
      assert.equal(stats.snapshot().stored, 2);
    } finally {
      db.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
