// SPDX-License-Identifier: Apache-2.0
/**
 * Keeps the decision history bounded: decisions older than `failure_detection.decision_retention`
 * go, and an instance keeps at most {@link DEFAULT_DECISIONS_PER_INSTANCE} of its newest (an
 * instance whose agent flaps for weeks must not grow without end). The history of a deleted
 * instance goes with its row when garbage collection purges it.
 */
import type { Db } from "../../db/database.js";

/** Decisions kept per instance, newest first. */
export const DEFAULT_DECISIONS_PER_INSTANCE = 500;

/** Bounds of {@link pruneDecisions}. */
export interface DecisionRetention {
  /** Decisions recorded before this (unix ms) are deleted. */
  before: number;
  /** Decisions kept per instance. Defaults to {@link DEFAULT_DECISIONS_PER_INSTANCE}. */
  maxPerInstance?: number;
}

/** Deletes decisions beyond the bounds; returns how many went for each reason. */
export function pruneDecisions(db: Db, r: DecisionRetention): { byAge: number; byCount: number } {
  const max = r.maxPerInstance ?? DEFAULT_DECISIONS_PER_INSTANCE;
  return db.transaction(() => {
    const byAge = db.prepare("DELETE FROM decisions WHERE at < ?").run(r.before).changes;
    const crowded = db
      .prepare("SELECT instance_id FROM decisions GROUP BY instance_id HAVING COUNT(*) > ?")
      .all(max) as Array<{ instance_id: string }>;
    const trim = db.prepare(
      `DELETE FROM decisions WHERE instance_id = ? AND seq <= (
         SELECT seq FROM decisions WHERE instance_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)`,
    );
    let byCount = 0;
    for (const c of crowded) byCount += trim.run(c.instance_id, c.instance_id, max).changes;
    return { byAge, byCount };
  })();
}
