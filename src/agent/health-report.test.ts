// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { HealthReportRequest } from "../protocol/gen/nstance/v1/agent.js";
import { buildHealthReport, toFileStatusMessage } from "./health-report.js";

const window = (n: number) => ({
  cpuUsage: n,
  memoryUsage: n + 1,
  networkBytesSent: 1000 * n,
  networkBytesReceived: 2000 * n,
  diskUsed: n + 2,
});

describe("buildHealthReport", () => {
  it("carries the seed payload and survives the wire", () => {
    const started = new Date("2024-01-01T00:00:00Z");
    const report = buildHealthReport({
      version: "1.0.0",
      instanceId: "knc0000000001r010000000000000",
      count: 1234,
      timestamp: new Date("2024-01-01T00:15:00Z"),
      metrics: {
        oneMinute: window(15),
        fiveMinutes: window(12),
        fifteenMinutes: window(10),
        windowStart: started,
        windowEnd: new Date("2024-01-01T00:15:00Z"),
        uptimeSeconds: 262215,
        started,
      },
      files: new Map([
        ["ca.crt", { lastModified: started }],
        ["kubelet.key", { empty: true as const }],
        ["failed.crt", { error: "permission denied" }],
      ]),
      terminationNotice: { action: "terminate", deadline: new Date("2024-01-01T00:20:00Z") },
      configHash: "sha256:abc123",
      patchError: "",
    });
    const decoded = HealthReportRequest.decode(HealthReportRequest.encode(report).finish());
    assert.equal(decoded.version, "1.0.0");
    assert.equal(decoded.count, 1234);
    assert.equal(decoded.uptime, 262215);
    assert.deepEqual(decoded.started, started);
    assert.deepEqual(decoded.oneMinute, window(15));
    assert.deepEqual(decoded.fifteenMinutes, window(10));
    assert.deepEqual(decoded.files["ca.crt"], {
      status: { $case: "lastModified", value: started },
    });
    assert.deepEqual(decoded.files["kubelet.key"], { status: { $case: "empty", value: true } });
    assert.deepEqual(decoded.files["failed.crt"], {
      status: { $case: "error", value: "permission denied" },
    });
    assert.deepEqual(decoded.terminationNotice, {
      action: "terminate",
      deadline: new Date("2024-01-01T00:20:00Z"),
    });
    assert.equal(decoded.configHash, "sha256:abc123");
  });

  it("leaves termination_notice unset without a notice and passes patch_error through", () => {
    const at = new Date(0);
    const metrics = {
      oneMinute: window(0),
      fiveMinutes: window(0),
      fifteenMinutes: window(0),
      windowStart: at,
      windowEnd: at,
      uptimeSeconds: 1,
      started: at,
    };
    const report = buildHealthReport({
      version: "1.0.0",
      instanceId: "x",
      count: 1,
      timestamp: at,
      metrics,
      files: new Map(),
      terminationNotice: undefined,
      configHash: "",
      patchError: "patch rejected: bad",
    });
    assert.equal(report.terminationNotice, undefined);
    assert.equal(report.patchError, "patch rejected: bad");
    assert.deepEqual(toFileStatusMessage({ error: "x" }), {
      status: { $case: "error", value: "x" },
    });
  });
});
