// SPDX-License-Identifier: Apache-2.0
/** The failure detection settings in force, derived from the compiled shard config. */
import type { ServerConfig } from "../../config/server-config.js";
import type { MassFailureGuard } from "../../reconcile/plan-types.js";

/** What {@link FailureDetector} reads at each sweep and check (a config refresh applies at once). */
export interface DetectionSettings {
  /** `health_check_interval`: the report interval assumed until an agent's own is known. */
  reportIntervalMs: number;
  sweepIntervalMs: number;
  missedReports: number;
  statusTimeoutMs: number;
  decisionRetentionMs: number;
}

/** The detection settings of `config`. */
export function detectionSettings(config: ServerConfig): DetectionSettings {
  const fd = config.shard.failureDetection;
  return {
    reportIntervalMs: config.shard.healthCheckIntervalMs,
    sweepIntervalMs: fd.sweepIntervalMs,
    missedReports: fd.missedReports,
    statusTimeoutMs: fd.statusTimeoutMs,
    decisionRetentionMs: fd.decisionRetentionMs,
  };
}

/** The reconciler's mass-failure guard from `shard.failure_detection`. */
export function massFailureGuard(config: ServerConfig): MassFailureGuard {
  const fd = config.shard.failureDetection;
  return { maxUnhealthyFraction: fd.maxUnhealthyFraction, maxUnhealthyCount: fd.maxUnhealthyCount };
}
