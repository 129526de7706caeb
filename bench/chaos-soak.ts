// SPDX-License-Identifier: Apache-2.0
/**
 * The long chaos soak (issue 9): the same code as test/chaos/chaos-soak.test.ts, run for
 * NSTANCE_CHAOS_MINUTES (default 30) in rounds of faults followed by convergence and the
 * invariant checks. Prints the figures (faults by kind, failovers, instances created, invariant
 * checks passed, operator changes acknowledged and found, time to converge after the last fault
 * of each round, p50/max) and writes the "Chaos soak" section of docs/benchmarks.md.
 * Usage: NSTANCE_CHAOS_MINUTES=30 [NSTANCE_CHAOS_SEED=n] npx tsx bench/chaos-soak.ts
 */
import {
  DEFAULT_CONVERGE_BOUND_MS,
  DEFAULT_ROUND_FAULTS_MS,
  runChaosSoak,
} from "../test/chaos/chaos-soak.js";
import { randomSeed } from "../test/chaos/seeded-random.js";
import { machineLine, median, writeBenchSection } from "./bench-report.js";

/** Length of the soak when NSTANCE_CHAOS_MINUTES is unset. */
const DEFAULT_CHAOS_MINUTES = 30;
/** Faults of one round in the long soak. */
const LONG_ROUND_FAULTS_MS = 3 * 60_000;
/** What one round costs beyond its faults (convergence, checks), for planning the round count. */
const ROUND_OVERHEAD_MS = 15_000;

const minutes = Number(process.env.NSTANCE_CHAOS_MINUTES ?? DEFAULT_CHAOS_MINUTES);
const seed = process.env.NSTANCE_CHAOS_SEED ? Number(process.env.NSTANCE_CHAOS_SEED) : randomSeed();
const roundFaultsMs = Math.min(
  LONG_ROUND_FAULTS_MS,
  Math.max(DEFAULT_ROUND_FAULTS_MS, minutes * 60_000 - ROUND_OVERHEAD_MS),
);
// Rounded up: the run lasts at least the minutes asked for (a round converges within seconds).
const rounds = Math.max(1, Math.ceil((minutes * 60_000) / (roundFaultsMs + ROUND_OVERHEAD_MS)));

const report = await runChaosSoak({
  seed,
  rounds,
  roundFaultsMs,
  convergeBoundMs: DEFAULT_CONVERGE_BOUND_MS,
  log: (l) => console.log(l),
});

const faults = Object.entries(report.faults)
  .sort(([a], [b]) => (a < b ? -1 : 1))
  .map(([k, n]) => `${k} ${n}`)
  .join(", ");
const ops = Object.entries(report.operatorChanges)
  .sort(([a], [b]) => (a < b ? -1 : 1))
  .map(([k, c]) => `${k} ${c.acknowledged}/${c.acknowledged + c.refused}`)
  .join(", ");
const totalFaults = Object.values(report.faults).reduce((a, b) => a + b, 0);
const body = [
  `${(report.wallMs / 60_000).toFixed(1)} min, ${report.rounds} rounds of ${roundFaultsMs / 1000} s of faults, seed ${report.seed} (replay with NSTANCE_CHAOS_SEED), ${machineLine()}.`,
  "",
  "| Figure | Value |",
  "|---|---|",
  `| Faults injected (${totalFaults}) | ${faults} |`,
  `| Storage faults on one server / on all three | ${report.storageFaultTargets.one} / ${report.storageFaultTargets.all} |`,
  `| Storage requests faulted: delayed / 503 / dropped | ${report.storageRequestsFaulted.delayed} / ${report.storageRequestsFaulted.errors} / ${report.storageRequestsFaulted.drops} |`,
  `| Leader failovers (kill -9) | ${report.failovers} |`,
  `| Provider instances created beyond the initial group | ${report.instancesCreated} |`,
  `| Operator changes acknowledged / sent | ${ops} |`,
  `| Acknowledged changes found after the faults | ${report.acknowledgedFound} of ${report.acknowledgedChecked} |`,
  `| Invalid configs rejected by config refresh | ${report.invalidConfigsRejected} |`,
  `| Invariant checks passed | ${report.invariantChecksPassed} |`,
  `| Continuous samples (agents and leader database) | ${report.samples} |`,
  `| Converge after the last fault of a round, p50 / max | ${median(report.convergeMs)} / ${Math.max(...report.convergeMs, 0)} ms (bound ${DEFAULT_CONVERGE_BOUND_MS} ms) |`,
  `| Violations | ${report.violations.length === 0 ? "none" : report.violations.length} |`,
].join("\n");
console.log(body);
if (report.violations.length > 0) {
  console.error(`violations (seed ${report.seed}):\n${report.violations.join("\n")}`);
}
await writeBenchSection("Chaos soak", body);
process.exitCode = report.violations.length === 0 ? 0 : 1;
