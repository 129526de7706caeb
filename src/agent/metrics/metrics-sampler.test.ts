// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { describe, it } from "node:test";
import { IllegalStateError } from "../../shared/errors.js";
import { silentLogger } from "../../shared/logger.js";
import type { MachineSample } from "./machine-sample.js";
import { MetricsSampler } from "./metrics-sampler.js";

/** A fake machine: every read advances CPU by 100 ticks (40 idle) and network by 1000/10 bytes. */
function fakeMachine(): {
  read: (nowMs: number) => Promise<MachineSample>;
  reads: number;
  fail: boolean;
} {
  const m = {
    reads: 0,
    fail: false,
    read: async (nowMs: number): Promise<MachineSample> => {
      if (m.fail) throw new Error("proc unreadable");
      const i = m.reads++;
      return {
        atMs: nowMs,
        cpu: { idleTicks: i * 40, totalTicks: i * 100 },
        network: { receivedBytes: i * 1000, sentBytes: i * 10 },
        memoryUsage: 30,
        diskUsed: 70,
      };
    },
  };
  return m;
}

describe("MetricsSampler", () => {
  it("aggregates buffered samples plus a fresh one at report time", async () => {
    let now = 1_000_000;
    const machine = fakeMachine();
    const sampler = new MetricsSampler({
      logger: silentLogger,
      sampleIntervalMs: 5_000,
      startedAt: new Date(999_000),
      readSample: machine.read,
      readUptime: async () => 4321,
      now: () => now,
    });
    await sampler.sampleNow();
    for (let i = 0; i < 11; i++) {
      now += 5_000;
      await sampler.sampleNow();
    }
    now += 5_000;
    const r = await sampler.report();
    assert.equal(sampler.sampleCount, 12, "the report's fresh sample is not buffered");
    assert.equal(r.oneMinute.cpuUsage, 60);
    assert.equal(r.oneMinute.networkBytesReceived, 12_000);
    assert.equal(r.oneMinute.networkBytesSent, 120);
    assert.equal(r.fifteenMinutes.networkBytesReceived, 12_000);
    assert.equal(r.oneMinute.memoryUsage, 30);
    assert.equal(r.oneMinute.diskUsed, 70);
    assert.equal(r.windowEnd.getTime(), now);
    assert.equal(r.windowStart.getTime(), 1_000_000);
    assert.equal(r.uptimeSeconds, 4321);
    assert.equal(r.started.getTime(), 999_000);
  });

  it("keeps only fifteen minutes of samples", async () => {
    let now = 0;
    const machine = fakeMachine();
    const sampler = new MetricsSampler({
      logger: silentLogger,
      sampleIntervalMs: 60_000,
      readSample: machine.read,
      readUptime: async () => 1,
      now: () => now,
    });
    for (let i = 0; i < 40; i++) {
      await sampler.sampleNow();
      now += 60_000;
    }
    assert.equal(sampler.sampleCount, 17);
    const r = await sampler.report();
    assert.equal(r.windowStart.getTime(), now - 15 * 60_000);
    assert.equal(r.fifteenMinutes.networkBytesReceived, 15_000);
  });

  it("survives unreadable metrics and reports from the buffer", async () => {
    let now = 0;
    const machine = fakeMachine();
    const sampler = new MetricsSampler({
      logger: silentLogger,
      readSample: machine.read,
      readUptime: async () => {
        throw new Error("no uptime");
      },
      now: () => now,
    });
    machine.fail = true;
    await sampler.sampleNow();
    await assert.rejects(sampler.report(), /proc unreadable/);
    machine.fail = false;
    await sampler.sampleNow();
    now += 5_000;
    await sampler.sampleNow();
    machine.fail = true;
    now += 5_000;
    const r = await sampler.report();
    assert.equal(r.windowEnd.getTime(), 5_000, "ends at the last good sample");
    assert.equal(r.oneMinute.cpuUsage, 60);
    assert.equal(r.uptimeSeconds, 0);
  });

  it("samples in the background until stopped", async () => {
    const machine = fakeMachine();
    const sampler = new MetricsSampler({
      logger: silentLogger,
      sampleIntervalMs: 10,
      readSample: machine.read,
    });
    await sampler.start();
    assert.equal(sampler.state, "running");
    await assert.rejects(sampler.start(), IllegalStateError);
    const deadline = Date.now() + 5_000;
    while (sampler.sampleCount < 4 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    await sampler.stop();
    await sampler.stop();
    assert.equal(sampler.state, "stopped");
    assert.ok(sampler.sampleCount >= 4);
    const count = machine.reads;
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(machine.reads, count, "no reads after stop");
  });

  it("reports this machine's real metrics", { skip: !existsSync("/proc/stat") }, async () => {
    const sampler = new MetricsSampler({ logger: silentLogger, sampleIntervalMs: 20 });
    await sampler.start();
    await new Promise((r) => setTimeout(r, 120));
    const r = await sampler.report();
    await sampler.stop();
    for (const w of [r.oneMinute, r.fiveMinutes, r.fifteenMinutes]) {
      assert.ok(w.cpuUsage >= 0 && w.cpuUsage <= 100, `cpu ${w.cpuUsage}`);
      assert.ok(w.memoryUsage > 0 && w.memoryUsage < 100, `memory ${w.memoryUsage}`);
      assert.ok(w.diskUsed > 0 && w.diskUsed <= 100, `disk ${w.diskUsed}`);
      assert.ok(Number.isInteger(w.networkBytesReceived) && w.networkBytesReceived >= 0);
    }
    assert.ok(r.uptimeSeconds > 0);
    assert.ok(r.windowStart <= r.windowEnd);
  });
});
