// SPDX-License-Identifier: Apache-2.0
/** Memory usage from `/proc/meminfo`. */
import { clampPercent } from "./proc-stat.js";

/** Total and available memory, in bytes. */
export interface MemoryInfo {
  totalBytes: number;
  availableBytes: number;
}

/**
 * Parses `/proc/meminfo`. Available memory is `MemAvailable` (what can be allocated without
 * swapping); kernels older than 3.14 lack it, so it falls back to free + buffers + page cache.
 */
export function parseMeminfo(text: string): MemoryInfo {
  const kb = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([A-Za-z0-9_()]+):\s+([0-9]+)(?:\s+kB)?\s*$/.exec(line);
    if (m) kb.set(m[1]!, Number(m[2]));
  }
  const total = kb.get("MemTotal");
  if (total === undefined || total <= 0) throw new Error("/proc/meminfo: no MemTotal");
  const available =
    kb.get("MemAvailable") ??
    (kb.get("MemFree") ?? 0) + (kb.get("Buffers") ?? 0) + (kb.get("Cached") ?? 0);
  return { totalBytes: total * 1024, availableBytes: Math.min(available, total) * 1024 };
}

/** Memory in use, in percent of total (0–100). */
export function memoryUsagePercent(info: MemoryInfo): number {
  return clampPercent(((info.totalBytes - info.availableBytes) / info.totalBytes) * 100);
}
