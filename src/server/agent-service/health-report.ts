// SPDX-License-Identifier: Apache-2.0
/**
 * Health reports as the server keeps them: field limits that a report must meet before anything
 * is stored (a malformed report must not reach SQLite or the delivery logic), and the snake_case
 * JSON stored in `instances.health` and `health_reports.report` (the seed 003 payload shape, with
 * `files` values as in the seed: an RFC 3339 mtime, `""` for empty, `error: …`).
 */
import type {
  FileStatus,
  HealthReportRequest,
  MetricsWindow,
} from "../../protocol/gen/nstance/v1/agent.js";

/** Limits on report fields; a report over any of them is refused with INVALID_ARGUMENT. */
export const HEALTH_REPORT_LIMITS = {
  idChars: 64,
  versionChars: 64,
  configHashChars: 128,
  files: 1024,
  fileNameChars: 255,
  errorChars: 4096,
  actionChars: 64,
} as const;

/** The state of one file as the agent reported it. */
export type ReportedFile =
  | { kind: "present"; at: Date }
  | { kind: "empty" }
  | { kind: "error"; error: string };

/** Reads a file status; an unset oneof counts as empty. */
export function reportedFile(status: FileStatus | undefined): ReportedFile {
  const s = status?.status;
  if (s?.$case === "lastModified") return { kind: "present", at: s.value };
  if (s?.$case === "error") return { kind: "error", error: s.value };
  return { kind: "empty" };
}

const METRIC_FIELDS = [
  "cpuUsage",
  "memoryUsage",
  "networkBytesSent",
  "networkBytesReceived",
  "diskUsed",
] as const;

function windowProblem(w: MetricsWindow | undefined, name: string): string | undefined {
  if (!w) return undefined;
  for (const k of METRIC_FIELDS) {
    const v = w[k];
    if (!(v >= 0 && v < Number.POSITIVE_INFINITY)) {
      return `${name}.${k} must be a finite, non-negative number`;
    }
  }
  return undefined;
}

function hasControlChars(s: string): boolean {
  return /[\u0000-\u001f\u007f]/.test(s);
}

/** Returns why `r` is not an acceptable report, or `undefined` when it is. */
export function healthReportProblem(r: HealthReportRequest): string | undefined {
  const L = HEALTH_REPORT_LIMITS;
  if (r.instanceId === "") return "instance_id is required";
  if (r.instanceId.length > L.idChars) return `instance_id is longer than ${L.idChars} characters`;
  if (r.version.length > L.versionChars)
    return `version is longer than ${L.versionChars} characters`;
  if (r.configHash.length > L.configHashChars || hasControlChars(r.configHash)) {
    return `config_hash must be at most ${L.configHashChars} printable characters`;
  }
  if (r.patchError.length > L.errorChars)
    return `patch_error is longer than ${L.errorChars} characters`;
  if (!Number.isSafeInteger(r.count) || r.count < 0) return "count must be a non-negative integer";
  if (!Number.isSafeInteger(r.uptime) || r.uptime < 0)
    return "uptime must be a non-negative integer";
  for (const [name, w] of [
    ["one_minute", r.oneMinute],
    ["five_minutes", r.fiveMinutes],
    ["fifteen_minutes", r.fifteenMinutes],
  ] as const) {
    const p = windowProblem(w, name);
    if (p) return p;
  }
  const names = Object.keys(r.files);
  if (names.length > L.files) return `files has more than ${L.files} entries`;
  for (const name of names) {
    if (
      name === "" ||
      name.length > L.fileNameChars ||
      name.includes("/") ||
      hasControlChars(name)
    ) {
      return `files has an invalid file name ${JSON.stringify(name.slice(0, 64))}`;
    }
    const s = r.files[name]?.status;
    if (s?.$case === "error" && s.value.length > L.errorChars) {
      return `files[${name}].error is longer than ${L.errorChars} characters`;
    }
  }
  if (r.terminationNotice && r.terminationNotice.action.length > L.actionChars) {
    return `termination_notice.action is longer than ${L.actionChars} characters`;
  }
  for (const [name, d] of [
    ["timestamp", r.timestamp],
    ["started", r.started],
    ["window_start", r.windowStart],
    ["window_end", r.windowEnd],
  ] as const) {
    if (d !== undefined && Number.isNaN(d.getTime())) return `${name} is not a valid time`;
  }
  return undefined;
}

/**
 * ISO strings of recent times. `toISOString` is about a microsecond, and a report carries a dozen
 * times, most of them repeated from the agent's previous report (file mtimes, start time).
 */
const isoCache = new Map<number, string>();
const ISO_CACHE_SIZE = 65_536;

function isoOf(ms: number): string {
  let s = isoCache.get(ms);
  if (s === undefined) {
    s = new Date(ms).toISOString();
    if (isoCache.size >= ISO_CACHE_SIZE) isoCache.clear();
    isoCache.set(ms, s);
  }
  return s;
}

const iso = (d: Date | undefined): string | undefined => (d ? isoOf(d.getTime()) : undefined);

function windowJson(w: MetricsWindow | undefined) {
  return w
    ? {
        cpu_usage: w.cpuUsage,
        memory_usage: w.memoryUsage,
        network_bytes_sent: w.networkBytesSent,
        network_bytes_received: w.networkBytesReceived,
        disk_used: w.diskUsed,
      }
    : undefined;
}

/** The stored JSON of a report (seed 003 field names). */
export function healthReportJson(r: HealthReportRequest, receivedAt: number): string {
  const files: Record<string, string> = {};
  for (const [name, status] of Object.entries(r.files)) {
    const f = reportedFile(status);
    files[name] =
      f.kind === "present" ? isoOf(f.at.getTime()) : f.kind === "error" ? `error: ${f.error}` : "";
  }
  return JSON.stringify({
    version: r.version,
    instance_id: r.instanceId,
    count: r.count,
    timestamp: iso(r.timestamp),
    started: iso(r.started),
    window_start: iso(r.windowStart),
    window_end: iso(r.windowEnd),
    uptime: r.uptime,
    one_minute: windowJson(r.oneMinute),
    five_minutes: windowJson(r.fiveMinutes),
    fifteen_minutes: windowJson(r.fifteenMinutes),
    files,
    ...(r.terminationNotice
      ? {
          termination_notice: {
            action: r.terminationNotice.action,
            deadline: iso(r.terminationNotice.deadline),
          },
        }
      : {}),
    config_hash: r.configHash,
    ...(r.patchError ? { patch_error: r.patchError } : {}),
    received_at: isoOf(receivedAt),
  });
}

/** What file delivery needs from a stored report: the config hash and the files map. */
export interface ReportedState {
  configHash: string;
  files: ReadonlyMap<string, ReportedFile>;
}

/** The delivery-relevant state of a report. */
export function reportedState(r: HealthReportRequest): ReportedState {
  const files = new Map<string, ReportedFile>();
  for (const [name, status] of Object.entries(r.files)) files.set(name, reportedFile(status));
  return { configHash: r.configHash, files };
}

/** Reads the delivery-relevant state back from stored health JSON; `undefined` if unreadable. */
export function reportedStateFromJson(json: string | undefined): ReportedState | undefined {
  if (!json) return undefined;
  try {
    const v = JSON.parse(json) as { config_hash?: unknown; files?: unknown };
    const files = new Map<string, ReportedFile>();
    if (v.files && typeof v.files === "object") {
      for (const [name, value] of Object.entries(v.files as Record<string, unknown>)) {
        if (typeof value !== "string" || value === "") files.set(name, { kind: "empty" });
        else if (value.startsWith("error: "))
          files.set(name, { kind: "error", error: value.slice(7) });
        else files.set(name, { kind: "present", at: new Date(value) });
      }
    }
    return { configHash: typeof v.config_hash === "string" ? v.config_hash : "", files };
  } catch {
    // A corrupt cache row: treat as "no report yet"; the next report replaces it.
    return undefined;
  }
}
