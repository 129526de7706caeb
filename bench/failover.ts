// SPDX-License-Identifier: Apache-2.0
/**
 * Failover: N kill -9 failovers of the shard leader among 3 servers on file storage, at the default
 * election settings and at fast ones. Prints p50/p95 takeover time (kill → a single agreed new
 * leader) and storage operations per minute per server (leader and follower, from the electors'
 * own counters), beside the reference's figures (11–15 s typical; every server reads every 5 s).
 * Usage: npx tsx bench/failover.ts [failovers]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JSONPath } from "jsonc-parser";
import { shardConfigText, writeShardConfig } from "../test/support/shard-fixture.js";
import {
  leadershipOf,
  type ShardServer,
  startShardServers,
  waitForSingleLeader,
} from "../test/support/shard-servers.js";
import { machineLine, percentile, writeBenchSection } from "./bench-report.js";

const FAILOVERS = Number(process.argv[2] ?? 20);
const isLive = (s: ShardServer) =>
  s.proc.child.exitCode === null && s.proc.child.signalCode === null;

interface Stats {
  reads: number;
  writes: { acquire: number; renew: number; release: number };
  peerRequests: number;
}

async function statsOf(s: ShardServer): Promise<Stats | undefined> {
  return ((await leadershipOf(s)) as unknown as { stats?: Stats } | undefined)?.stats;
}

const opsOf = (st: Stats) => st.reads + st.writes.acquire + st.writes.renew + st.writes.release;

async function run(name: string, edits: Array<[JSONPath, unknown]>) {
  const dir = await mkdtemp(join(tmpdir(), "nstance-bench-failover-"));
  const bucket = join(dir, "bucket");
  await writeShardConfig(bucket, await shardConfigText(edits));
  const servers = await startShardServers({
    count: 3,
    workDir: dir,
    storageArgs: ["--storage", "file", "--bucket", bucket],
  });
  try {
    // Steady-state storage traffic over one minute-ish window.
    const { leader } = await waitForSingleLeader(servers, 60_000);
    await new Promise((r) => setTimeout(r, 5_000));
    const before = await Promise.all(servers.map(statsOf));
    const windowMs = 30_000;
    await new Promise((r) => setTimeout(r, windowMs));
    const afterStats = await Promise.all(servers.map(statsOf));
    const perMin = (i: number) => ((opsOf(afterStats[i]!) - opsOf(before[i]!)) * 60_000) / windowMs;
    const readsPerMin = (i: number) =>
      ((afterStats[i]!.reads - before[i]!.reads) * 60_000) / windowMs;
    const li = servers.indexOf(leader);
    const fi = (li + 1) % servers.length;

    const takeovers: number[] = [];
    for (let i = 0; i < FAILOVERS; i++) {
      const cur = await waitForSingleLeader(servers, 60_000);
      await new Promise((r) => setTimeout(r, 1_000));
      const t0 = Date.now();
      cur.leader.proc.child.kill("SIGKILL");
      await cur.leader.proc.exited;
      const next = await waitForSingleLeader(servers.filter(isLive), 60_000);
      takeovers.push(next.at - t0);
      process.stdout.write(`  ${name} failover ${i + 1}: ${next.at - t0} ms\n`);
      cur.leader.restart();
    }
    const row = {
      name,
      p50: percentile(takeovers, 50),
      p95: percentile(takeovers, 95),
      max: Math.max(...takeovers),
      leaderOps: perMin(li),
      followerOps: perMin(fi),
      leaderReads: readsPerMin(li),
      followerReads: readsPerMin(fi),
    };
    console.log(
      `${name}: takeover p50 ${row.p50} ms p95 ${row.p95} ms max ${row.max} ms; storage ops/min leader ${row.leaderOps.toFixed(1)} (reads ${row.leaderReads.toFixed(1)}), follower ${row.followerOps.toFixed(1)} (reads ${row.followerReads.toFixed(1)})`,
    );
    return row;
  } finally {
    await Promise.all(servers.map((s) => s.proc.stop("SIGKILL")));
    await rm(dir, { recursive: true, force: true });
  }
}

const rows = [
  await run("default (2s / 30s / 6s)", [
    [
      ["shard", "leader_election"],
      { frequent_interval: "2s", infrequent_interval: "30s", leader_timeout: "6s" },
    ],
  ]),
  await run("fast (500ms / 2s / 2s)", [
    [
      ["shard", "leader_election"],
      { frequent_interval: "500ms", infrequent_interval: "2s", leader_timeout: "2s" },
    ],
  ]),
];
await writeBenchSection(
  "Failover: kill -9 of the shard leader (bench/failover.ts)",
  [
    `${FAILOVERS} kill -9 failovers per row, 3 servers on file storage, peer mode on, ${machineLine()}.`,
    "Takeover = from the kill to every live server agreeing on one new leader (health JSON polled every 50 ms).",
    "Storage ops/min = lockfile reads + conditional writes per server over a 30 s steady window, from the",
    "elector's counters. Heartbeat writes (one per 5 s per server) are not election traffic and are excluded.",
    "",
    "| settings (frequent / infrequent / timeout) | takeover p50 | p95 | max | leader ops/min (reads) | follower ops/min (reads) |",
    "|---|---|---|---|---|---|",
    ...rows.map(
      (r) =>
        `| ${r.name} | ${(r.p50 / 1000).toFixed(2)} s | ${(r.p95 / 1000).toFixed(2)} s | ${(r.max / 1000).toFixed(2)} s | ${r.leaderOps.toFixed(1)} (${r.leaderReads.toFixed(1)}) | ${r.followerOps.toFixed(1)} (${r.followerReads.toFixed(1)}) |`,
    ),
    "| reference s3lect (5s / 30s / 15s) | 11–15 s typical, ~30 s worst | | | 12 reads + 12 writes | 12 reads |",
  ].join("\n"),
);
