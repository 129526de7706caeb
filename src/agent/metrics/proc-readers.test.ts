// SPDX-License-Identifier: Apache-2.0
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { diskUsedPercent } from "./disk-usage.js";
import { memoryUsagePercent, parseMeminfo } from "./proc-meminfo.js";
import { parseNetDev } from "./proc-net-dev.js";
import { cpuUsagePercent, parseProcStat } from "./proc-stat.js";
import { parseUptimeSeconds } from "./proc-uptime.js";

const STAT = `cpu  27446 10 3530 228089 337 5 228 91 7 0
cpu0 12412 0 1515 115736 68 0 103 46 0 0
cpu1 15033 0 2014 112352 268 0 124 44 0 0
intr 1234 0 0
ctxt 5678
`;

const MEMINFO = `MemTotal:       16000000 kB
MemFree:         2000000 kB
MemAvailable:    4000000 kB
Buffers:          100000 kB
Cached:          3000000 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
`;

const NET_DEV = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:   19744      81    0    0    0     0          0         0    19744      81    0    0    0     0       0          0
  eth0: 333116506   11933    0    0    0     0          0         0  1073571    8936    0    0    0     0       0          0
veth1234567890abc:1000 5 0 0 0 0 0 0 2000 6 0 0 0 0 0 0
`;

describe("parseProcStat", () => {
  it("sums the aggregate cpu line without guest time", () => {
    const t = parseProcStat(STAT);
    assert.equal(t.idleTicks, 228089 + 337);
    assert.equal(t.totalTicks, 27446 + 10 + 3530 + 228089 + 337 + 5 + 228 + 91);
  });
  it("accepts old kernels with only four fields", () => {
    assert.deepEqual(parseProcStat("cpu 1 2 3 4\n"), { idleTicks: 4, totalTicks: 10 });
  });
  for (const bad of ["", "cpu0 1 2 3 4\n", "cpu  1 2 x 4\n", "cpu 1 2\n"]) {
    it(`rejects ${JSON.stringify(bad)}`, () =>
      assert.throws(() => parseProcStat(bad), /\/proc\/stat/));
  }
});

describe("cpuUsagePercent", () => {
  const cases: Array<[string, [number, number], [number, number], number]> = [
    ["half busy", [100, 200], [150, 300], 50],
    ["all idle", [100, 200], [200, 300], 0],
    ["all busy", [100, 200], [100, 300], 100],
    ["no time passed", [100, 200], [100, 200], 0],
    ["counters reset", [100, 200], [10, 20], 0],
  ];
  for (const [name, [i0, t0], [i1, t1], want] of cases) {
    it(name, () => {
      assert.equal(
        cpuUsagePercent({ idleTicks: i0, totalTicks: t0 }, { idleTicks: i1, totalTicks: t1 }),
        want,
      );
    });
  }
});

describe("parseMeminfo", () => {
  it("uses MemAvailable", () => {
    const m = parseMeminfo(MEMINFO);
    assert.equal(m.totalBytes, 16000000 * 1024);
    assert.equal(m.availableBytes, 4000000 * 1024);
    assert.equal(memoryUsagePercent(m), 75);
  });
  it("falls back to free + buffers + cached without MemAvailable", () => {
    const m = parseMeminfo(MEMINFO.replace(/^MemAvailable.*\n/m, ""));
    assert.equal(m.availableBytes, (2000000 + 100000 + 3000000) * 1024);
  });
  it("rejects text without MemTotal", () => {
    assert.throws(() => parseMeminfo("MemFree: 1 kB\n"), /MemTotal/);
  });
});

describe("parseNetDev", () => {
  it("sums non-loopback interfaces, including names glued to their counters", () => {
    assert.deepEqual(parseNetDev(NET_DEV), {
      receivedBytes: 333116506 + 1000,
      sentBytes: 1073571 + 2000,
    });
  });
  it("is zero with only loopback", () => {
    const onlyLo = NET_DEV.split("\n").slice(0, 3).join("\n");
    assert.deepEqual(parseNetDev(onlyLo), { receivedBytes: 0, sentBytes: 0 });
  });
  it("rejects a truncated line", () => {
    assert.throws(() => parseNetDev("eth0: 1 2 3\n"), /malformed line for eth0/);
  });
});

describe("parseUptimeSeconds", () => {
  it("takes whole seconds of the first field", () => {
    assert.equal(parseUptimeSeconds("262215.95 1234.56\n"), 262215);
  });
  it("rejects garbage", () => {
    assert.throws(() => parseUptimeSeconds("soon\n"), /\/proc\/uptime/);
    assert.throws(() => parseUptimeSeconds(""), /\/proc\/uptime/);
  });
});

describe("diskUsedPercent", () => {
  const cases: Array<[string, { blocks: number; bfree: number; bavail: number }, number]> = [
    ["empty", { blocks: 1000, bfree: 1000, bavail: 950 }, 0],
    [
      "like df: reserved blocks count as neither",
      { blocks: 1000, bfree: 500, bavail: 450 },
      (500 / 950) * 100,
    ],
    ["full for users", { blocks: 1000, bfree: 50, bavail: 0 }, 100],
    ["zero-size filesystem", { blocks: 0, bfree: 0, bavail: 0 }, 0],
  ];
  for (const [name, fs, want] of cases) {
    it(name, () => assert.ok(Math.abs(diskUsedPercent(fs) - want) < 1e-9));
  }
});
