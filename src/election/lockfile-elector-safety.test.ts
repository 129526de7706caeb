// SPDX-License-Identifier: Apache-2.0
/**
 * Property test of the election's safety: many electors share one storage over simulated time
 * while processes pause (shorter than the safety margin), drift (±1000 ppm), are killed and
 * restarted, stop gracefully, and see storage fail, hang or lose answers. No two terms may act at
 * once, terms only grow, and every leader-only action lies inside its own term.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { ElectionTimings } from "./election-timings.js";
import { ElectionSim, type SimNode, type StorageFault, type TermRecord } from "./testing.js";

const DEFAULT_TIMINGS: ElectionTimings = {
  frequentIntervalMs: 2_000,
  infrequentIntervalMs: 30_000,
  leaderTimeoutMs: 6_000,
  safetyMarginMs: 1_000,
};
const FAST_TIMINGS: ElectionTimings = {
  frequentIntervalMs: 1_000,
  infrequentIntervalMs: 5_000,
  leaderTimeoutMs: 3_000,
  safetyMarginMs: 500,
};

type EventKind = "pause" | "fail" | "stall" | "lose_answer" | "kill" | "stop" | "peer_down";

interface SimEvent {
  gapMs: number;
  kind: EventKind;
  atLeader: boolean;
  target: number;
  /** Duration as a fraction of the leader timeout (pauses: of half the safety margin). */
  fraction: number;
}

interface NodeConfig {
  rate: number;
  offsetMs: number;
  wallSkewMs: number;
  peer: boolean;
}

interface Scenario {
  fast: boolean;
  nodes: NodeConfig[];
  events: SimEvent[];
  seed: number;
}

const nodeArb: fc.Arbitrary<NodeConfig> = fc.record({
  rate: fc.double({ min: 0.999, max: 1.001, noNaN: true }),
  offsetMs: fc.integer({ min: -1e9, max: 1e9 }),
  wallSkewMs: fc.integer({ min: -3_600_000, max: 3_600_000 }),
  peer: fc.boolean(),
});

const eventArb: fc.Arbitrary<SimEvent> = fc.record({
  gapMs: fc.integer({ min: 0, max: 15_000 }),
  kind: fc.constantFrom<EventKind>(
    "pause",
    "fail",
    "stall",
    "lose_answer",
    "kill",
    "stop",
    "peer_down",
  ),
  atLeader: fc.boolean(),
  target: fc.nat({ max: 9 }),
  fraction: fc.double({ min: 0, max: 3, noNaN: true }),
});

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  fast: fc.boolean(),
  nodes: fc.array(nodeArb, { minLength: 2, maxLength: 5 }),
  events: fc.array(eventArb, { minLength: 5, maxLength: 40 }),
  seed: fc.integer(),
});

/** A small deterministic PRNG (mulberry32) for request latencies. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function endOf(t: TermRecord): number {
  return Math.min(t.lostAt ?? Number.POSITIVE_INFINITY, t.killedAt ?? Number.POSITIVE_INFINITY);
}

/** The safety properties over a finished history. */
function checkHistory(sim: ElectionSim): void {
  const terms = [...sim.terms].sort((a, b) => a.acquiredAt - b.acquiredAt || a.term - b.term);
  for (let i = 1; i < terms.length; i++) {
    const prev = terms[i - 1]!;
    const next = terms[i]!;
    assert.ok(
      next.term > prev.term,
      `terms must grow: ${prev.nodeId}#${prev.term} then ${next.nodeId}#${next.term}`,
    );
    assert.ok(
      endOf(prev) <= next.acquiredAt,
      `term ${prev.term} (${prev.nodeId}) acted until ${endOf(prev)} but term ${next.term} (${next.nodeId}) began at ${next.acquiredAt}`,
    );
  }
  const byTerm = new Map(terms.map((t) => [t.term, t]));
  for (const a of sim.actions) {
    const t = byTerm.get(a.term);
    assert.ok(t && t.nodeId === a.nodeId, `action of unknown term ${a.term}`);
    assert.ok(
      a.at >= t.acquiredAt && a.at <= endOf(t),
      `action of term ${a.term} at ${a.at} outside [${t.acquiredAt}, ${endOf(t)}]`,
    );
  }
}

async function runScenario(
  sc: Scenario,
  totals: { terms: number; actions: number },
): Promise<void> {
  const timings = sc.fast ? FAST_TIMINGS : DEFAULT_TIMINGS;
  const random = prng(sc.seed);
  const sim = new ElectionSim({ latencyMs: () => 2 + random() * 60, peerLatencyMs: 3 });
  const configs = new Map<string, NodeConfig>();
  const add = (id: string, cfg: NodeConfig): SimNode => {
    configs.set(id, cfg);
    const node = sim.addNode(id, { ...timings, ...cfg });
    node.elector.start();
    return node;
  };
  for (const [i, cfg] of sc.nodes.entries()) add(`n${i}`, cfg);
  const live = (): SimNode[] => sim.nodes.filter((n) => !n.killed);
  const at = (delayMs: number, fn: () => void): void => {
    void sim.clock.sleepUntil(sim.clock.now() + delayMs).then(fn);
  };

  try {
    for (const ev of sc.events) {
      await sim.clock.advance(ev.gapMs);
      const leaders = sim.leaders();
      const pool = live();
      const target =
        ev.atLeader && leaders.length > 0 ? leaders[0]! : pool[ev.target % pool.length];
      if (!target) continue;
      const durationMs = ev.fraction * timings.leaderTimeoutMs;
      switch (ev.kind) {
        case "pause":
          // Pauses shorter than the margin are what the design tolerates (docs/leader-election.md).
          target.proc.pauseUntil(
            sim.clock.now() + (ev.fraction / 3) * (timings.safetyMarginMs / 2),
          );
          break;
        case "fail":
        case "stall":
        case "lose_answer": {
          const fault: StorageFault = ev.kind;
          target.storage.setFault(fault);
          at(durationMs, () => {
            if (target.storage.fault === fault) target.storage.setFault("none");
          });
          break;
        }
        case "kill":
          if (live().length <= 1) break;
          sim.kill(target);
          at(durationMs, () => add(target.id, configs.get(target.id)!));
          break;
        case "stop": {
          const stopping = target.elector.stop();
          at(durationMs, () => {
            void stopping.then(() => {
              if (!target.killed && target.elector.state === "stopped") target.elector.start();
            });
          });
          break;
        }
        case "peer_down":
          target.peerDown = true;
          at(durationMs, () => {
            target.peerDown = false;
          });
          break;
      }
    }
    // Let every scheduled fault clear and every restart happen, then demand exactly one leader.
    await sim.clock.advance(4 * timings.leaderTimeoutMs);
    for (const n of live()) {
      n.storage.setFault("none");
      n.peerDown = false;
      if (n.elector.state === "stopped") n.elector.start();
    }
    await sim.clock.advance(2 * timings.infrequentIntervalMs + 4 * timings.leaderTimeoutMs);
    assert.equal(sim.leaders().length, 1, "exactly one leader once faults are gone");
    checkHistory(sim);
    totals.terms += sim.terms.length;
    totals.actions += sim.actions.length;
  } finally {
    await sim.stopAll();
  }
}

describe("LockfileElector safety (randomized, simulated time)", () => {
  it("no two terms act at once and terms strictly increase", async () => {
    const totals = { terms: 0, actions: 0 };
    const numRuns = Number(process.env.NSTANCE_ELECTION_RUNS ?? 25);
    await fc.assert(
      fc.asyncProperty(scenarioArb, (sc) => runScenario(sc, totals)),
      { numRuns, endOnFailure: false },
    );
    // The scenarios really exercised failovers.
    assert.ok(totals.terms >= numRuns * 2, `only ${totals.terms} terms in ${numRuns} runs`);
    assert.ok(totals.actions > 0);
  });

  it("the checker itself catches overlapping terms", () => {
    const sim = new ElectionSim();
    sim.terms.push(
      { nodeId: "a", term: 1, acquiredAt: 0, lostAt: 5_000 },
      { nodeId: "b", term: 2, acquiredAt: 4_999 },
    );
    assert.throws(() => checkHistory(sim), /acted until 5000/);
    sim.terms.splice(
      0,
      2,
      { nodeId: "a", term: 2, acquiredAt: 0, lostAt: 1 },
      { nodeId: "b", term: 2, acquiredAt: 2 },
    );
    assert.throws(() => checkHistory(sim), /terms must grow/);
  });
});
