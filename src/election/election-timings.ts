// SPDX-License-Identifier: Apache-2.0
/**
 * Election timings, their defaults and the rules that keep them safe. See docs/leader-election.md
 * for the arithmetic behind the defaults.
 */
import { ConfigError, type ConfigProblem } from "../shared/errors.js";

/** The four timings of a lockfile election, in milliseconds. */
export interface ElectionTimings {
  /** Poll interval during transitions, and the peer-mode poll interval of followers. */
  frequentIntervalMs: number;
  /** Storage poll interval of followers in the stable phase when peer mode is off. */
  infrequentIntervalMs: number;
  /** A lockfile version seen unchanged for this long (on the follower's own clock) is stale. */
  leaderTimeoutMs: number;
  /** The leader stops acting this long before any follower may judge its lease stale. */
  safetyMarginMs: number;
}

/**
 * Defaults: frequent 2 s, infrequent 30 s, leader timeout 6 s, safety margin 1 s. The leader renews
 * every 2 s (timeout / 3) and stops acting 5 s after its last successful renewal was sent; a kill -9
 * is taken over in about 6 s in peer mode (at most about 8 s).
 */
export const DEFAULT_ELECTION: Readonly<ElectionTimings> = Object.freeze({
  frequentIntervalMs: 2_000,
  infrequentIntervalMs: 30_000,
  leaderTimeoutMs: 6_000,
  safetyMarginMs: 1_000,
});

/**
 * The safety margin used when none is configured: {@link DEFAULT_ELECTION}'s, capped at a sixth of
 * the leader timeout so that short test timeouts still leave room for renewals.
 */
export function defaultSafetyMarginMs(leaderTimeoutMs: number): number {
  return Math.min(DEFAULT_ELECTION.safetyMarginMs, Math.round(leaderTimeoutMs / 6));
}

/** How often a leader renews its lease: a third of the leader timeout. */
export function renewIntervalMs(t: Pick<ElectionTimings, "leaderTimeoutMs">): number {
  return Math.round(t.leaderTimeoutMs / 3);
}

/** Returns every rule the timings break (empty when they are usable). Pure, for tables. */
export function electionTimingProblems(t: ElectionTimings): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const fields: Array<[keyof ElectionTimings, string]> = [
    ["frequentIntervalMs", "frequent_interval"],
    ["infrequentIntervalMs", "infrequent_interval"],
    ["leaderTimeoutMs", "leader_timeout"],
    ["safetyMarginMs", "safety_margin"],
  ];
  for (const [field, path] of fields) {
    const v = t[field];
    if (!Number.isFinite(v) || v <= 0)
      problems.push({ path, message: "must be a positive duration" });
  }
  if (problems.length > 0) return problems;
  if (t.infrequentIntervalMs < t.frequentIntervalMs) {
    problems.push({
      path: "infrequent_interval",
      message: "must not be shorter than frequent_interval",
    });
  }
  const renew = renewIntervalMs(t);
  if (renew >= t.leaderTimeoutMs - t.safetyMarginMs) {
    problems.push({
      path: "safety_margin",
      message: `leaves no time to renew: the leader renews every ${renew}ms (leader_timeout / 3), which must be less than leader_timeout - safety_margin (${t.leaderTimeoutMs - t.safetyMarginMs}ms)`,
    });
  }
  return problems;
}

/** Throws a ConfigError listing every problem of the timings. */
export function validateElectionTimings(t: ElectionTimings): void {
  const problems = electionTimingProblems(t);
  if (problems.length > 0) throw new ConfigError(problems);
}
