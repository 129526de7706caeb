// SPDX-License-Identifier: Apache-2.0
/** One reading of the machine's counters and gauges, taken from `/proc` and statfs(2). */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { readDiskUsedPercent } from "./disk-usage.js";
import { memoryUsagePercent, parseMeminfo } from "./proc-meminfo.js";
import { type NetworkCounters, parseNetDev } from "./proc-net-dev.js";
import { type CpuTimes, parseProcStat } from "./proc-stat.js";
import { parseUptimeSeconds } from "./proc-uptime.js";

/** Default procfs mount point. */
export const DEFAULT_PROC_DIR = "/proc";

/** A point-in-time reading. Counters are cumulative; gauges are instantaneous percentages. */
export interface MachineSample {
  /** When the reading was taken (ms since the epoch). */
  atMs: number;
  /** Cumulative CPU ticks. */
  cpu: CpuTimes;
  /** Cumulative non-loopback network bytes. */
  network: NetworkCounters;
  /** Memory in use, percent (0–100). */
  memoryUsage: number;
  /** Used space of the watched filesystem, percent (0–100). */
  diskUsed: number;
}

/** Where {@link readMachineSample} reads from. */
export interface MachineSampleSource {
  /** procfs root; defaults to {@link DEFAULT_PROC_DIR}. Tests point it at fixture files. */
  procDir?: string;
  /** Any path on the filesystem to report as `disk_used`. */
  diskPath: string;
}

/** Reads one {@link MachineSample}; `nowMs` stamps it. */
export async function readMachineSample(
  source: MachineSampleSource,
  nowMs: number = Date.now(),
): Promise<MachineSample> {
  const proc = source.procDir ?? DEFAULT_PROC_DIR;
  const [stat, meminfo, netDev, diskUsed] = await Promise.all([
    readFile(join(proc, "stat"), "utf8"),
    readFile(join(proc, "meminfo"), "utf8"),
    readFile(join(proc, "net", "dev"), "utf8"),
    readDiskUsedPercent(source.diskPath),
  ]);
  return {
    atMs: nowMs,
    cpu: parseProcStat(stat),
    network: parseNetDev(netDev),
    memoryUsage: memoryUsagePercent(parseMeminfo(meminfo)),
    diskUsed,
  };
}

/** Reads host uptime in whole seconds from `<procDir>/uptime`. */
export async function readUptimeSeconds(procDir: string = DEFAULT_PROC_DIR): Promise<number> {
  return parseUptimeSeconds(await readFile(join(procDir, "uptime"), "utf8"));
}
