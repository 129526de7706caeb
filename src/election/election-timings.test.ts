// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError } from "../shared/errors.js";
import {
  DEFAULT_ELECTION,
  defaultSafetyMarginMs,
  type ElectionTimings,
  electionTimingProblems,
  renewIntervalMs,
  validateElectionTimings,
} from "./election-timings.js";

describe("election timings", () => {
  it("defaults are valid and renew well inside the fence", () => {
    assert.deepEqual(electionTimingProblems(DEFAULT_ELECTION), []);
    assert.equal(renewIntervalMs(DEFAULT_ELECTION), 2000);
    assert.ok(
      renewIntervalMs(DEFAULT_ELECTION) <
        DEFAULT_ELECTION.leaderTimeoutMs - DEFAULT_ELECTION.safetyMarginMs,
    );
  });

  it("caps the default margin at a sixth of the timeout", () => {
    assert.equal(defaultSafetyMarginMs(6000), 1000);
    assert.equal(defaultSafetyMarginMs(60_000), 1000);
    assert.equal(defaultSafetyMarginMs(600), 100);
  });

  const base: ElectionTimings = { ...DEFAULT_ELECTION };
  const cases: Array<[string, Partial<ElectionTimings>, string[]]> = [
    [
      "reference timings with a margin",
      {
        frequentIntervalMs: 5000,
        infrequentIntervalMs: 30000,
        leaderTimeoutMs: 15000,
        safetyMarginMs: 2000,
      },
      [],
    ],
    [
      "dev timings",
      {
        frequentIntervalMs: 1000,
        infrequentIntervalMs: 5000,
        leaderTimeoutMs: 3000,
        safetyMarginMs: 500,
      },
      [],
    ],
    ["zero timeout", { leaderTimeoutMs: 0 }, ["leader_timeout"]],
    ["negative margin", { safetyMarginMs: -1 }, ["safety_margin"]],
    ["NaN frequent", { frequentIntervalMs: Number.NaN }, ["frequent_interval"]],
    ["infrequent below frequent", { infrequentIntervalMs: 1000 }, ["infrequent_interval"]],
    ["margin leaves no time to renew", { safetyMarginMs: 4000 }, ["safety_margin"]],
  ];
  for (const [name, patch, paths] of cases) {
    it(name, () => {
      const problems = electionTimingProblems({ ...base, ...patch });
      assert.deepEqual(
        problems.map((p) => p.path),
        paths,
      );
    });
  }

  it("validate throws one ConfigError naming the problems", () => {
    assert.throws(
      () => validateElectionTimings({ ...base, leaderTimeoutMs: -5, safetyMarginMs: 0 }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.problems.length === 2 &&
        /leader_timeout/.test(err.message) &&
        /safety_margin/.test(err.message),
    );
  });
});
