// SPDX-License-Identifier: Apache-2.0
// The local-fleet tests' history check (checkFleetHistory) must catch each invariant's breach:
// histories written by hand, one clean and one broken per invariant.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  checkFleetHistory,
  FLEET_GROUP,
  FLEET_TENANT,
  type FleetDecision,
  type FleetRow,
} from "./local-fleet-fixture.js";

const row = (id: string, createdAt: number, more: Partial<FleetRow> = {}): FleetRow => ({
  id,
  tenant: FLEET_TENANT,
  group: FLEET_GROUP,
  onDemand: false,
  createdAt,
  registeredAt: createdAt + 1,
  ...more,
});
const created = (id: string, at: number): FleetDecision => ({
  instanceId: id,
  at,
  decision: "created",
  reason: "scale-up",
  evidence: {},
});
const drift = (at: number, deletedAt: number, replacedBy: string): Partial<FleetRow> => ({
  drainStartedAt: at,
  drainReason: "config-drift",
  deletedAt,
  replacedBy,
});

/** Three instances rotated one at a time: a1→b1 (10..20), a2→b2 (20..30), a3→b3 (30..40). */
function rotation(): { rows: FleetRow[]; decisions: FleetDecision[] } {
  const rows = [
    row("a1", 0, drift(15, 20, "b1")),
    row("a2", 0, drift(25, 30, "b2")),
    row("a3", 0, drift(35, 40, "b3")),
    row("b1", 10),
    row("b2", 20),
    row("b3", 30),
  ];
  return { rows, decisions: rows.map((r) => created(r.id, r.createdAt + 1)) };
}

describe("checkFleetHistory", () => {
  it("accepts a rotation one at a time with size + 1", () => {
    assert.deepEqual(checkFleetHistory({ ...rotation(), sizes: [{ at: 0, size: 3 }] }), []);
  });

  it("finds size + 2 when the next rotation starts before the last one's delete finished", () => {
    const h = rotation();
    // b2 created at 20, but a1 was deleted only at 21: a1, a2, a3, b1, b2 alive at once.
    h.rows[0] = row("a1", 0, drift(15, 21, "b1"));
    const v = checkFleetHistory({ ...h, sizes: [{ at: 0, size: 3 }] });
    assert.equal(v.length, 1, v.join("\n"));
    assert.match(v[0]!, /5 managed instances alive when b2 was created \(size 3\)/);
  });

  it("does not count instances leaving for scale-down, from the size change on", () => {
    const rows = [0, 1, 2, 3, 4].map((i) =>
      row(
        `s${i}`,
        i,
        i < 4 ? { drainStartedAt: 52, drainReason: "scale-down", deletedAt: 60 } : {},
      ),
    );
    // A replacement made after the scale-down to 1 (size + 1 = 2 with the survivor).
    rows.push(row("late", 55));
    const sizes = [
      { at: 0, size: 5 },
      { at: 50, size: 1 },
    ];
    assert.deepEqual(checkFleetHistory({ rows, decisions: [], sizes }), []);
    // Two more before the size change (deleted before it): 7 > 5 + 1.
    rows.push(row("extra1", 5, { deletedAt: 40 }), row("extra2", 6, { deletedAt: 40 }));
    const v = checkFleetHistory({ rows, decisions: [], sizes });
    assert.equal(v.length, 1, v.join("\n"));
    assert.match(v[0]!, /7 managed instances alive when extra2 was created \(size 5\)/);
  });

  it("finds two rotations draining at once", () => {
    const h = rotation();
    h.rows[1] = row("a2", 0, drift(18, 30, "b2"));
    h.rows[4] = row("b2", 10);
    const v = checkFleetHistory({ ...h, sizes: [{ at: 0, size: 3 }] });
    assert.ok(
      v.some((x) =>
        /rotations of a1 \(config-drift\) and a2 \(config-drift\) drained at once/.test(x),
      ),
      v.join("\n"),
    );
  });

  it("finds a deletion before its replacement existed, and a rotation without one", () => {
    const h = rotation();
    h.rows[3] = row("b1", 25);
    h.rows[2] = row("a3", 0, { drainStartedAt: 35, drainReason: "config-drift", deletedAt: 40 });
    const v = checkFleetHistory({ ...h, sizes: [{ at: 0, size: 3 }] });
    assert.ok(v.includes("a1 deleted before its replacement b1 was created"), v.join("\n"));
    assert.ok(v.includes("a3 left for config-drift without a replacement"), v.join("\n"));
  });

  it("finds a drain begun before the provider created the replacement", () => {
    const h = rotation();
    h.decisions = h.decisions.map((d) => (d.instanceId === "b3" ? created("b3", 36) : d));
    const v = checkFleetHistory({ ...h, sizes: [{ at: 0, size: 3 }] });
    assert.deepEqual(v, [
      "a3 left for config-drift before the provider created its replacement b3",
    ]);
  });

  it("ignores other groups and on-demand instances", () => {
    const h = rotation();
    h.rows.push(row("od", 12, { onDemand: true }), row("other", 12, { group: "api" }));
    assert.deepEqual(checkFleetHistory({ ...h, sizes: [{ at: 0, size: 3 }] }), []);
  });
});
