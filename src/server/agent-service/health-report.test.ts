// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { HealthReportRequest } from "../../protocol/gen/nstance/v1/agent.js";
import {
  HEALTH_REPORT_LIMITS,
  healthReportJson,
  healthReportProblem,
  reportedState,
  reportedStateFromJson,
} from "./health-report.js";

const w = {
  cpuUsage: 1,
  memoryUsage: 2,
  networkBytesSent: 3,
  networkBytesReceived: 4,
  diskUsed: 5,
};
const at = new Date("2024-01-01T00:00:00Z");
const base = (): HealthReportRequest => ({
  version: "1.0.0",
  instanceId: "knc0000000001r010000000000000",
  count: 1234,
  timestamp: at,
  started: at,
  windowStart: at,
  windowEnd: at,
  uptime: 262215,
  oneMinute: w,
  fiveMinutes: w,
  fifteenMinutes: w,
  files: {
    "ca.crt": { status: { $case: "lastModified", value: at } },
    "kubelet.key": { status: { $case: "empty", value: true } },
    "failed.crt": { status: { $case: "error", value: "permission denied" } },
  },
  terminationNotice: undefined,
  configHash: "sha256:abc123",
  patchError: "",
});

describe("healthReportProblem", () => {
  it("accepts the seed payload", () => assert.equal(healthReportProblem(base()), undefined));

  const cases: Array<[string, (r: HealthReportRequest) => void, RegExp]> = [
    ["empty instance_id", (r) => (r.instanceId = ""), /instance_id is required/],
    ["long instance_id", (r) => (r.instanceId = "x".repeat(65)), /instance_id is longer/],
    [
      "NaN metric",
      (r) => (r.fiveMinutes = { ...w, cpuUsage: Number.NaN }),
      /five_minutes\.cpuUsage/,
    ],
    ["negative metric", (r) => (r.oneMinute = { ...w, diskUsed: -1 }), /one_minute\.diskUsed/],
    [
      "too many files",
      (r) => {
        r.files = Object.fromEntries(
          Array.from({ length: HEALTH_REPORT_LIMITS.files + 1 }, (_, i) => [
            `f${i}`,
            { status: undefined },
          ]),
        );
      },
      /more than 1024 entries/,
    ],
    [
      "path in file name",
      (r) => (r.files = { "../etc/passwd": { status: undefined } }),
      /invalid file name/,
    ],
    ["control char in hash", (r) => (r.configHash = "sha256:\n"), /config_hash/],
    [
      "huge error",
      (r) => (r.files = { a: { status: { $case: "error", value: "e".repeat(5000) } } }),
      /files\[a\]\.error/,
    ],
    ["invalid time", (r) => (r.timestamp = new Date(Number.NaN)), /timestamp is not a valid time/],
    ["negative count", (r) => (r.count = -1), /count/],
  ];
  for (const [name, edit, match] of cases) {
    it(`refuses ${name}`, () => {
      const r = base();
      edit(r);
      assert.match(healthReportProblem(r) ?? "", match);
    });
  }
});

describe("health report JSON", () => {
  it("uses the seed's field names and file status strings", () => {
    const json = JSON.parse(healthReportJson(base(), at.getTime())) as Record<string, unknown>;
    assert.equal(json.instance_id, "knc0000000001r010000000000000");
    assert.equal(json.window_end, "2024-01-01T00:00:00.000Z");
    assert.deepEqual(json.one_minute, {
      cpu_usage: 1,
      memory_usage: 2,
      network_bytes_sent: 3,
      network_bytes_received: 4,
      disk_used: 5,
    });
    assert.deepEqual(json.files, {
      "ca.crt": "2024-01-01T00:00:00.000Z",
      "kubelet.key": "",
      "failed.crt": "error: permission denied",
    });
    assert.equal(json.config_hash, "sha256:abc123");
    assert.equal("termination_notice" in json, false);
  });

  it("round-trips the delivery state through the stored JSON", () => {
    const r = base();
    const back = reportedStateFromJson(healthReportJson(r, 0));
    assert.deepEqual(back, reportedState(r));
    assert.equal(reportedStateFromJson("{not json"), undefined);
    assert.equal(reportedStateFromJson(undefined), undefined);
  });
});
