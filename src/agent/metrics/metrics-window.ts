// SPDX-License-Identifier: Apache-2.0
/**
 * Pure aggregation of machine samples into the seed's one/five/fifteen-minute windows. CPU and
 * network come from counter deltas (so the CPU figure is the true busy share of the window, not a
 * mean of spot values); memory and disk are time-weighted averages of their samples.
 */
import type { MachineSample } from "./machine-sample.js";

/** One minute, in ms. */
export const ONE_MINUTE_MS = 60_000;
/** Five minutes, in ms. */
export const FIVE_MINUTES_MS = 5 * ONE_MINUTE_MS;
/** Fifteen minutes, in ms: the longest window reported. */
export const FIFTEEN_MINUTES_MS = 15 * ONE_MINUTE_MS;

/** Aggregates over one window; field names follow the proto's `MetricsWindow` (camelCase). */
export interface MetricsWindow {
  /** CPU busy share of all cores during the window, percent (0–100). */
  cpuUsage: number;
  /** Time-weighted average memory in use, percent (0–100). */
  memoryUsage: number;
  /** Bytes sent on non-loopback interfaces during the window. */
  networkBytesSent: number;
  /** Bytes received on non-loopback interfaces during the window. */
  networkBytesReceived: number;
  /** Time-weighted average disk used, percent (0–100). */
  diskUsed: number;
}

/** A window's aggregates plus the span the samples actually covered. */
export interface WindowAggregate {
  window: MetricsWindow;
  /** Start of the covered span: the window start, or the first sample when the agent is younger. */
  fromMs: number;
  /** End of the covered span (the requested end). */
  toMs: number;
}

/** The three windows of a health report and their common span. */
export interface MetricsSummary {
  oneMinute: MetricsWindow;
  fiveMinutes: MetricsWindow;
  fifteenMinutes: MetricsWindow;
  /** Start of the fifteen-minute window as covered by samples. */
  windowStartMs: number;
  /** End of every window. */
  windowEndMs: number;
}

/** All-zero window, for when there is nothing to aggregate. */
export const EMPTY_WINDOW: MetricsWindow = Object.freeze({
  cpuUsage: 0,
  memoryUsage: 0,
  networkBytesSent: 0,
  networkBytesReceived: 0,
  diskUsed: 0,
});

/** Non-negative counter delta; a counter that went backwards (reset, interface gone) counts as 0. */
function delta(prev: number, next: number): number {
  return next >= prev ? next - prev : 0;
}

/** Rounds a percentage to two decimals. */
function roundPercent(p: number): number {
  return Math.round(Math.min(100, Math.max(0, p)) * 100) / 100;
}

/**
 * Aggregates `samples` (any order) over `(endMs - windowMs, endMs]`. The last sample at or before
 * the window start serves as the baseline for deltas, and the segment that straddles the start is
 * prorated, so counters are attributed to the window by time. Samples after `endMs` are ignored.
 */
export function aggregateWindow(
  samples: readonly MachineSample[],
  windowMs: number,
  endMs: number,
): WindowAggregate {
  const startMs = endMs - windowMs;
  const sorted = samples.filter((s) => s.atMs <= endMs).sort((a, b) => a.atMs - b.atMs);
  let firstIn = sorted.findIndex((s) => s.atMs > startMs);
  if (firstIn < 0) firstIn = sorted.length;
  const seq = sorted.slice(Math.max(0, firstIn - 1));
  // A lone baseline before the window says nothing about the window itself.
  if (seq.length === 0 || seq[seq.length - 1]!.atMs <= startMs) {
    return { window: { ...EMPTY_WINDOW }, fromMs: endMs, toMs: endMs };
  }
  if (seq.length === 1) {
    const only = seq[0]!;
    return {
      window: {
        ...EMPTY_WINDOW,
        memoryUsage: roundPercent(only.memoryUsage),
        diskUsed: roundPercent(only.diskUsed),
      },
      fromMs: only.atMs,
      toMs: endMs,
    };
  }

  let busyTicks = 0;
  let totalTicks = 0;
  let sent = 0;
  let received = 0;
  let weightMs = 0;
  let memoryWeighted = 0;
  let diskWeighted = 0;
  for (let i = 1; i < seq.length; i++) {
    const a = seq[i - 1]!;
    const b = seq[i]!;
    const spanMs = b.atMs - a.atMs;
    if (spanMs <= 0) continue;
    // Share of this segment inside the window (only the first segment can straddle the start).
    const inside = (b.atMs - Math.max(a.atMs, startMs)) / spanMs;
    const dTotal = delta(a.cpu.totalTicks, b.cpu.totalTicks);
    const dIdle = delta(a.cpu.idleTicks, b.cpu.idleTicks);
    if (dTotal > 0 && dIdle <= dTotal) {
      totalTicks += dTotal * inside;
      busyTicks += (dTotal - dIdle) * inside;
    }
    sent += delta(a.network.sentBytes, b.network.sentBytes) * inside;
    received += delta(a.network.receivedBytes, b.network.receivedBytes) * inside;
    const w = spanMs * inside;
    weightMs += w;
    memoryWeighted += ((a.memoryUsage + b.memoryUsage) / 2) * w;
    diskWeighted += ((a.diskUsed + b.diskUsed) / 2) * w;
  }
  const last = seq[seq.length - 1]!;
  return {
    window: {
      cpuUsage: totalTicks > 0 ? roundPercent((busyTicks / totalTicks) * 100) : 0,
      memoryUsage: roundPercent(weightMs > 0 ? memoryWeighted / weightMs : last.memoryUsage),
      networkBytesSent: Math.round(sent),
      networkBytesReceived: Math.round(received),
      diskUsed: roundPercent(weightMs > 0 ? diskWeighted / weightMs : last.diskUsed),
    },
    fromMs: Math.max(startMs, seq[0]!.atMs),
    toMs: endMs,
  };
}

/** Aggregates the one, five and fifteen-minute windows ending at `endMs`. */
export function summarizeMetrics(samples: readonly MachineSample[], endMs: number): MetricsSummary {
  const one = aggregateWindow(samples, ONE_MINUTE_MS, endMs);
  const five = aggregateWindow(samples, FIVE_MINUTES_MS, endMs);
  const fifteen = aggregateWindow(samples, FIFTEEN_MINUTES_MS, endMs);
  return {
    oneMinute: one.window,
    fiveMinutes: five.window,
    fifteenMinutes: fifteen.window,
    windowStartMs: fifteen.fromMs,
    windowEndMs: endMs,
  };
}
