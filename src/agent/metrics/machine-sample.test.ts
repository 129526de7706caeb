// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readMachineSample, readUptimeSeconds } from "./machine-sample.js";

describe("readMachineSample", () => {
  let dir = "";
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "nstance-proc-"));
    await mkdir(join(dir, "net"));
    await writeFile(join(dir, "stat"), "cpu  10 0 10 70 10 0 0 0 0 0\n");
    await writeFile(join(dir, "meminfo"), "MemTotal: 1000 kB\nMemAvailable: 250 kB\n");
    await writeFile(
      join(dir, "net", "dev"),
      "Inter-|\n face |\n  eth0: 5 0 0 0 0 0 0 0 7 0 0 0 0 0 0 0\n",
    );
    await writeFile(join(dir, "uptime"), "42.9 1.0\n");
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads fixture files", async () => {
    const s = await readMachineSample({ procDir: dir, diskPath: dir }, 1234);
    assert.equal(s.atMs, 1234);
    assert.deepEqual(s.cpu, { idleTicks: 80, totalTicks: 100 });
    assert.deepEqual(s.network, { receivedBytes: 5, sentBytes: 7 });
    assert.equal(s.memoryUsage, 75);
    assert.ok(s.diskUsed >= 0 && s.diskUsed <= 100);
    assert.equal(await readUptimeSeconds(dir), 42);
  });

  it("reads this machine's real /proc within sane ranges", {
    skip: !existsSync("/proc/stat"),
  }, async () => {
    const a = await readMachineSample({ diskPath: "/" });
    // Burn a little CPU so the second reading's counters move.
    const until = Date.now() + 50;
    while (Date.now() < until) Math.sqrt(Math.random());
    const b = await readMachineSample({ diskPath: "/" });
    assert.ok(a.cpu.totalTicks > 0);
    assert.ok(b.cpu.totalTicks >= a.cpu.totalTicks);
    assert.ok(a.cpu.idleTicks <= a.cpu.totalTicks);
    assert.ok(a.memoryUsage > 0 && a.memoryUsage < 100, `memory ${a.memoryUsage}`);
    assert.ok(a.diskUsed > 0 && a.diskUsed <= 100, `disk ${a.diskUsed}`);
    assert.ok(a.network.receivedBytes >= 0 && a.network.sentBytes >= 0);
    assert.ok(b.network.receivedBytes >= a.network.receivedBytes);
    const up = await readUptimeSeconds();
    assert.ok(up > 0 && up < 10 * 365 * 86400, `uptime ${up}`);
  });
});
