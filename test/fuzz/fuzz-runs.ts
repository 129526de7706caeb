// SPDX-License-Identifier: Apache-2.0
/**
 * Test support for the fuzz properties: how many cases each runs, and the seed. A normal `npm test`
 * runs the default counts; `NSTANCE_FUZZ_RUNS=<n>` runs every property `n` times instead (a long
 * run), and `NSTANCE_FUZZ_SEED=<seed>` replays a run (fast-check prints the seed of a failure).
 */
import type { Parameters } from "fast-check";

/** Environment variable naming the cases per property for a longer (or shorter) run. */
export const FUZZ_RUNS_ENV = "NSTANCE_FUZZ_RUNS";
/** Environment variable fixing the random seed, to replay a failure. */
export const FUZZ_SEED_ENV = "NSTANCE_FUZZ_SEED";

/** The number of cases for a property: `NSTANCE_FUZZ_RUNS` when set, else `defaultRuns`. */
export function fuzzRuns(defaultRuns: number): number {
  const raw = process.env[FUZZ_RUNS_ENV];
  if (raw === undefined || raw === "") return defaultRuns;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${FUZZ_RUNS_ENV} must be a positive integer`);
  return n;
}

/** fast-check parameters for a fuzz property: its run count and the replay seed, if any. */
export function fuzzParameters<T>(defaultRuns: number, extra: Parameters<T> = {}): Parameters<T> {
  const seed = process.env[FUZZ_SEED_ENV];
  return {
    numRuns: fuzzRuns(defaultRuns),
    ...(seed ? { seed: Number(seed) } : {}),
    ...extra,
  };
}
