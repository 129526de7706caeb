// SPDX-License-Identifier: Apache-2.0
/** Builds the health report message (seed 003 payload) from what the agent has gathered. */
import type {
  FileStatus as FileStatusMessage,
  HealthReportRequest,
} from "../protocol/gen/nstance/v1/agent.js";
import type { FileStatus } from "./file-statuses.js";
import type { MetricsReport } from "./metrics/metrics-sampler.js";
import type { TerminationNotice } from "./spot-notice.js";

/** Everything one report carries. */
export interface HealthReportInput {
  version: string;
  instanceId: string;
  /** Sequence number since the agent started (1, 2, …). */
  count: number;
  /** When the report is produced. */
  timestamp: Date;
  metrics: MetricsReport;
  /** From {@link fileStatuses}. */
  files: ReadonlyMap<string, FileStatus>;
  terminationNotice: TerminationNotice | undefined;
  /** From identity/config.hash; empty when the agent has none yet. */
  configHash: string;
  /** Why the last file patch was rejected; empty when it applied. */
  patchError: string;
}

/** Converts a file status to the proto's oneof. */
export function toFileStatusMessage(status: FileStatus): FileStatusMessage {
  if ("error" in status) return { status: { $case: "error", value: status.error } };
  if ("empty" in status) return { status: { $case: "empty", value: true } };
  return { status: { $case: "lastModified", value: status.lastModified } };
}

/** The HealthReportRequest for `input`. */
export function buildHealthReport(input: HealthReportInput): HealthReportRequest {
  const files: Record<string, FileStatusMessage> = Object.create(null) as Record<
    string,
    FileStatusMessage
  >;
  for (const [name, status] of input.files) files[name] = toFileStatusMessage(status);
  const m = input.metrics;
  return {
    version: input.version,
    instanceId: input.instanceId,
    count: input.count,
    timestamp: input.timestamp,
    started: m.started,
    windowStart: m.windowStart,
    windowEnd: m.windowEnd,
    uptime: m.uptimeSeconds,
    oneMinute: { ...m.oneMinute },
    fiveMinutes: { ...m.fiveMinutes },
    fifteenMinutes: { ...m.fifteenMinutes },
    files,
    terminationNotice: input.terminationNotice
      ? { action: input.terminationNotice.action, deadline: input.terminationNotice.deadline }
      : undefined,
    configHash: input.configHash,
    patchError: input.patchError,
  };
}
