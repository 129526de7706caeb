// SPDX-License-Identifier: Apache-2.0
/** CPU time counters from `/proc/stat` and the usage percentage between two readings. */

/** Cumulative CPU time of all cores, in clock ticks (USER_HZ). */
export interface CpuTimes {
  /** Ticks spent idle or waiting for I/O. */
  idleTicks: number;
  /** All ticks: user, nice, system, idle, iowait, irq, softirq, steal. */
  totalTicks: number;
}

/**
 * Parses the aggregate `cpu` line of `/proc/stat`. Guest time is left out because the kernel
 * already counts it in user and nice. Throws when the line is missing or malformed.
 */
export function parseProcStat(text: string): CpuTimes {
  const line = text.split("\n").find((l) => l.startsWith("cpu "));
  if (line === undefined) throw new Error("/proc/stat: no aggregate cpu line");
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  if (fields.length < 4 || fields.some((n) => !Number.isFinite(n) || n < 0)) {
    throw new Error(`/proc/stat: malformed cpu line "${line}"`);
  }
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] =
    fields;
  return {
    idleTicks: idle + iowait,
    totalTicks: user + nice + system + idle + iowait + irq + softirq + steal,
  };
}

/**
 * Busy share of CPU time between two readings, in percent of all cores (0–100). Returns 0 when
 * no time passed or the counters went backwards (e.g. a restored snapshot).
 */
export function cpuUsagePercent(prev: CpuTimes, next: CpuTimes): number {
  const total = next.totalTicks - prev.totalTicks;
  const idle = next.idleTicks - prev.idleTicks;
  if (total <= 0 || idle < 0) return 0;
  return clampPercent(((total - idle) / total) * 100);
}

/** Clamps a percentage into 0..100. */
export function clampPercent(p: number): number {
  return Math.min(100, Math.max(0, p));
}
