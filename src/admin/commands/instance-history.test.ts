// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { InstanceDetails } from "../service/admin-service.js";
import { instanceHistoryJson, renderInstanceHistory } from "./instance-history.js";

const T0 = Date.parse("2026-01-01T00:00:00.000Z");
const details: InstanceDetails = {
  instanceId: "web06h0aaaaaaaaaaaaaaaaaaaaaa",
  tenant: "default",
  status: "deleted",
  providerInstanceId: "nstance-agent-web06h0aaaaaaaaaaaaaaaaaaaaaa",
  createdAt: new Date(T0),
  lastSeen: new Date(T0 + 5_000),
  history: [
    { at: new Date(T0), decision: "created", reason: "scale-up", evidence: {} },
    {
      at: new Date(T0 + 61_500),
      decision: "found_unhealthy",
      reason: "stopped",
      evidence: { provider_status: "stopped", last_report_age_ms: "1200" },
    },
    {
      at: new Date(T0 + 61_530),
      decision: "deleted",
      reason: "unhealthy",
      evidence: { skip_drain: "true" },
    },
  ],
};

describe("instance history output", () => {
  it("tells the story in order with the time since the first decision", () => {
    const text = renderInstanceHistory("local", details);
    const lines = text.split("\n");
    assert.match(text, /Instance:\s+web06h0a/);
    assert.match(text, /Status:\s+deleted/);
    const rows = lines.filter((l) => /^2026-/.test(l));
    assert.equal(rows.length, 3);
    assert.match(rows[0]!, /\+0s\s+created\s+scale-up/);
    assert.match(
      rows[1]!,
      /\+1m1\.5s\s+found_unhealthy\s+stopped\s+last_report_age_ms=1200, provider_status=stopped/,
    );
    assert.match(rows[2]!, /\+1m1\.53s\s+deleted\s+unhealthy\s+skip_drain=true/);
  });

  it("says so when nothing was recorded", () => {
    assert.match(
      renderInstanceHistory("local", { ...details, history: [] }),
      /no decisions recorded/,
    );
  });

  it("writes snake_case JSON, oldest first", () => {
    assert.deepEqual(instanceHistoryJson(details), {
      instance_id: details.instanceId,
      status: "deleted",
      history: [
        { at: "2026-01-01T00:00:00.000Z", decision: "created", reason: "scale-up", evidence: {} },
        {
          at: "2026-01-01T00:01:01.500Z",
          decision: "found_unhealthy",
          reason: "stopped",
          evidence: { provider_status: "stopped", last_report_age_ms: "1200" },
        },
        {
          at: "2026-01-01T00:01:01.530Z",
          decision: "deleted",
          reason: "unhealthy",
          evidence: { skip_drain: "true" },
        },
      ],
    });
  });
});
