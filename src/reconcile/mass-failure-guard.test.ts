// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  DEFAULT_MASS_FAILURE_GUARD,
  isMassFailure,
  massFailureLimit,
} from "./mass-failure-guard.js";

describe("mass-failure guard", () => {
  it("the limit is the larger of the count floor and the share of the size", () => {
    const guard = { maxUnhealthyFraction: 0.25, maxUnhealthyCount: 2 };
    assert.equal(massFailureLimit(guard, 0), 2);
    assert.equal(massFailureLimit(guard, 4), 2);
    assert.equal(massFailureLimit(guard, 8), 2);
    assert.equal(massFailureLimit(guard, 12), 3);
    assert.equal(massFailureLimit(guard, 100), 25);
  });

  it("exactly at the limit still heals; one more trips it", () => {
    const guard = { maxUnhealthyFraction: 0.25, maxUnhealthyCount: 2 };
    assert.equal(isMassFailure(guard, 12, 3), false);
    assert.equal(isMassFailure(guard, 12, 4), true);
    assert.equal(isMassFailure(guard, 4, 2), false);
    assert.equal(isMassFailure(guard, 4, 3), true);
  });

  it("a fractional limit is not rounded: 1.5 of 3 heals one and trips on two", () => {
    assert.equal(massFailureLimit(DEFAULT_MASS_FAILURE_GUARD, 3), 1.5);
    assert.equal(isMassFailure(DEFAULT_MASS_FAILURE_GUARD, 3, 1), false);
    assert.equal(isMassFailure(DEFAULT_MASS_FAILURE_GUARD, 3, 2), true);
  });

  it("a guard of share 1 and an infinite count never trips", () => {
    const off = { maxUnhealthyFraction: 1, maxUnhealthyCount: Infinity };
    assert.equal(isMassFailure(off, 5, 5), false);
    assert.equal(isMassFailure(off, 0, 1000), false);
  });

  it("no unhealthy instance never trips, whatever the guard", () => {
    assert.equal(isMassFailure({ maxUnhealthyFraction: 0, maxUnhealthyCount: 0 }, 10, 0), false);
    assert.equal(isMassFailure({ maxUnhealthyFraction: 0, maxUnhealthyCount: 0 }, 10, 1), true);
  });
});
