// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type CheckFacts, type CheckVerdict, judgeCheck } from "./check-verdict.js";

const NOW = 1_000_000;
const base: CheckFacts = {
  providerStatus: "running",
  lastReportAt: NOW - 5_000,
  silentSince: NOW - 5_000,
  since: NOW - 1_000,
  reportIntervalMs: 10_000,
  missedReports: 3,
  now: NOW,
};

describe("judgeCheck", () => {
  const cases: Array<{ name: string; facts: Partial<CheckFacts>; want: CheckVerdict }> = [
    {
      name: "not found: gone, even with a fresh report",
      facts: { providerStatus: undefined, lastReportAt: NOW },
      want: { kind: "gone", reason: "not-found" },
    },
    ...(["stopping", "stopped", "suspended", "deleting", "deleted", "repairing"] as const).map(
      (status) => ({
        name: `${status}: gone`,
        facts: { providerStatus: status },
        want: { kind: "gone", reason: status } as CheckVerdict,
      }),
    ),
    {
      name: "running and reported after the watch began: healthy",
      facts: { lastReportAt: NOW - 500 },
      want: { kind: "healthy" },
    },
    {
      name: "pending counts as running",
      facts: { providerStatus: "pending", lastReportAt: NOW - 500 },
      want: { kind: "healthy" },
    },
    {
      name: "running, silent 5 s of 3 × 10 s: watch until the bound",
      facts: {},
      want: { kind: "watch", decideAt: NOW - 5_000 + 30_000 },
    },
    {
      name: "unknown status, silent exactly 3 intervals: silent",
      facts: { providerStatus: "unknown", lastReportAt: NOW - 30_000, silentSince: NOW - 30_000 },
      want: { kind: "silent", reason: "missed-reports", missed: 3 },
    },
    {
      name: "running, silent 45 s: 4 missed",
      facts: { lastReportAt: NOW - 45_000, silentSince: NOW - 45_000 },
      want: { kind: "silent", reason: "missed-reports", missed: 4 },
    },
    {
      name: "a reconnect grace pushes the bound out",
      facts: { lastReportAt: NOW - 45_000, silentSince: NOW - 2_000 },
      want: { kind: "watch", decideAt: NOW - 2_000 + 30_000 },
    },
    {
      name: "never reported: silence counts from the watch",
      facts: { lastReportAt: undefined, silentSince: NOW - 1_000, missedReports: 1 },
      want: { kind: "watch", decideAt: NOW - 1_000 + 10_000 },
    },
    {
      name: "missed_reports 0 behaves as 1",
      facts: { missedReports: 0, lastReportAt: NOW - 12_000, silentSince: NOW - 12_000 },
      want: { kind: "silent", reason: "missed-reports", missed: 1 },
    },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      assert.deepEqual(judgeCheck({ ...base, ...tc.facts }), tc.want);
    });
  }
});
