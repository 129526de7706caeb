// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { openDatabase } from "../../db/database.js";
import { recordDecision } from "../../db/decisions-table.js";
import { listInstanceDecisions } from "../../db/instances-table.js";
import { pruneDecisions } from "./decision-retention.js";

describe("pruneDecisions", () => {
  it("deletes decisions older than the retention and keeps the newest per instance", () => {
    const db = openDatabase({ path: ":memory:" });
    try {
      for (let i = 0; i < 10; i++) {
        recordDecision(db, { instanceId: "a", decision: "created", reason: `r${i}`, at: 1000 + i });
      }
      for (let i = 0; i < 3; i++) {
        recordDecision(db, { instanceId: "b", decision: "created", reason: `r${i}`, at: 100 + i });
      }
      recordDecision(db, { instanceId: "b", decision: "deleted", reason: "new", at: 5000 });

      assert.deepEqual(pruneDecisions(db, { before: 1000, maxPerInstance: 4 }), {
        byAge: 3,
        byCount: 6,
      });
      assert.deepEqual(
        listInstanceDecisions(db, "a").map((d) => d.reason),
        ["r6", "r7", "r8", "r9"],
        "the newest four of a",
      );
      assert.deepEqual(
        listInstanceDecisions(db, "b").map((d) => d.reason),
        ["new"],
      );
      assert.deepEqual(pruneDecisions(db, { before: 1000, maxPerInstance: 4 }), {
        byAge: 0,
        byCount: 0,
      });
    } finally {
      db.close();
    }
  });
});
