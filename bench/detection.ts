// SPDX-License-Identifier: Apache-2.0
/**
 * Failure detection (issue 7): N trials each of a crash (kill -9 of an agent: its VM is gone), a
 * hang (SIGSTOP: the VM runs, the agent is silent) and a network partition (a TCP proxy between
 * agent and server stops forwarding without closing either socket), on a real server whose
 * `local` provider runs real agents. Prints p50/p99 from the fault to the verdict, to the
 * replacement's create being issued and to the group being whole again (the replacement's agent
 * reporting), beside the seed's figures and the peers'. Then measures how fast keepalive finds a
 * partition at several settings, and whether aggressive keepalive drops healthy agents.
 * Usage: npx tsx bench/detection.ts [trials] [keepaliveTrials]
 */
import { writeFile } from "node:fs/promises";
import { parseDurationMs } from "../src/shared/duration.js";
import { sleep } from "../src/shared/sleep.js";
import {
  allAgentsEnvFile,
  type DetectionFleet,
  type DetectionFleetOptions,
  REPORT_INTERVAL_MS,
  startDetectionFleet,
} from "../test/e2e/detection-fixture.js";
import { startTcpProxy, type TcpProxy } from "../test/support/tcp-proxy.js";
import { machineLine, percentile, writeBenchSection } from "./bench-report.js";

const TRIALS = Number(process.argv[2] ?? 20);
const KEEPALIVE_TRIALS = Number(process.argv[3] ?? 5);
const TRIAL_TIMEOUT_MS = 120_000;
/** Detection settings of the hang and partition rows: the seed's 3 missed reports, 1 s reports. */
const FAST: Record<string, unknown> = {
  missed_reports: 3,
  keepalive_time: "2s",
  keepalive_timeout: "3s",
};

interface Trial {
  detectMs: number;
  createMs: number;
  wholeMs: number;
  /** Stream lost (crash: socket closed; hang, partition: keepalive). */
  lostMs: number | undefined;
}

type Fault = "crash" | "hang" | "partition";

/** Runs one fault against the oldest instance and times what follows. */
async function trial(
  d: DetectionFleet,
  fault: Fault,
  size: number,
  proxy?: TcpProxy,
): Promise<Trial> {
  const ids = await d.whole(size);
  const victim = ids[0]!;
  const pid = await d.fleet.agentPid(victim);
  // Let a report or two pass so the victim's silence starts from a normal report.
  await sleep(REPORT_INTERVAL_MS * 1.5);
  const at = Date.now();
  if (fault === "crash") process.kill(pid, "SIGKILL");
  else if (fault === "hang") process.kill(pid, "SIGSTOP");
  else proxy!.mode = "blackhole";
  try {
    await d.until(
      `${fault}: replacement create issued`,
      () => d.decision(victim, "replacement_started") !== undefined,
      TRIAL_TIMEOUT_MS,
    );
    // The replacement's agent must be able to connect (it dials the proxy too).
    if (proxy) proxy.mode = "forward";
    const created = d.decision(victim, "replacement_started")!;
    const replacement = String(created.evidence.replacement_id);
    await d.until(
      `${fault}: replacement reporting`,
      () => d.reportingSince(at).includes(replacement),
      TRIAL_TIMEOUT_MS,
    );
    const wholeAt = Date.now();
    const verdict = d.decision(victim, "found_unhealthy")!;
    const lost = d.history(victim).find((x) => x.decision === "agent_disconnected" && x.at >= at);
    // The old instance leaves (at once, or after its drain) before the next trial.
    await d.until(`${fault}: old instance deleted`, () => d.deleted(victim), TRIAL_TIMEOUT_MS);
    return {
      detectMs: verdict.at - at,
      createMs: created.at - at,
      wholeMs: wholeAt - at,
      lostMs: lost ? lost.at - at : undefined,
    };
  } finally {
    if (fault === "hang") {
      try {
        process.kill(pid, "SIGCONT");
      } catch {
        // Deleted meanwhile: nothing to continue.
      }
    }
  }
}

interface Row {
  fault: Fault;
  trials: Trial[];
}

async function runFault(fault: Fault): Promise<Row> {
  const size = fault === "partition" ? 1 : 3;
  const opts: DetectionFleetOptions = {
    // The partition fleet starts empty: its agents dial a proxy that exists once the server does.
    size: fault === "partition" ? 0 : size,
    ...(fault === "crash" ? {} : { failureDetection: FAST }),
  };
  const d = await startDetectionFleet(opts);
  let proxy: TcpProxy | undefined;
  try {
    if (fault === "partition") {
      proxy = await startTcpProxy("127.0.0.1", d.fleet.server.ports.agent);
      await setAllAgentsThroughProxy(d, proxy);
      await d.scale(size);
    }
    const trials: Trial[] = [];
    for (let i = 0; i < TRIALS; i++) {
      const t = await trial(d, fault, size, proxy);
      trials.push(t);
      console.log(
        `  ${fault} ${i + 1}/${TRIALS}: lost ${t.lostMs ?? "-"} ms, verdict ${t.detectMs} ms, create issued ${t.createMs} ms, whole ${t.wholeMs} ms`,
      );
    }
    return { fault, trials };
  } finally {
    await proxy?.stop();
    await d.stop();
  }
}

/** Every agent started from now on dials the agent port through the proxy. */
async function setAllAgentsThroughProxy(d: DetectionFleet, proxy: TcpProxy): Promise<void> {
  await writeFile(
    allAgentsEnvFile(d.fleet.dir),
    `export NSTANCE_SERVER_AGENT_ADDR=localhost:${proxy.port}\n`,
  );
}

interface KeepaliveRow {
  setting: string;
  boundMs: number;
  lostMs: number[];
  /** Healthy agents' streams dropped during a quiet minute (false alarms of keepalive). */
  falseDrops: number;
  quietMs: number;
}

/** Partition → stream lost at one keepalive setting; then counts drops of healthy streams. */
async function runKeepalive(time: string, timeout: string): Promise<KeepaliveRow> {
  const d = await startDetectionFleet({
    size: 0,
    failureDetection: { keepalive_time: time, keepalive_timeout: timeout, missed_reports: 1000 },
  });
  const proxy = await startTcpProxy("127.0.0.1", d.fleet.server.ports.agent);
  try {
    await setAllAgentsThroughProxy(d, proxy);
    await d.scale(3);
    const ids = await d.whole(3);
    // Quiet period: healthy agents, aggressive pings; any lost stream is a false alarm.
    const quietMs = 30_000;
    const quietFrom = Date.now();
    await sleep(quietMs);
    const falseDrops = ids
      .flatMap((id) => d.history(id))
      .filter((x) => x.decision === "agent_disconnected" && x.at >= quietFrom).length;
    const lostMs: number[] = [];
    for (let i = 0; i < KEEPALIVE_TRIALS; i++) {
      await d.whole(3);
      await sleep(1_000);
      const at = Date.now();
      proxy.mode = "blackhole";
      const victims = d.live();
      await d.until(
        "every stream lost",
        () =>
          victims.every((id) =>
            d.history(id).some((x) => x.decision === "agent_disconnected" && x.at >= at),
          ),
        TRIAL_TIMEOUT_MS,
      );
      for (const id of victims) {
        const x = d.history(id).find((e) => e.decision === "agent_disconnected" && e.at >= at)!;
        lostMs.push(x.at - at);
      }
      proxy.mode = "forward";
      proxy.cutAll();
      console.log(
        `  keepalive ${time}/${timeout} ${i + 1}/${KEEPALIVE_TRIALS}: lost ${lostMs.slice(-3).join(", ")} ms`,
      );
    }
    return {
      setting: `${time} / ${timeout}`,
      boundMs: parseDurationMs(time)! + parseDurationMs(timeout)!,
      lostMs,
      falseDrops,
      quietMs,
    };
  } finally {
    await proxy.stop();
    await d.stop();
  }
}

const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const p = (xs: number[], q: number): string => (xs.length === 0 ? "-" : s(percentile(xs, q)));

const rows: Row[] = [];
for (const fault of ["crash", "hang", "partition"] as const) rows.push(await runFault(fault));
const keepalive: KeepaliveRow[] = [];
for (const [time, timeout] of [
  ["500ms", "500ms"],
  ["1s", "1s"],
  ["5s", "5s"],
  ["20s", "10s"],
] as const) {
  keepalive.push(await runKeepalive(time, timeout));
}

const SEED: Record<Fault, string> = {
  crash: "0–30 s",
  hang: "3 missed reports (3–5 min at 60 s)",
  partition: "30 s",
};
const PEERS =
  "GCP MIG autohealing ~10 s after the health check fails; Cluster API MachineHealthCheck: minutes";
const lines = [
  `${TRIALS} trials per fault, ${machineLine()}. One real server (file storage) whose \`local\` provider runs`,
  "real agents; agents report every 1 s (`health_check_interval` 1s). Crash: kill -9 of the oldest agent",
  "of a 3-instance group (the socket closes, the provider sees the process gone). Hang: SIGSTOP of the",
  "oldest agent of a 3-instance group, `missed_reports` 3, keepalive 2 s / 3 s. Partition: the only",
  "agent of a 1-instance group dials the server through a TCP proxy that stops forwarding, same settings.",
  "Verdict = the `found_unhealthy` decision; create issued = `replacement_started` (the replacement's",
  "record written, provider create next); whole again = the replacement's agent reporting. The",
  "SIGSTOP/partition verdict waits for the missed reports by design (3 s here; 3 min at the default 60 s),",
  "so with 1 s reports the sweep finds the silence before keepalive drops the stream (stream lost: the",
  "`agent_disconnected` decision; a hung instance already deleted when its stream drops has none).",
  "",
  "| fault | stream lost p50 | verdict p50 | p99 | create issued p50 | p99 | whole again p50 | p99 | seed | peers |",
  "|---|---|---|---|---|---|---|---|---|---|",
  ...rows.map((r) => {
    const l = r.trials.flatMap((t) => (t.lostMs === undefined ? [] : [t.lostMs]));
    const v = r.trials.map((t) => t.detectMs);
    const c = r.trials.map((t) => t.createMs);
    const w = r.trials.map((t) => t.wholeMs);
    return `| ${r.fault} | ${p(l, 50)} | ${p(v, 50)} | ${p(v, 99)} | ${p(c, 50)} | ${p(c, 99)} | ${p(w, 50)} | ${p(w, 99)} | ${SEED[r.fault]} | ${r.fault === "crash" ? PEERS : ""} |`;
  }),
  "",
  `Keepalive: ${KEEPALIVE_TRIALS} partitions of 3 agents per setting (fault → the server records the stream lost),`,
  "and lost streams of healthy agents during a quiet 30 s first (a keepalive too short for the agents' event",
  "loops drops them: each drop costs a reconnect and, with too few `missed_reports`, a false replacement).",
  "",
  "| keepalive time / timeout | bound | lost p50 | p99 | max | healthy streams dropped |",
  "|---|---|---|---|---|---|",
  ...keepalive.map(
    (k) =>
      `| ${k.setting} | ${s(k.boundMs)} | ${p(k.lostMs, 50)} | ${p(k.lostMs, 99)} | ${s(Math.max(...k.lostMs))} | ${k.falseDrops} in ${k.quietMs / 1000} s |`,
  ),
];
console.log(lines.join("\n"));
await writeBenchSection("Failure detection (bench/detection.ts)", lines.join("\n"));
