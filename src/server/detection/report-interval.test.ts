// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { inferReportIntervalMs, type ReportSample, reportSample } from "./report-interval.js";

const RUN = "2024-01-01T00:00:00.000Z";
const at = (count: number, ms: number, started = RUN): ReportSample => ({
  started,
  count,
  at: Date.parse(RUN) + ms,
});

describe("reportSample", () => {
  it("reads started, count and timestamp of a stored report", () => {
    assert.deepEqual(
      reportSample({ started: RUN, count: 7, timestamp: "2024-01-01T00:01:00.000Z", files: {} }),
      { started: RUN, count: 7, at: Date.parse("2024-01-01T00:01:00.000Z") },
    );
  });
  for (const bad of [null, 3, {}, { started: RUN, count: "7", timestamp: RUN }, { count: 1 }]) {
    it(`refuses ${JSON.stringify(bad)}`, () => assert.equal(reportSample(bad), undefined));
  }
});

describe("inferReportIntervalMs", () => {
  const cases: Array<{
    name: string;
    latest: ReportSample | undefined;
    earlier: ReportSample[];
    want: number | undefined;
  }> = [
    { name: "no latest report", latest: undefined, earlier: [at(1, 0)], want: undefined },
    { name: "no earlier report", latest: at(5, 240_000), earlier: [], want: undefined },
    {
      name: "the widest span of the same run",
      latest: at(11, 600_000),
      earlier: [at(10, 540_000), at(2, 60_000), at(6, 300_000)],
      want: 60_000,
    },
    {
      name: "reports of an earlier run are ignored",
      latest: at(3, 2_000, "2024-01-02T00:00:00.000Z"),
      earlier: [at(40, 0)],
      want: undefined,
    },
    {
      name: "an early report (after a file patch) shortens the estimate a little",
      latest: at(4, 120_000),
      earlier: [at(1, 0)],
      want: 40_000,
    },
    {
      name: "the latest report itself in the history is skipped",
      latest: at(4, 3_000),
      earlier: [at(4, 3_000), at(1, 0)],
      want: 1_000,
    },
  ];
  for (const tc of cases) {
    it(tc.name, () => assert.equal(inferReportIntervalMs(tc.latest, tc.earlier), tc.want));
  }
});
