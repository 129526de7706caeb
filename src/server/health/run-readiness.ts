// SPDX-License-Identifier: Apache-2.0
/**
 * Readiness (seed 004's `/readyz`): subsystem checks run in parallel, each under its own timeout.
 * `down` means the subsystem cannot do its job and makes the server unready (503); `degraded` means
 * working but impaired and stays ready (200).
 */
import { errorMessage } from "../../shared/errors.js";

/** Per-check timeout (seed 004: 2 s). */
export const DEFAULT_CHECK_TIMEOUT_MS = 2_000;

/** A check's verdict, from best to worst. */
export const CHECK_STATUSES = ["ok", "degraded", "down"] as const;
/** One of {@link CHECK_STATUSES}. */
export type CheckStatus = (typeof CHECK_STATUSES)[number];

/** What one check says. */
export interface CheckResult {
  status: CheckStatus;
  /** One line for people: what is wrong, or what is fine. */
  message: string;
}

/** A named readiness check; `run` may be sync or async and should honour `signal`. */
export interface ReadinessCheck {
  name: string;
  run(signal: AbortSignal): CheckResult | Promise<CheckResult>;
}

/** A check's verdict with how long it took. */
export interface CheckReport extends CheckResult {
  latency_ms: number;
}

/** The `/readyz` body. */
export interface ReadinessReport {
  status: CheckStatus;
  checks: Record<string, CheckReport>;
}

/** The worst of `statuses` (`ok` for none). */
export function worstStatus(statuses: Iterable<CheckStatus>): CheckStatus {
  let worst = 0;
  for (const s of statuses) worst = Math.max(worst, CHECK_STATUSES.indexOf(s));
  return CHECK_STATUSES[worst]!;
}

/** 503 only when something is down; degraded stays 200. */
export function readinessHttpStatus(status: CheckStatus): 200 | 503 {
  return status === "down" ? 503 : 200;
}

/** Options for {@link runReadiness}. */
export interface RunReadinessOptions {
  /** Defaults to {@link DEFAULT_CHECK_TIMEOUT_MS}. */
  timeoutMs?: number;
}

async function runOne(check: ReadinessCheck, timeoutMs: number): Promise<CheckReport> {
  const started = performance.now();
  const ctl = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(() => {
      ctl.abort(new Error("readiness check timed out"));
      resolve({ status: "down", message: `check timed out after ${timeoutMs} ms` });
    }, timeoutMs);
  });
  let result: CheckResult;
  try {
    result = await Promise.race([Promise.resolve().then(() => check.run(ctl.signal)), timedOut]);
  } catch (err) {
    result = { status: "down", message: `check failed: ${errorMessage(err)}` };
  } finally {
    clearTimeout(timer);
  }
  const latency = performance.now() - started;
  return { ...result, latency_ms: Math.round(latency * 1000) / 1000 };
}

/** Runs every check in parallel, each bounded by the timeout; never throws. */
export async function runReadiness(
  checks: readonly ReadinessCheck[],
  opts: RunReadinessOptions = {},
): Promise<ReadinessReport> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  const reports = await Promise.all(checks.map((c) => runOne(c, timeoutMs)));
  const out: Record<string, CheckReport> = {};
  checks.forEach((c, i) => {
    out[c.name] = reports[i]!;
  });
  return { status: worstStatus(reports.map((r) => r.status)), checks: out };
}
