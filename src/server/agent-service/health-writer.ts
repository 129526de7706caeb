// SPDX-License-Identifier: Apache-2.0
/**
 * Commits batches of health rows to SQLite: in the calling thread, or — for a database file — in a
 * worker thread with its own connection, so the SQLite work (about 20 µs a report) does not take
 * event-loop time from the gRPC streams. WAL mode lets the server's other connection keep reading
 * and writing meanwhile; writes from both wait for each other through `busy_timeout`.
 *
 * The worker's code is plain JavaScript kept here as a string, so it runs the same from the
 * TypeScript sources (tsx) and from the build, and needs nothing but better-sqlite3.
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { Db } from "../../db/database.js";
import { DEFAULT_BUSY_TIMEOUT_MS } from "../../db/database.js";
import { errorMessage, NstanceError } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";

/** One report's row: instance ID, received at (unix ms), health JSON, config hash, add history. */
export type HealthRow = [
  id: string,
  receivedAt: number,
  json: string,
  configHash: string,
  history: boolean,
];

/** Commits health rows; resolves with, per row, whether the instance's active row was updated. */
export interface HealthWriter {
  write(rows: readonly HealthRow[]): Promise<boolean[]>;
  /** Waits for outstanding batches, then releases the thread. Idempotent. */
  close(): Promise<void>;
}

const UPDATE_SQL =
  "UPDATE instances SET health_at = ?, health = ?, config_hash = ? WHERE id = ? AND deleted_at IS NULL";
const INSERT_SQL = "INSERT INTO health_reports (instance_id, received_at, report) VALUES (?, ?, ?)";

/** Writes in the calling thread, one transaction per batch (also the fallback of the thread). */
export class InlineHealthWriter implements HealthWriter {
  readonly #commit: (rows: readonly HealthRow[]) => boolean[];

  constructor(db: Db) {
    const update = db.prepare(UPDATE_SQL);
    const insert = db.prepare(INSERT_SQL);
    this.#commit = db.transaction((rows: readonly HealthRow[]) =>
      rows.map(([id, at, json, hash, history]) => {
        const changed = update.run(at, json, hash, id).changes === 1;
        if (changed && history) insert.run(id, at, json);
        return changed;
      }),
    );
  }

  async write(rows: readonly HealthRow[]): Promise<boolean[]> {
    return this.#commit(rows);
  }

  async close(): Promise<void> {}
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma("busy_timeout = " + workerData.busyTimeoutMs);
db.pragma("synchronous = NORMAL");
const update = db.prepare(workerData.updateSql);
const insert = db.prepare(workerData.insertSql);
const commit = db.transaction((rows) => {
  const changed = new Uint8Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const [id, at, json, hash, history] = rows[i];
    if (update.run(at, json, hash, id).changes === 1) {
      changed[i] = 1;
      if (history) insert.run(id, at, json);
    }
  }
  return changed;
});
parentPort.on("message", (m) => {
  if (m.close) {
    db.close();
    parentPort.postMessage({ closed: true });
    return;
  }
  try {
    parentPort.postMessage({ seq: m.seq, changed: commit(m.rows) });
  } catch (err) {
    parentPort.postMessage({ seq: m.seq, error: String((err && err.message) || err) });
  }
});
`;

/** Writes in a worker thread with its own connection; see the file comment. */
export class ThreadHealthWriter implements HealthWriter {
  readonly #worker: Worker;
  readonly #logger: Logger;
  readonly #pending = new Map<
    number,
    { resolve: (c: boolean[]) => void; reject: (e: unknown) => void }
  >();
  #seq = 0;
  #failed: Error | undefined;
  #closing: Promise<void> | undefined;

  constructor(db: Db, logger: Logger) {
    if (db.memory) throw new TypeError("a worker thread cannot open an in-memory database");
    this.#logger = logger;
    this.#worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        driver: createRequire(import.meta.url).resolve("better-sqlite3"),
        path: db.name,
        busyTimeoutMs: DEFAULT_BUSY_TIMEOUT_MS,
        updateSql: UPDATE_SQL,
        insertSql: INSERT_SQL,
      },
    });
    this.#worker.on(
      "message",
      (m: { seq: number; changed?: Uint8Array; error?: string; closed?: boolean }) => {
        if (m.closed) return;
        const p = this.#pending.get(m.seq);
        this.#pending.delete(m.seq);
        if (!p) return;
        if (m.error !== undefined)
          p.reject(new NstanceError("unavailable", `health write failed: ${m.error}`));
        else p.resolve(Array.from(m.changed ?? [], (c) => c === 1));
      },
    );
    const fail = (err: Error) => {
      this.#failed ??= err;
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
    };
    this.#worker.on("error", (err) => {
      this.#logger.error("Health writer thread failed", { err: errorMessage(err) });
      fail(err);
    });
    this.#worker.on("exit", (code) => {
      if (!this.#closing) fail(new Error(`health writer thread exited with code ${code}`));
    });
  }

  /** True once the thread has failed; the owner should switch to an inline writer. */
  get failed(): boolean {
    return this.#failed !== undefined;
  }

  write(rows: readonly HealthRow[]): Promise<boolean[]> {
    if (this.#failed) return Promise.reject(this.#failed);
    if (this.#closing) return Promise.reject(new Error("health writer is closed"));
    const seq = ++this.#seq;
    return new Promise((resolve, reject) => {
      this.#pending.set(seq, { resolve, reject });
      this.#worker.postMessage({ seq, rows });
    });
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      const outstanding = [...this.#pending.values()].map(
        (p) =>
          new Promise<void>((done) => {
            const { resolve, reject } = p;
            p.resolve = (c) => {
              resolve(c);
              done();
            };
            p.reject = (e) => {
              reject(e);
              done();
            };
          }),
      );
      await Promise.all(outstanding);
      if (!this.#failed) {
        const closed = new Promise<void>((done) => {
          const onMessage = (m: { closed?: boolean }) => {
            if (m.closed) {
              this.#worker.off("message", onMessage);
              done();
            }
          };
          this.#worker.on("message", onMessage);
          this.#worker.once("exit", () => done());
        });
        this.#worker.postMessage({ close: true });
        await closed;
      }
      await this.#worker.terminate();
    })();
    return this.#closing;
  }
}
