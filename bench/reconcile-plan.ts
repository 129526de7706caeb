// SPDX-License-Identifier: Apache-2.0
/**
 * plan() time for 10,000 managed instances in 100 groups, median of 20 runs after 10 warm-up runs: a
 * steady fleet (nothing to do) and a busy one (drift, failures, drains, spot notices, resizes,
 * deleted groups, on-demand instances). Usage: npx tsx bench/reconcile-plan.ts [runs] [--no-write]
 */
import { plan } from "../src/reconcile/plan.js";
import type { PlanGroup, PlanInstance, PlanSettings } from "../src/reconcile/plan-types.js";
import { machineLine, median, percentile, writeBenchSection } from "./bench-report.js";

const RUNS = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 20);
const WRITE = !process.argv.includes("--no-write");
const WARMUP = 10;
const GROUPS = 100;
const PER_GROUP = 100;
const NOW = 1_700_000_000_000;
const MIN = 60_000;

interface Fleet {
  groups: PlanGroup[];
  instances: PlanInstance[];
  settings: PlanSettings;
}

function fleet(busy: boolean): Fleet {
  const groups: PlanGroup[] = [];
  const instances: PlanInstance[] = [];
  for (let g = 0; g < GROUPS; g++) {
    const key = `group-${String(g).padStart(3, "0")}`;
    const tenant = `tenant-${g % 10}`;
    const deleted = busy && g % 50 === 49; // 2 groups removed from config
    const size =
      busy && g % 10 === 3 ? PER_GROUP + 5 : busy && g % 10 === 4 ? PER_GROUP - 5 : PER_GROUP;
    if (!deleted) {
      groups.push({
        tenant,
        key,
        size,
        infraHash: busy && g % 4 === 0 ? "h2" : "h1",
        drainTimeoutMs: 5 * MIN,
        createRateLimitMs: g % 2 === 0 ? 1000 : 0,
      });
    }
    for (let n = 0; n < PER_GROUP; n++) {
      const id = `web${key}${String(n).padStart(4, "0")}`;
      const createdAt = NOW - (n + 1) * 7 * MIN;
      const i: PlanInstance = {
        id,
        tenant,
        group: key,
        onDemand: false,
        createdAt,
        status: "running",
        infraHash: "h1",
        providerId: `i-${id}`,
        registeredAt: createdAt + 30_000,
      };
      if (busy) {
        if (n === 7) i.unhealthy = { reason: "not-found", skipDrain: true };
        if (n === 11 && g % 3 === 0) i.unhealthy = { reason: "missed-reports", skipDrain: false };
        if (n === 13 && g % 5 === 0) i.spotNotice = { deadlineAt: NOW + 2 * MIN };
        if (n === 17 && g % 2 === 0) {
          i.drain = { startedAt: NOW - MIN, deadlineAt: NOW + 4 * MIN, reason: "config-drift" };
        }
      }
      instances.push(i);
    }
    if (busy) {
      for (let n = 0; n < 5; n++) {
        instances.push({
          id: `opr${key}${n}`,
          tenant,
          group: key,
          onDemand: true,
          createdAt: NOW - 90 * MIN,
          status: "running",
          infraHash: "h0",
        });
      }
    }
  }
  return {
    groups,
    instances,
    settings: {
      now: NOW,
      defaultDrainTimeoutMs: 5 * MIN,
      eligibleAgeMs: busy ? 24 * 60 * MIN : 7 * 24 * 60 * MIN,
      forcedAgeMs: 30 * 24 * 60 * MIN,
      lastCreateAt: new Map(),
      maxConcurrentCreates: 500,
    },
  };
}

function time(f: Fleet): { ms: number[]; actions: number } {
  let actions = 0;
  for (let i = 0; i < WARMUP; i++) actions = plan(f.groups, f.instances, f.settings).actions.length;
  const ms: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    plan(f.groups, f.instances, f.settings);
    ms.push(performance.now() - t0);
  }
  return { ms, actions };
}

const rows: string[] = [];
for (const busy of [false, true]) {
  const f = fleet(busy);
  const managed = f.instances.filter((i) => !i.onDemand).length;
  const r = time(f);
  const row = `| ${busy ? "busy" : "steady"} | ${managed.toLocaleString("en")} | ${GROUPS} | ${median(r.ms).toFixed(2)} | ${percentile(r.ms, 90).toFixed(2)} | ${r.actions} |`;
  rows.push(row);
}
const body = [
  `plan() over 10,000 managed instances in 100 groups, ${RUNS} runs after ${WARMUP} warm-up runs.`,
  `Machine: ${machineLine()}.`,
  "",
  "| fleet | managed instances | groups | median ms | p90 ms | actions |",
  "|---|---|---|---|---|---|",
  ...rows,
  "",
  "busy: 25 groups drifted, 1 dead and (every 3rd group) 1 silent instance per group, spot notices,",
  "drains in progress, 20 groups resized by ±5, 2 groups deleted, 5 on-demand instances per group.",
].join("\n");
console.log(body);
if (WRITE) await writeBenchSection("Reconciler plan()", body);
