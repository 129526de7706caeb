// SPDX-License-Identifier: Apache-2.0
// The bounded chaos soak of `npm test` (issue 9): one round of seeded faults against an HA trio
// with real agents, then every invariant. NSTANCE_CHAOS_SEED replays a schedule.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_CHAOS_SEED, runChaosSoak } from "./chaos-soak.js";

const seed = Number(process.env.NSTANCE_CHAOS_SEED ?? DEFAULT_CHAOS_SEED);

describe("chaos soak (bounded)", () => {
  it(`faults from seed ${seed}: converges, nothing lost, no invariant broken`, {
    timeout: 900_000,
  }, async () => {
    const lines: string[] = [];
    const report = await runChaosSoak({
      seed,
      rounds: 1,
      roundFaultsMs: 30_000,
      log: (l) => {
        lines.push(l);
        if (process.env.NSTANCE_CHAOS_VERBOSE) console.log(l);
      },
    });
    const summary = `seed ${seed} (replay with NSTANCE_CHAOS_SEED=${seed}); ${JSON.stringify({ ...report, violations: undefined })}`;
    assert.deepEqual(report.violations, [], `${summary}\n${lines.join("\n")}`);
    const faults = Object.values(report.faults).reduce((a, b) => a + b, 0);
    assert.ok(faults >= 3, `at least 3 faults injected: ${summary}`);
    assert.ok(report.invariantChecksPassed >= 8, `invariant checks ran: ${summary}`);
    assert.equal(report.acknowledgedFound, report.acknowledgedChecked, summary);
    assert.ok(report.samples > 10, `the sampler ran: ${summary}`);
  });
});
