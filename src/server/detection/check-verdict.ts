// SPDX-License-Identifier: Apache-2.0
/**
 * The decision of one instance check (seed 003 "Unhealthy Node Detection", reference §5.4) as a
 * pure function, so tables can test it:
 *
 * 1. The provider does not know the VM, or says it is not running (stopping, stopped, suspended,
 *    deleting, deleted, repairing …): it is `gone`. Replace it now and delete it without drain:
 *    nothing runs there to drain. This holds even when a report arrived moments ago.
 * 2. The agent reported after the watch began: `healthy`, the suspicion ends.
 * 3. The VM runs but the agent has been silent for `missedReports` report intervals: `silent`.
 *    Replace it, then drain it, since its workload may still run.
 * 4. Otherwise keep `watch`ing, deciding no later than the moment the silence reaches that bound.
 */
import { isUnhealthyStatus, type ProviderStatus } from "../../providers/provider.js";

/** What a check rests on (times in unix ms). */
export interface CheckFacts {
  /** The provider's answer; `undefined` when the provider does not know the VM (not found). */
  providerStatus: ProviderStatus | undefined;
  /** Arrival of the agent's last report (or its registration); undefined when neither. */
  lastReportAt: number | undefined;
  /**
   * The moment silence is counted from: the last report, but never before the agent could have
   * reconnected to this leader (a new leader gives agents it has not heard from yet a grace).
   */
  silentSince: number;
  /** When the watch began (the stream loss, or the sweep that found the instance stale). */
  since: number;
  /** Interval the agent reports at. */
  reportIntervalMs: number;
  /** Reports a running VM may miss before it is replaced. */
  missedReports: number;
  now: number;
}

/** Outcome of a check. */
export type CheckVerdict =
  /** The agent reported after the watch began. */
  | { kind: "healthy" }
  /** Not found or not running: replace now, delete without drain. `reason` is the status. */
  | { kind: "gone"; reason: string }
  /** Running but silent for `missed` report intervals: replace, then drain. */
  | { kind: "silent"; reason: "missed-reports"; missed: number }
  /** Running and silent for less than that: check again no later than `decideAt`. */
  | { kind: "watch"; decideAt: number };

/** Decides one check; see the file comment. */
export function judgeCheck(f: CheckFacts): CheckVerdict {
  if (f.providerStatus === undefined) return { kind: "gone", reason: "not-found" };
  if (isUnhealthyStatus(f.providerStatus)) return { kind: "gone", reason: f.providerStatus };
  if (f.lastReportAt !== undefined && f.lastReportAt > f.since) return { kind: "healthy" };
  const boundMs = Math.max(1, f.missedReports) * f.reportIntervalMs;
  const silentMs = f.now - f.silentSince;
  if (silentMs >= boundMs) {
    return {
      kind: "silent",
      reason: "missed-reports",
      missed: Math.floor(silentMs / f.reportIntervalMs),
    };
  }
  return { kind: "watch", decideAt: f.silentSince + boundMs };
}
