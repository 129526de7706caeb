// SPDX-License-Identifier: Apache-2.0
/**
 * Garbage collection (reference §5.8), a leader-only loop on `garbage_collection.interval`:
 *
 * 1. Instances whose agent never registered within `registration_timeout` (their nonce has
 *    expired, so they never will) are deleted, including stale pre-inserts that never reached the
 *    provider. Deletion goes through the reconciler, which backfills the group.
 * 2. Instances deleted longer than `deleted_record_retention` ago lose their storage record, then
 *    their SQLite row and decision history.
 *
 * Health-based checks (stale reports, cached unhealthy provider states) belong to the health
 * sweep (issue 7), not here. Each step is term-fenced.
 */
import type { Db } from "../../db/database.js";
import {
  listDeletedBefore,
  listUnregisteredBefore,
  purgeInstance,
} from "../../db/instance-lifecycle.js";
import type { TermFence } from "../../election/term-fence.js";
import { errorMessage } from "../../shared/errors.js";
import type { Logger } from "../../shared/logger.js";
import type { ObjectStorage } from "../../storage/object-storage.js";
import { instanceRecordKey } from "../api/registration/instance-record.js";
import type { LeaderContext, LeaderLoop } from "../leader-work.js";

/** The GC timings in force (`shard.garbage_collection`, in ms). */
export interface GarbageCollectionSettings {
  intervalMs: number;
  registrationTimeoutMs: number;
  deletedRecordRetentionMs: number;
}

/** Deletes one instance now; the reconciler's `deleteInstance`. */
export type GcDeleteInstance = (
  instanceId: string,
  opts: { reason: string; evidence?: Record<string, unknown> },
  signal?: AbortSignal,
) => Promise<unknown>;

/** Options for {@link GarbageCollector}. */
export interface GarbageCollectorOptions {
  db: Db;
  /** The bucket (unscoped). */
  storage: ObjectStorage;
  prefix: string;
  fence: TermFence;
  /** Read at every pass, so a config refresh applies at the next one. */
  settings: () => GarbageCollectionSettings;
  deleteInstance: GcDeleteInstance;
  logger: Logger;
  now?: () => number;
}

/** What one pass did. */
export interface GcResult {
  /** Instances deleted because they never registered (with or without a provider ID). */
  unregisteredDeleted: number;
  /** Deleted instances whose record and row were purged. */
  purged: number;
  /** Steps that failed (retried at the next pass). */
  failures: number;
}

/** The garbage collection loop; run it with `runLeaderLoops`, or call {@link runOnce}. */
export class GarbageCollector implements LeaderLoop {
  readonly name = "garbage-collection";
  readonly #o: GarbageCollectorOptions;
  readonly #now: () => number;
  readonly #logger: Logger;

  constructor(opts: GarbageCollectorOptions) {
    for (const k of ["db", "storage", "fence", "settings", "deleteInstance"] as const) {
      if (!opts[k]) throw new TypeError(`${k} is required`);
    }
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.#logger = opts.logger.child({ subsystem: "gc" });
  }

  /** `garbage_collection.interval` in force. */
  get intervalMs(): number {
    return this.#o.settings().intervalMs;
  }

  /** One pass under the context's term (LeaderLoop). */
  async run(ctx: LeaderContext): Promise<void> {
    await this.runOnce(ctx.term, ctx.signal);
  }

  /** One pass under `term`; returns what it did. Throws StaleTermError when the term ended. */
  async runOnce(term: number, signal?: AbortSignal): Promise<GcResult> {
    const { db, fence } = this.#o;
    fence.assertCurrent(term, "garbage collection");
    const settings = this.#o.settings();
    const result: GcResult = { unregisteredDeleted: 0, purged: 0, failures: 0 };
    const now = this.#now();

    for (const c of listUnregisteredBefore(db, now - settings.registrationTimeoutMs)) {
      fence.assertCurrent(term, "garbage collection");
      const reason = c.providerId === undefined ? "stale-pre-insert" : "registration-timeout";
      try {
        await this.#o.deleteInstance(
          c.id,
          {
            reason,
            evidence: {
              issued_at: new Date(c.issuedAt).toISOString(),
              registration_timeout_ms: settings.registrationTimeoutMs,
            },
          },
          signal,
        );
        result.unregisteredDeleted++;
      } catch (err) {
        result.failures++;
        this.#logger.warn("Cannot delete an instance that never registered", {
          instance_id: c.id,
          reason,
          err: errorMessage(err),
        });
      }
    }

    const storage = fence.guardStorage(this.#o.storage, term);
    for (const c of listDeletedBefore(db, now - settings.deletedRecordRetentionMs)) {
      fence.assertCurrent(term, "garbage collection");
      try {
        await storage.delete(instanceRecordKey(this.#o.prefix, c.tenant, c.id), signal);
        purgeInstance(db, c.id);
        result.purged++;
      } catch (err) {
        result.failures++;
        this.#logger.warn("Cannot purge a deleted instance's record", {
          instance_id: c.id,
          err: errorMessage(err),
        });
      }
    }
    if (result.unregisteredDeleted + result.purged + result.failures > 0) {
      this.#logger.info("Garbage collection pass", {
        term,
        unregistered_deleted: result.unregisteredDeleted,
        purged: result.purged,
        failures: result.failures,
      });
    }
    return result;
  }
}
