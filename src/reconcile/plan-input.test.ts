// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LiveInstance } from "../db/instance-lifecycle.js";
import { planStatusOf, toPlanInstance } from "./plan-input.js";

const base: LiveInstance = {
  id: "web1",
  tenant: "default",
  groupKey: "web",
  onDemand: false,
  providerId: undefined,
  providerStatus: undefined,
  registeredAt: undefined,
  infraConfigHash: "h1",
  unhealthyAt: undefined,
  unhealthyReason: undefined,
  unhealthySkipDrain: false,
  drainStartedAt: undefined,
  drainDeadlineAt: undefined,
  drainReason: undefined,
  drainAckedAt: undefined,
  spotNoticeAt: undefined,
  spotDeadlineAt: undefined,
  replacedBy: undefined,
  createdAt: 1000,
};

describe("plan input", () => {
  it("derives the planner's status", () => {
    const table: Array<[Partial<LiveInstance>, string]> = [
      [{}, "pending"],
      [{ providerStatus: "pending" }, "pending"],
      [{ providerStatus: "running" }, "running"],
      [{ providerStatus: "pending", registeredAt: 5 }, "running"],
      [{ providerStatus: "deleting", registeredAt: 5 }, "deleting"],
      [{ providerStatus: "deleted" }, "deleted"],
      [{ providerStatus: "stopped" }, "pending"],
    ];
    for (const [patch, want] of table)
      assert.equal(planStatusOf({ ...base, ...patch }), want, JSON.stringify(patch));
  });

  it("maps health, drain, spot notices and replacement links", () => {
    assert.deepEqual(toPlanInstance(base), {
      id: "web1",
      tenant: "default",
      group: "web",
      onDemand: false,
      createdAt: 1000,
      status: "pending",
      infraHash: "h1",
    });
    const p = toPlanInstance({
      ...base,
      providerId: "i-1",
      registeredAt: 1100,
      unhealthyAt: 2000,
      unhealthyReason: "not-found",
      unhealthySkipDrain: true,
      drainStartedAt: 2100,
      drainDeadlineAt: 3100,
      drainReason: "bogus",
      drainAckedAt: 2500,
      spotNoticeAt: 1900,
      spotDeadlineAt: 4000,
      replacedBy: "web2",
    });
    assert.deepEqual(p.unhealthy, { reason: "not-found", skipDrain: true });
    assert.deepEqual(p.drain, {
      startedAt: 2100,
      deadlineAt: 3100,
      reason: "unhealthy",
      ackedAt: 2500,
    });
    assert.deepEqual(p.spotNotice, { deadlineAt: 4000 });
    assert.equal(p.replacedBy, "web2");
    assert.equal(p.providerId, "i-1");
    assert.equal(p.status, "running");
  });
});
