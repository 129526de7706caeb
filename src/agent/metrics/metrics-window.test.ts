// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { MachineSample } from "./machine-sample.js";
import {
  aggregateWindow,
  EMPTY_WINDOW,
  FIFTEEN_MINUTES_MS,
  type MetricsWindow,
  ONE_MINUTE_MS,
  summarizeMetrics,
} from "./metrics-window.js";

/** A sample at `sec` seconds with cumulative idle/total ticks and rx/tx bytes. */
function s(
  sec: number,
  idle: number,
  total: number,
  rx: number,
  tx: number,
  memoryUsage = 50,
  diskUsed = 40,
): MachineSample {
  return {
    atMs: sec * 1000,
    cpu: { idleTicks: idle, totalTicks: total },
    network: { receivedBytes: rx, sentBytes: tx },
    memoryUsage,
    diskUsed,
  };
}

interface Case {
  name: string;
  samples: MachineSample[];
  windowMs: number;
  endSec: number;
  want: Partial<MetricsWindow>;
  fromSec: number;
}

const cases: Case[] = [
  {
    name: "two samples spanning the window: deltas and trapezoid averages",
    samples: [s(0, 0, 0, 0, 0, 40, 10), s(60, 25, 100, 5000, 700, 60, 20)],
    windowMs: ONE_MINUTE_MS,
    endSec: 60,
    want: {
      cpuUsage: 75,
      networkBytesReceived: 5000,
      networkBytesSent: 700,
      memoryUsage: 50,
      diskUsed: 15,
    },
    fromSec: 0,
  },
  {
    name: "input order does not matter",
    samples: [s(60, 25, 100, 5000, 700), s(0, 0, 0, 0, 0)],
    windowMs: ONE_MINUTE_MS,
    endSec: 60,
    want: { cpuUsage: 75, networkBytesReceived: 5000, networkBytesSent: 700 },
    fromSec: 0,
  },
  {
    name: "a segment straddling the window start is prorated by time",
    samples: [s(0, 0, 0, 0, 0), s(120, 60, 240, 1000, 2000)],
    windowMs: ONE_MINUTE_MS,
    endSec: 120,
    want: { cpuUsage: 75, networkBytesReceived: 500, networkBytesSent: 1000 },
    fromSec: 60,
  },
  {
    name: "a baseline exactly at the window start is used whole",
    samples: [s(0, 0, 0, 0, 0), s(30, 10, 100, 300, 300), s(90, 40, 200, 900, 600)],
    windowMs: ONE_MINUTE_MS,
    endSec: 90,
    want: { cpuUsage: 70, networkBytesReceived: 600, networkBytesSent: 300 },
    fromSec: 30,
  },
  {
    name: "a young agent covers less than the window",
    samples: [s(100, 0, 0, 0, 0), s(110, 10, 20, 10, 20)],
    windowMs: FIFTEEN_MINUTES_MS,
    endSec: 110,
    want: { cpuUsage: 50, networkBytesReceived: 10, networkBytesSent: 20 },
    fromSec: 100,
  },
  {
    name: "counters that go backwards count as zero for that segment",
    samples: [
      s(0, 0, 100, 100, 100),
      s(10, 5, 110, 200, 300),
      s(20, 0, 0, 50, 60),
      s(30, 5, 10, 150, 60),
    ],
    windowMs: ONE_MINUTE_MS,
    endSec: 30,
    want: { cpuUsage: 50, networkBytesReceived: 200, networkBytesSent: 200 },
    fromSec: 0,
  },
  {
    name: "memory is weighted by time",
    samples: [s(0, 0, 0, 0, 0, 10), s(10, 0, 10, 0, 0, 10), s(60, 0, 60, 0, 0, 60)],
    windowMs: ONE_MINUTE_MS,
    endSec: 60,
    want: { memoryUsage: 30.83, cpuUsage: 100 },
    fromSec: 0,
  },
  {
    name: "a single sample gives its gauges and no deltas",
    samples: [s(5, 10, 20, 30, 40, 33.333, 12)],
    windowMs: ONE_MINUTE_MS,
    endSec: 5,
    want: { cpuUsage: 0, networkBytesReceived: 0, memoryUsage: 33.33, diskUsed: 12 },
    fromSec: 5,
  },
  {
    name: "no samples",
    samples: [],
    windowMs: ONE_MINUTE_MS,
    endSec: 50,
    want: EMPTY_WINDOW,
    fromSec: 50,
  },
  {
    name: "only a sample before the window",
    samples: [s(0, 0, 0, 0, 0)],
    windowMs: ONE_MINUTE_MS,
    endSec: 200,
    want: EMPTY_WINDOW,
    fromSec: 200,
  },
  {
    name: "samples after the end are ignored",
    samples: [s(0, 0, 0, 0, 0), s(60, 50, 100, 10, 10), s(70, 50, 200, 1e6, 1e6)],
    windowMs: ONE_MINUTE_MS,
    endSec: 60,
    want: { cpuUsage: 50, networkBytesReceived: 10 },
    fromSec: 0,
  },
];

describe("aggregateWindow", () => {
  for (const tc of cases) {
    it(tc.name, () => {
      const got = aggregateWindow(tc.samples, tc.windowMs, tc.endSec * 1000);
      for (const [k, v] of Object.entries(tc.want)) {
        assert.equal(
          got.window[k as keyof MetricsWindow],
          v,
          `${k}: ${JSON.stringify(got.window)}`,
        );
      }
      assert.equal(got.fromMs, tc.fromSec * 1000);
      assert.equal(got.toMs, tc.endSec * 1000);
    });
  }
});

describe("summarizeMetrics", () => {
  it("sums bytes per window and keeps percentages comparable", () => {
    // 20 minutes of 5 s samples: CPU 25 % busy, 1000 B in and 10 B out per sample.
    const samples: MachineSample[] = [];
    for (let i = 0; i <= 240; i++)
      samples.push(s(i * 5, i * 75, i * 100, i * 1000, i * 10, 20 + (i % 2), 55));
    const end = 240 * 5 * 1000;
    const m = summarizeMetrics(samples, end);
    assert.equal(m.oneMinute.networkBytesReceived, 12_000);
    assert.equal(m.fiveMinutes.networkBytesReceived, 60_000);
    assert.equal(m.fifteenMinutes.networkBytesReceived, 180_000);
    assert.equal(m.fifteenMinutes.networkBytesSent, 1_800);
    for (const w of [m.oneMinute, m.fiveMinutes, m.fifteenMinutes]) {
      assert.equal(w.cpuUsage, 25);
      assert.equal(w.diskUsed, 55);
      assert.equal(w.memoryUsage, 20.5);
    }
    assert.equal(m.windowEndMs, end);
    assert.equal(m.windowStartMs, end - FIFTEEN_MINUTES_MS);
  });
});
