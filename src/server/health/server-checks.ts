// SPDX-License-Identifier: Apache-2.0
/**
 * The verdicts of the server's readiness checks (config, storage, SQLite, election, provider, gRPC
 * listeners) as pure functions of what each subsystem last reported, so a table can test them.
 * Storage and provider checks read the outcomes of real calls (see metrics/call-health.ts) rather
 * than sending requests of their own.
 */
import type { ElectionStatus } from "../../election/lockfile-elector.js";
import type { CallHealthSnapshot } from "../metrics/call-health.js";
import type { CheckResult } from "./run-readiness.js";

/** Storage is down after this many failed operations in a row (each already retried). */
export const DEFAULT_STORAGE_DOWN_AFTER_FAILURES = 3;
/** Failures within this window make storage or the provider `degraded`. */
export const DEFAULT_DEGRADED_WINDOW_MS = 60_000;
/** A SQLite query slower than this makes the database `degraded`. */
export const DEFAULT_SQLITE_SLOW_MS = 500;

/** The names of the server's checks, in the order `/readyz` lists them. */
export const SERVER_CHECK_NAMES = [
  "config",
  "storage",
  "sqlite",
  "election",
  "provider",
  "grpc",
] as const;

/** Where the boot sequence is, for the config check. */
export interface ConfigCheckInput {
  phase: "loading" | "failed" | "ready" | "stopping";
  /** Why loading failed. */
  failure?: string;
  /** Where the loaded config came from. */
  source?: "storage" | "cache" | "missing";
  etag?: string;
}

/** Down until the configuration is loaded; degraded when it came from the local cache. */
export function configCheck(c: ConfigCheckInput): CheckResult {
  switch (c.phase) {
    case "loading":
      return { status: "down", message: "loading configuration" };
    case "failed":
      return { status: "down", message: c.failure ?? "configuration failed to load" };
    case "stopping":
      return { status: "down", message: "shutting down" };
    case "ready":
      if (c.source === "cache") {
        return {
          status: "degraded",
          message: "loaded from the local cache: object storage was unreachable at load time",
        };
      }
      return { status: "ok", message: `loaded (etag ${c.etag ?? "unknown"})` };
  }
}

function ago(now: number, at: number | undefined): string {
  return at === undefined ? "never" : `${Math.max(0, Math.round((now - at) / 1000))}s ago`;
}

/** Options shared by the call-health based checks. */
export interface CallCheckOptions {
  now: number;
  /** Defaults to {@link DEFAULT_DEGRADED_WINDOW_MS}. */
  windowMs?: number;
}

/**
 * Down before storage is opened and after {@link DEFAULT_STORAGE_DOWN_AFTER_FAILURES} failed
 * operations in a row; degraded while failures happened in the window.
 */
export function storageCheck(
  h: CallHealthSnapshot | undefined,
  opts: CallCheckOptions & { downAfterFailures?: number },
): CheckResult {
  if (!h) return { status: "down", message: "storage not opened yet" };
  const downAfter = opts.downAfterFailures ?? DEFAULT_STORAGE_DOWN_AFTER_FAILURES;
  const windowS = Math.round((opts.windowMs ?? DEFAULT_DEGRADED_WINDOW_MS) / 1000);
  if (h.consecutiveFailures >= downAfter) {
    return {
      status: "down",
      message: `the last ${h.consecutiveFailures} operations failed (last success ${ago(opts.now, h.lastOkAt)}): ${h.lastError ?? ""}`,
    };
  }
  if (h.consecutiveFailures > 0 || h.recentFailures > 0) {
    return {
      status: "degraded",
      message: `${h.recentFailures} failed operations in the last ${windowS}s; last: ${h.lastError ?? ""}`,
    };
  }
  return {
    status: "ok",
    message: `${h.calls} operations, last success ${ago(opts.now, h.lastOkAt)}`,
  };
}

/** Degraded while provider calls failed in the window; down only before it is created. */
export function providerCheck(
  kind: string | undefined,
  h: CallHealthSnapshot | undefined,
  opts: CallCheckOptions,
): CheckResult {
  if (kind === undefined || !h) return { status: "down", message: "provider not created yet" };
  const windowS = Math.round((opts.windowMs ?? DEFAULT_DEGRADED_WINDOW_MS) / 1000);
  if (h.consecutiveFailures > 0 || h.recentFailures > 0) {
    return {
      status: "degraded",
      message: `${kind}: ${h.recentFailures} failed calls in the last ${windowS}s (${h.consecutiveFailures} in a row); last: ${h.lastError ?? ""}`,
    };
  }
  return {
    status: "ok",
    message: `${kind}: ${h.calls} calls, last success ${ago(opts.now, h.lastOkAt)}`,
  };
}

/** Runs a trivial query; down when it throws, degraded when slow. */
export function sqliteCheck(
  query: (() => number) | undefined,
  opts: { slowMs?: number } = {},
): CheckResult {
  if (!query) return { status: "down", message: "database not opened yet" };
  const started = performance.now();
  let rows: number;
  try {
    rows = query();
  } catch (err) {
    return { status: "down", message: `query failed: ${err instanceof Error ? err.message : err}` };
  }
  const ms = performance.now() - started;
  if (ms > (opts.slowMs ?? DEFAULT_SQLITE_SLOW_MS)) {
    return { status: "degraded", message: `slow: a trivial query took ${Math.round(ms)} ms` };
  }
  return { status: "ok", message: `${rows} instance rows` };
}

/** What the election check needs. */
export interface ElectionCheckInput {
  /** `shard.leader_election.enabled`. */
  enabled: boolean;
  /** Undefined before the elector exists. */
  status?: ElectionStatus;
}

/**
 * OK while leading or following a known leader; degraded while no leader is known or leadership is
 * changing hands; down before the elector runs.
 */
export function electionCheck(e: ElectionCheckInput): CheckResult {
  if (!e.enabled) {
    return { status: "ok", message: "leader election disabled: this server is alone in its shard" };
  }
  const s = e.status;
  if (!s) return { status: "down", message: "election not started yet" };
  switch (s.state) {
    case "stopped":
      return { status: "down", message: "elector not running" };
    case "leader":
      return { status: "ok", message: `leader (term ${s.term})` };
    case "candidate":
      return { status: "degraded", message: `taking over leadership (term ${s.term})` };
    case "resigning":
      return { status: "degraded", message: `stepping down (term ${s.term})` };
    case "follower":
      if (!s.leader) return { status: "degraded", message: "standby; no leader known yet" };
      return {
        status: "ok",
        message: `standby; leader ${s.leader.id} (term ${s.leader.term})`,
      };
  }
}

/** Down until the Registration, Operator and Agent listeners are bound. */
export function grpcCheck(addresses: Readonly<Record<string, string>> | undefined): CheckResult {
  if (!addresses) return { status: "down", message: "gRPC listeners not started yet" };
  const list = Object.entries(addresses)
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
  return { status: "ok", message: `listening: ${list}` };
}
