// SPDX-License-Identifier: Apache-2.0
/**
 * The interval an agent really reports at, read from its own reports: each carries the agent's
 * start time, a sequence number and a timestamp, so two reports of one agent run give
 * (t₂ − t₁) / (count₂ − count₁). Failure detection uses it when it is longer than the shard's
 * `health_check_interval` (an agent set to report less often than the server assumes is not taken
 * for a silent one). Early reports (after a file patch) shorten the estimate a little.
 */

/** A report as far as its cadence goes. */
export interface ReportSample {
  /** The agent process's start time (RFC 3339), identifying one agent run. */
  started: string;
  /** Sequence number of the report since the agent started. */
  count: number;
  /** When the agent produced it, unix ms. */
  at: number;
}

/** Reads a sample from a stored report (the seed 003 JSON of `instances.health`); undefined if malformed. */
export function reportSample(report: unknown): ReportSample | undefined {
  if (report === null || typeof report !== "object") return undefined;
  const r = report as Record<string, unknown>;
  const at = typeof r.timestamp === "string" ? Date.parse(r.timestamp) : Number.NaN;
  if (typeof r.started !== "string" || typeof r.count !== "number" || !Number.isFinite(at)) {
    return undefined;
  }
  return { started: r.started, count: r.count, at };
}

/**
 * The report interval between `latest` and the earliest of `earlier` from the same agent run, or
 * undefined when there is no such pair.
 */
export function inferReportIntervalMs(
  latest: ReportSample | undefined,
  earlier: readonly ReportSample[],
): number | undefined {
  if (!latest) return undefined;
  let first: ReportSample | undefined;
  for (const s of earlier) {
    if (s.started !== latest.started || s.count >= latest.count || s.at >= latest.at) continue;
    if (!first || s.count < first.count) first = s;
  }
  if (!first) return undefined;
  return (latest.at - first.at) / (latest.count - first.count);
}
