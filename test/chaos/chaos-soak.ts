// SPDX-License-Identifier: Apache-2.0
/**
 * The chaos soak (issue 9): an HA trio of real `nstance-server` processes for one shard on S3 (the
 * s3rver test server, each server behind its own storage-fault proxy; STEADY_ELECTION), the
 * `local` provider running real `nstance-agent` processes, and a fault schedule drawn from a seed.
 * Each round injects faults for a while (kill -9 the leader or a standby and restart it,
 * SIGSTOP/SIGCONT a server, kill or freeze agents, make storage slow, failing with 503s or
 * unreachable for one server or all) while an operator
 * changes the shard through nstance-admin (scale, create/delete dynamic groups, valid and invalid
 * config refreshes), recording which changes were acknowledged. Then the faults stop and the
 * round checks the invariants; after the last round every cache dir is deleted and the servers
 * restarted, which must change nothing. Used by chaos-soak.test.ts (bounded) and
 * bench/chaos-soak.ts (long, with figures).
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { applyEdits, type JSONPath, modify } from "jsonc-parser";
import { runAdmin } from "../../src/admin/main.js";
import type { EffectiveGroup } from "../../src/config/server-config.js";
import type { Db } from "../../src/db/database.js";
import { defaultAgentCommand, LocalProvider } from "../../src/providers/local/local-provider.js";
import { sleep } from "../../src/shared/sleep.js";
import { createStorage } from "../../src/storage/create-storage.js";
import type { ObjectStorage } from "../../src/storage/object-storage.js";
import { FLEET_CLUSTER, FLEET_SHARD } from "../e2e/local-fleet.js";
import {
  checkFleetHistory,
  FLEET_EDITS,
  FLEET_GROUP,
  FLEET_REPORT_INTERVAL,
  FLEET_TENANT,
  type FleetRow,
  FleetSampler,
  readFleetDecisions,
  readFleetRows,
  readLocalAgents,
  type SizeChange,
} from "../e2e/local-fleet-fixture.js";
import { InvariantChecker } from "../reconcile/invariant-checker.js";
import { type S3TestServer, startS3Server } from "../support/s3-server.js";
import { TEST_ENCRYPTION_KEY } from "../support/server-process.js";
import { STEADY_ELECTION, shardConfigText } from "../support/shard-fixture.js";
import {
  leadershipOf,
  type ShardServer,
  startShardServers,
  waitForSingleLeader,
} from "../support/shard-servers.js";
import {
  type StorageFaultProxy,
  type StorageFaultSettings,
  StorageFaults,
  startStorageFaultProxy,
} from "../support/storage-faults.js";
import {
  checkCreatedOnce,
  checkSqliteIntegrity,
  checkStorageParses,
  checkTermsExclusive,
  leaderActions,
} from "./chaos-invariants.js";
import { SeededRandom } from "./seeded-random.js";

/** The seed of runs that name none (CI): fixed, so `npm test` replays the same schedule. */
export const DEFAULT_CHAOS_SEED = 20_261_123;
/** Bound on convergence after the faults of a round stop (stated in docs/reliability.md). */
export const DEFAULT_CONVERGE_BOUND_MS = 300_000;
/** Length of one round's fault phase. */
export const DEFAULT_ROUND_FAULTS_MS = 40_000;
/** Size of the static group at start. */
export const DEFAULT_CHAOS_GROUP_SIZE = 2;
/** `shard.health_check_interval`: short, so a killed agent is replaced within the round's bound. */
const CHAOS_HEALTH_CHECK_INTERVAL = "3s";
/** `shard.failure_detection.sweep_interval`: the 2 min default would dominate a round. */
const CHAOS_SWEEP_INTERVAL = "5s";
/** Most dynamic groups alive at once (each holds at most one agent). */
const MAX_DYNAMIC_GROUPS = 2;
/** How long a leader must have led its term before its database is sampled (its rebuild). */
const SETTLED_LEADER_MS = 10_000;
/** Prefix of the dynamic groups the operator creates. */
const DYNAMIC_PREFIX = "chaos-";
/** Key of the shard's static config in the bucket. */
const CONFIG_KEY = `config/${FLEET_SHARD}.jsonc`;
/** Share of storage faults that hit every server at once (the rest hit one, drawn by the seed). */
const STORAGE_FAULT_ALL_SHARE = 0.3;

/** What kinds of fault and operator change the schedule draws. */
export type ChaosFaultKind =
  | "kill-leader"
  | "kill-standby"
  | "freeze-server"
  | "kill-agent"
  | "freeze-agent"
  | "storage-slow"
  | "storage-5xx"
  | "storage-unreachable"
  | "pause";
/** Operator changes the schedule draws. */
export type ChaosOpKind =
  | "scale-static"
  | "create-group"
  | "delete-group"
  | "scale-dynamic"
  | "config-refresh"
  | "config-invalid";

/** Options for {@link runChaosSoak}. */
export interface ChaosSoakOptions {
  seed: number;
  /** Number of rounds (faults, then convergence and checks). */
  rounds: number;
  roundFaultsMs?: number;
  convergeBoundMs?: number;
  /** Progress lines (the seed first); defaults to nothing. */
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/** Figures and violations of a run. */
export interface ChaosReport {
  seed: number;
  rounds: number;
  faults: Record<string, number>;
  /** Storage faults (all kinds) that hit one server, and those that hit all three. */
  storageFaultTargets: { one: number; all: number };
  /** Requests the storage-fault proxies delayed, answered 503 or dropped. */
  storageRequestsFaulted: { delayed: number; errors: number; drops: number };
  failovers: number;
  /** Provider instances ever seen beyond the initial group (replacements, rotations, scale-up). */
  instancesCreated: number;
  operatorChanges: Record<string, { acknowledged: number; refused: number }>;
  /** Acknowledged changes whose effect was checked present after the faults. */
  acknowledgedFound: number;
  acknowledgedChecked: number;
  invalidConfigsRejected: number;
  invariantChecksPassed: number;
  convergeMs: number[];
  samples: number;
  maxAliveAgents: number;
  wallMs: number;
  violations: string[];
}

/** A group as the operator believes it is (the effect of its last acknowledged change). */
interface ExpectedGroup {
  size: number;
  present: boolean;
  /** False after a change whose outcome is unknown (neither acknowledged nor refused). */
  certain: boolean;
  /** How many acknowledged changes this expectation stands for. */
  acks: number;
}

/** An `nstance-admin` run. */
interface AdminResult {
  code: number;
  out: string;
  err: string;
}

const isLive = (s: ShardServer): boolean =>
  s.proc.child.exitCode === null && s.proc.child.signalCode === null;

/** Runs a chaos soak and returns its report (the caller asserts on `violations`). */
export async function runChaosSoak(opts: ChaosSoakOptions): Promise<ChaosReport> {
  const soak = await ChaosSoak.start(opts);
  try {
    return await soak.run();
  } finally {
    await soak.stop();
  }
}

/** The running soak; see the file comment. */
class ChaosSoak {
  readonly #o: ChaosSoakOptions;
  readonly #rnd: SeededRandom;
  readonly #dir: string;
  #s3: S3TestServer | undefined;
  /** One storage-fault proxy per server, same index as `#servers`. */
  readonly #proxies: StorageFaultProxy[] = [];
  /** The soak's own client (the operator's tooling), straight to the S3 server: never faulted. */
  #storage: ObjectStorage | undefined;
  readonly #stateDir: string;
  readonly #identityDir: string;
  readonly #configText: string;
  #servers: ShardServer[] = [];
  #leaderId: string | undefined;
  readonly #dbs = new Map<string, BetterSqlite3.Database>();
  #cacheGone = false;
  /** Agent processes of the static group: never more than size + 1 alive. */
  readonly #sampler: FleetSampler;
  /** The leader's database, every group: never more than size + 1 managed rows. */
  readonly #checker: InvariantChecker;
  readonly #checkerLoop: AbortController = new AbortController();
  #checkerDone: Promise<void> | undefined;
  #checks = 0;
  readonly #sizes: SizeChange[];
  #samplerSize: number;
  /** Per group, the largest size it may be counted against until a convergence confirms the last. */
  readonly #bound = new Map<string, number>();
  readonly #expected = new Map<string, ExpectedGroup>();
  #nextGroup = 1;
  #configEpoch = 0;
  readonly #seenAgents = new Set<string>();
  readonly #report: ChaosReport;
  readonly #started = Date.now();

  private constructor(o: ChaosSoakOptions, dir: string, configText: string) {
    this.#o = o;
    this.#rnd = new SeededRandom(o.seed);
    this.#dir = dir;
    this.#stateDir = join(dir, "local");
    this.#identityDir = join(dir, "operator");
    this.#configText = configText;
    this.#sizes = [{ at: 0, size: DEFAULT_CHAOS_GROUP_SIZE }];
    this.#samplerSize = DEFAULT_CHAOS_GROUP_SIZE;
    this.#expected.set(FLEET_GROUP, {
      size: DEFAULT_CHAOS_GROUP_SIZE,
      present: true,
      certain: true,
      acks: 0,
    });
    this.#sampler = new FleetSampler({
      stateDir: this.#stateDir,
      // Processes only: the database check covers every group below.
      db: () => undefined,
      size: () => this.#samplerSize,
    });
    const leaderDb = (): Db => {
      const db = this.#leaderDb();
      if (!db) throw new Error("no leader database");
      return db;
    };
    this.#checker = new InvariantChecker({
      get db(): Db {
        return leaderDb();
      },
      groups: () =>
        [...this.#bound].map(
          ([key, size]) => ({ tenant: FLEET_TENANT, key, size }) as EffectiveGroup,
        ),
      reconciler: () => undefined,
    });
    this.#bound.set(FLEET_GROUP, DEFAULT_CHAOS_GROUP_SIZE);
    this.#report = {
      seed: o.seed,
      rounds: o.rounds,
      faults: {},
      storageFaultTargets: { one: 0, all: 0 },
      storageRequestsFaulted: { delayed: 0, errors: 0, drops: 0 },
      failovers: 0,
      instancesCreated: 0,
      operatorChanges: {},
      acknowledgedFound: 0,
      acknowledgedChecked: 0,
      invalidConfigsRejected: 0,
      invariantChecksPassed: 0,
      convergeMs: [],
      samples: 0,
      maxAliveAgents: 0,
      wallMs: 0,
      violations: [],
    };
  }

  /** Writes the config, starts the trio, waits for a leader and registers an operator. */
  static async start(o: ChaosSoakOptions): Promise<ChaosSoak> {
    o.log?.(`chaos soak: seed ${o.seed} (replay with NSTANCE_CHAOS_SEED=${o.seed})`);
    const dir = await mkdtemp(join(tmpdir(), "nstance-chaos-"));
    const stateDir = join(dir, "local");
    const command = [
      "/usr/bin/env",
      `NSTANCE_METRICS_INTERVAL=${FLEET_REPORT_INTERVAL}`,
      ...defaultAgentCommand(),
    ];
    const configText = await shardConfigText([
      ...STEADY_ELECTION,
      [["shard", "infra", "options"], { state_dir: stateDir, command }],
      ...FLEET_EDITS,
      [["groups", FLEET_TENANT, FLEET_GROUP, "size"], DEFAULT_CHAOS_GROUP_SIZE],
      [["defaults", "vars", "chaos_epoch"], "0"],
      // Replacement of a dead agent after 3 intervals (reference §failure detection).
      [["shard", "health_check_interval"], CHAOS_HEALTH_CHECK_INTERVAL],
      [["shard", "failure_detection"], { sweep_interval: CHAOS_SWEEP_INTERVAL }],
    ]);
    const soak = new ChaosSoak(o, dir, configText);
    try {
      const s3 = await startS3Server();
      soak.#s3 = s3;
      for (let i = 0; i < 3; i++) {
        // Seeded per proxy: the draws per request replay, apart from how many requests come.
        const rnd = new SeededRandom(o.seed + i + 1);
        soak.#proxies.push(
          await startStorageFaultProxy({
            target: s3.endpoint,
            faults: new StorageFaults({ random: () => rnd.next() }),
          }),
        );
      }
      soak.#storage = await createStorage({ kind: "s3", bucket: s3.bucket }, s3.env);
      await soak.#writeConfig(configText);
      soak.#servers = await startShardServers({
        count: 3,
        workDir: dir,
        storageArgs: ["--storage", "s3", "--bucket", s3.bucket],
        env: (i) => ({ ...s3.env, AWS_ENDPOINT_URL: soak.#proxies[i]!.endpoint }),
        // Debug level: the "Leader action" lines (with their term) feed the term check.
        extraArgs: ["--log-level", "debug"],
      });
      await soak.#findLeader(90_000);
      const reg = await soak.#admin([
        "cluster",
        "register-operator",
        "--storage",
        "s3",
        "--bucket",
        s3.bucket,
        "--encryption-key-env",
        "NSTANCE_ENCRYPTION_KEY",
        "--identity-dir",
        soak.#identityDir,
      ]);
      if (reg.code !== 0) throw new Error(`register-operator exited ${reg.code}: ${reg.err}`);
      soak.#sampler.start();
      soak.#checkerDone = soak.#runChecker(soak.#checkerLoop.signal);
    } catch (err) {
      await soak.stop();
      throw err;
    }
    return soak;
  }

  /** The rounds, then the cache-drop check; returns the report. */
  async run(): Promise<ChaosReport> {
    const r = this.#report;
    try {
      // The initial group must be up before the first fault (its size is the baseline).
      await this.#converge("initial group", this.#o.convergeBoundMs ?? DEFAULT_CONVERGE_BOUND_MS);
      for (let round = 1; round <= this.#o.rounds; round++) {
        this.#o.signal?.throwIfAborted();
        await this.#faultPhase(round);
        const stoppedAt = Date.now();
        await this.#converge(
          `round ${round}`,
          this.#o.convergeBoundMs ?? DEFAULT_CONVERGE_BOUND_MS,
        );
        const ms = Date.now() - stoppedAt;
        r.convergeMs.push(ms);
        this.#o.log?.(`round ${round}: converged ${ms} ms after the last fault`);
        await this.#checkRound(`round ${round}`);
      }
      await this.#cacheDropCheck();
      await this.#finalChecks();
    } catch (err) {
      r.violations.push(`run failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    await this.#sampler.stop();
    this.#checkerLoop.abort();
    await this.#checkerDone;
    r.violations.push(...this.#sampler.violations.map((v) => `sampler: ${v}`));
    r.violations.push(...this.#checker.violations.map((v) => `database sample: ${v}`));
    r.samples = this.#sampler.samples + this.#checks;
    r.maxAliveAgents = this.#sampler.maxAliveAgents;
    r.instancesCreated = Math.max(0, this.#seenAgents.size - DEFAULT_CHAOS_GROUP_SIZE);
    for (const p of this.#proxies) {
      const st = p.faults.stats;
      r.storageRequestsFaulted.delayed += st.delayed;
      r.storageRequestsFaulted.errors += st.errors;
      r.storageRequestsFaulted.drops += st.drops;
    }
    r.wallMs = Date.now() - this.#started;
    if (r.violations.length > 0) {
      this.#o.log?.(
        `chaos soak FAILED with seed ${r.seed} (replay with NSTANCE_CHAOS_SEED=${r.seed}):\n${r.violations.join("\n")}`,
      );
    }
    return r;
  }

  /** Stops the sampler, the servers and every agent; removes the directory (idempotent). */
  async stop(): Promise<void> {
    await this.#sampler.stop();
    this.#checkerLoop.abort();
    await this.#checkerDone;
    this.#closeDbs();
    for (const s of this.#servers) {
      // A frozen server must be thawed to exit on SIGTERM; SIGKILL ends it either way.
      if (isLive(s)) s.proc.child.kill("SIGCONT");
    }
    await Promise.all(this.#servers.map((s) => s.proc.stop("SIGTERM", 5_000)));
    const local = new LocalProvider({ stateDir: this.#stateDir, stopGraceMs: 2_000 });
    try {
      const running = await local.listInstances({ clusterId: FLEET_CLUSTER, shard: FLEET_SHARD });
      for (const i of running) {
        const meta = await this.#agentPid(i.instanceId);
        if (meta !== undefined) this.#signalAgent(meta, "SIGCONT");
      }
      await Promise.all(
        running.map((i) => local.deleteInstance(i.instanceId, i.providerInstanceId)),
      );
    } finally {
      await local.close();
    }
    for (const p of this.#proxies) await p.stop();
    await this.#s3?.stop();
    await rm(this.#dir, { recursive: true, force: true });
  }

  /**
   * Samples the leader's database every 250 ms until stopped. A sample counts only when the server
   * says it leads, has led the same term for {@link SETTLED_LEADER_MS} (a new leader first rebuilds
   * its rows from storage) and still leads it after the read: a former leader's or a rebuilding
   * leader's rows are stale by design, and the history check covers every moment afterwards.
   */
  async #runChecker(signal: AbortSignal): Promise<void> {
    const ledSince = new Map<string, number>();
    const leads = async (s: ShardServer): Promise<string | undefined> => {
      const st = await leadershipOf(s).catch(() => undefined);
      return st?.role === "leader" ? `${s.id}/${st.term}` : undefined;
    };
    while (!signal.aborted) {
      const server = this.#servers.find((s) => s.id === this.#leaderId);
      const term = server && isLive(server) ? await leads(server) : undefined;
      if (term === undefined) {
        await this.#findLeader(2_000).catch(() => undefined);
      } else {
        if (!ledSince.has(term)) ledSince.set(term, Date.now());
        if (Date.now() - ledSince.get(term)! >= SETTLED_LEADER_MS && this.#leaderDb()) {
          const mark = this.#checker.violations.length;
          try {
            this.#checker.check("sample");
            if ((await leads(server!)) === term) this.#checks++;
            else this.#checker.violations.splice(mark);
          } catch (err) {
            this.#checker.violations.splice(mark);
            // The database is being recreated or the leader changed under us: sample again.
            if (!(err instanceof BetterSqlite3.SqliteError) && !/no leader/.test(String(err))) {
              this.#checker.violations.push(`checker failed: ${String(err)}`);
            }
          }
        }
      }
      await sleep(250, signal).catch(() => undefined);
    }
  }

  // ---- faults -------------------------------------------------------------------------------

  async #faultPhase(round: number): Promise<void> {
    const until = Date.now() + (this.#o.roundFaultsMs ?? DEFAULT_ROUND_FAULTS_MS);
    while (Date.now() < until) {
      this.#o.signal?.throwIfAborted();
      const fault = this.#rnd.weighted<ChaosFaultKind>([
        ["kill-leader", 2],
        ["kill-standby", 2],
        ["freeze-server", 2],
        ["kill-agent", 2],
        ["freeze-agent", 1],
        ["storage-slow", 1],
        ["storage-5xx", 1],
        ["storage-unreachable", 1],
        ["pause", 1],
      ]);
      const op = this.#rnd.chance(0.7)
        ? this.#rnd.weighted<ChaosOpKind>([
            ["scale-static", 3],
            ["create-group", 2],
            ["delete-group", 2],
            ["scale-dynamic", 1],
            ["config-refresh", 1],
            ["config-invalid", 1],
          ])
        : undefined;
      // Draw every parameter now, so the schedule depends on the seed alone.
      const params = { a: this.#rnd.next(), b: this.#rnd.next(), c: this.#rnd.next() };
      this.#o.log?.(`round ${round}: fault ${fault}${op ? `, operator ${op}` : ""}`);
      this.#report.faults[fault] = (this.#report.faults[fault] ?? 0) + 1;
      if (op === "config-invalid") {
        // Alone: a server restarting while the invalid config is in the bucket would not start.
        await this.#fault(fault, params);
        await this.#operator(op, params);
      } else {
        await Promise.all([
          this.#fault(fault, params),
          op ? this.#operator(op, params) : Promise.resolve(),
        ]);
      }
      await sleep(500 + Math.floor(params.c * 1_500), this.#o.signal);
    }
  }

  async #fault(kind: ChaosFaultKind, p: { a: number; b: number }): Promise<void> {
    const holdMs = (min: number, max: number): number => min + Math.floor(p.b * (max - min));
    switch (kind) {
      case "kill-leader": {
        const leader = await this.#findLeader(60_000);
        leader.proc.child.kill("SIGKILL");
        await leader.proc.exited;
        await this.#findLeader(60_000);
        this.#report.failovers++;
        await sleep(holdMs(500, 3_000));
        await this.#restart(leader);
        return;
      }
      case "kill-standby": {
        const leader = await this.#findLeader(60_000);
        const standbys = this.#servers.filter((s) => s !== leader && isLive(s));
        if (standbys.length === 0) return;
        const s = standbys[Math.floor(p.a * standbys.length)]!;
        s.proc.child.kill("SIGKILL");
        await s.proc.exited;
        await sleep(holdMs(500, 4_000));
        await this.#restart(s);
        return;
      }
      case "freeze-server": {
        const live = this.#servers.filter(isLive);
        const s = live[Math.floor(p.a * live.length)]!;
        // Up to 9 s: beyond the 6 s lease a frozen leader is replaced and must fence itself.
        s.proc.child.kill("SIGSTOP");
        await sleep(holdMs(1_000, 9_000));
        s.proc.child.kill("SIGCONT");
        return;
      }
      case "kill-agent":
      case "freeze-agent": {
        const agents = (await readLocalAgents(this.#stateDir)).filter(
          (a) => a.alive && a.pid !== undefined,
        );
        if (agents.length === 0) return;
        const a = agents[Math.floor(p.a * agents.length)]!;
        if (kind === "kill-agent") {
          this.#signalAgent(a.pid!, "SIGKILL");
          return;
        }
        this.#signalAgent(a.pid!, "SIGSTOP");
        await sleep(holdMs(2_000, 10_000));
        this.#signalAgent(a.pid!, "SIGCONT");
        return;
      }
      case "storage-slow":
        // Slower than a renewal can bear at the top end (6 s lease): a slow leader may lose it.
        return this.#storageFault(p.a, holdMs(3_000, 10_000), {
          latencyMs: 300 + Math.floor(p.b * 1_200),
          jitterMs: 500,
        });
      case "storage-5xx":
        return this.#storageFault(p.a, holdMs(3_000, 10_000), {
          errorRate: 0.3 + p.b * 0.6,
        });
      case "storage-unreachable":
        // Every request's connection dropped, open connections cut: up to 9 s, beyond the lease.
        return this.#storageFault(p.a, holdMs(2_000, 9_000), { drop: 1 }, true);
      case "pause":
        await sleep(holdMs(500, 3_000));
        return;
    }
  }

  /**
   * Faults the storage of one server (drawn from `pick`) or of all three for `holdMs`, then
   * clears them. "All" faults every server's proxy rather than `s3.faults`, which would also fault
   * the soak's own client (the operator's tooling writing config, the checks reading records).
   */
  async #storageFault(
    pick: number,
    holdMs: number,
    settings: StorageFaultSettings,
    cut = false,
  ): Promise<void> {
    const all = pick < STORAGE_FAULT_ALL_SHARE;
    this.#report.storageFaultTargets[all ? "all" : "one"]++;
    const targets = all
      ? this.#proxies
      : [
          this.#proxies[
            Math.floor(((pick - STORAGE_FAULT_ALL_SHARE) / (1 - STORAGE_FAULT_ALL_SHARE)) * 3)
          ]!,
        ];
    this.#o.log?.(
      `storage fault on ${all ? "all servers" : `s${this.#proxies.indexOf(targets[0]!) + 1}`} for ${holdMs} ms: ${JSON.stringify(settings)}`,
    );
    try {
      for (const t of targets) {
        t.faults.set(settings);
        if (cut) t.cutAll();
      }
      await sleep(holdMs);
    } finally {
      for (const t of targets) t.faults.clear();
    }
  }

  /** Restarts a server and waits until it has loaded its config (it must not boot on an invalid one). */
  async #restart(s: ShardServer): Promise<void> {
    const p = s.restart();
    await p.waitLog((l) => l.msg === "Configuration loaded; server healthy", 90_000);
  }

  /** Signals an agent's process group (the provider starts each agent as a group leader). */
  #signalAgent(pid: number, signal: NodeJS.Signals): void {
    try {
      process.kill(-pid, signal);
    } catch {
      // Gone already (replaced and deleted meanwhile).
    }
  }

  async #agentPid(instanceId: string): Promise<number | undefined> {
    try {
      const meta = JSON.parse(
        await readFile(join(this.#stateDir, "instances", instanceId, "meta.json"), "utf8"),
      ) as { pid?: number };
      return meta.pid;
    } catch {
      return undefined;
    }
  }

  // ---- operator changes ---------------------------------------------------------------------

  async #operator(kind: ChaosOpKind, p: { a: number; b: number }): Promise<void> {
    const dynamic = [...this.#expected].filter(
      ([k, g]) => k.startsWith(DYNAMIC_PREFIX) && (g.present || !g.certain),
    );
    switch (kind) {
      case "scale-static": {
        const size = 1 + Math.floor(p.a * 3);
        const prev = this.#sizes.at(-1)!.size;
        // Counted against the larger size until a convergence confirms the new one.
        this.#samplerSize = Math.max(this.#samplerSize, prev, size);
        // The leader applies the change at some moment between sending and the answer (the admin
        // client may retry it on another server for seconds): the history counts the larger size
        // meanwhile, the new one from the acknowledgement, the old one again after a refusal.
        this.#sizes.push({ at: Date.now(), size: Math.max(prev, size) });
        const outcome = await this.#change(kind, FLEET_GROUP, { size, present: true }, [
          "group",
          "scale",
          FLEET_GROUP,
          String(size),
        ]);
        if (outcome !== "unknown") {
          this.#sizes.push({ at: Date.now(), size: outcome === "acknowledged" ? size : prev });
        }
        return;
      }
      case "create-group": {
        if (dynamic.length >= MAX_DYNAMIC_GROUPS) return this.#operator("delete-group", p);
        const key = `${DYNAMIC_PREFIX}${this.#nextGroup++}`;
        const size = Math.floor(p.a * 2);
        await this.#change(kind, key, { size, present: true }, [
          "group",
          "create",
          key,
          "--template",
          "web",
          "--size",
          String(size),
        ]);
        return;
      }
      case "delete-group": {
        if (dynamic.length === 0) return;
        const [key] = dynamic[Math.floor(p.a * dynamic.length)]!;
        await this.#change(kind, key, { size: 0, present: false }, ["group", "delete", key]);
        return;
      }
      case "scale-dynamic": {
        const present = dynamic.filter(([, g]) => g.present);
        if (present.length === 0) return;
        const [key, g] = present[Math.floor(p.a * present.length)]!;
        const size = g.size === 0 ? 1 : 0;
        await this.#change(kind, key, { size, present: true }, [
          "group",
          "scale",
          key,
          String(size),
        ]);
        return;
      }
      case "config-refresh": {
        // A new runtime var: every instance rotates, one at a time.
        this.#configEpoch++;
        await this.#writeConfig(
          this.#edit(this.#configText, [
            ["defaults", "vars", "chaos_epoch"],
            `${this.#configEpoch}`,
          ]),
        );
        const r = await this.#shardAdmin(["config", "refresh"]);
        this.#count(kind, r.code === 0);
        if (r.code !== 0) this.#o.log?.(`config refresh refused: ${r.err.trim()}`);
        return;
      }
      case "config-invalid": {
        const good = this.#currentConfig();
        const bad =
          p.a < 0.5
            ? `${good}\n{ this is not json`
            : this.#edit(good, [["groups", FLEET_TENANT, FLEET_GROUP, "size"], -1]);
        await this.#writeConfig(bad);
        const r = await this.#shardAdmin(["config", "refresh"]);
        await this.#writeConfig(good);
        if (r.code === 0) {
          this.#report.violations.push("an invalid config was accepted by config refresh");
        } else if (/invalid|config/i.test(r.err)) {
          this.#report.invalidConfigsRejected++;
        }
        this.#count(kind, r.code !== 0);
        return;
      }
    }
  }

  /** The config text the operator currently wants in the bucket. */
  #currentConfig(): string {
    return this.#edit(this.#configText, [
      ["defaults", "vars", "chaos_epoch"],
      `${this.#configEpoch}`,
    ]);
  }

  #edit(text: string, [path, value]: [JSONPath, unknown]): string {
    return applyEdits(text, modify(text, path, value, {}));
  }

  async #writeConfig(text: string): Promise<void> {
    await this.#storage!.put(CONFIG_KEY, text);
  }

  #count(kind: string, acknowledged: boolean): void {
    const c = this.#report.operatorChanges[kind] ?? { acknowledged: 0, refused: 0 };
    this.#report.operatorChanges[kind] = c;
    if (acknowledged) c.acknowledged++;
    else c.refused++;
  }

  /** Runs a group change; updates what the operator expects according to its outcome. */
  async #change(
    kind: ChaosOpKind,
    key: string,
    next: { size: number; present: boolean },
    argv: string[],
  ): Promise<"acknowledged" | "refused" | "unknown"> {
    // Counted against the larger size from before the change is sent until a convergence.
    this.#bound.set(key, Math.max(this.#bound.get(key) ?? 0, next.size));
    const r = await this.#shardAdmin(argv);
    const prev = this.#expected.get(key);
    if (r.code === 0) {
      this.#expected.set(key, { ...next, certain: true, acks: 1 });
      this.#count(kind, true);
      return "acknowledged";
    }
    this.#count(kind, false);
    // A delete refused because the group does not exist: it is absent, whatever came before
    // (a create whose outcome was unknown did not happen). Lost, if its creation was acknowledged.
    if (!next.present && /does not exist/i.test(r.err)) {
      if (prev?.certain && prev.present) {
        this.#report.violations.push(`acknowledged group ${key} missing: ${r.err.trim()}`);
      }
      this.#expected.set(key, { ...next, certain: true, acks: 0 });
      return "refused";
    }
    // Refused for a reason that proves nothing happened: the expectation stands.
    if (/not the shard leader|no leader|already exists|not found|ECONNREFUSED/i.test(r.err)) {
      return "refused";
    }
    this.#o.log?.(`${argv.join(" ")}: outcome unknown (${r.err.trim()})`);
    this.#expected.set(key, {
      size: next.size,
      present: next.present,
      certain: false,
      acks: prev?.acks ?? 0,
    });
    return "unknown";
  }

  async #admin(argv: string[]): Promise<AdminResult> {
    let out = "";
    let err = "";
    const code = await runAdmin(argv, {
      // The S3 variables for `cluster register-operator`, which reads the cluster storage.
      env: { ...this.#s3?.env, NSTANCE_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY },
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
    });
    return { code, out, err };
  }

  /**
   * A shard command as an operator runs it against an HA set: every server in `--servers`, the
   * one believed to lead first; the admin client itself moves on from a refused or standby server.
   */
  async #shardAdmin(argv: string[]): Promise<AdminResult> {
    const leader = await this.#findLeader(60_000).catch(() => undefined);
    const ordered = [
      ...(leader ? [leader] : []),
      ...this.#servers.filter((s) => s !== leader && isLive(s)),
    ];
    if (ordered.length === 0) return { code: -1, out: "", err: "no server running" };
    return this.#admin([
      ...argv,
      "--servers",
      ordered.map((s) => `${FLEET_SHARD}=localhost:${s.ports.operator}`).join(","),
      "--identity-dir",
      this.#identityDir,
      "--timeout",
      "20s",
    ]);
  }

  // ---- leadership and databases -------------------------------------------------------------

  async #findLeader(timeoutMs: number): Promise<ShardServer> {
    const { leader } = await waitForSingleLeader(this.#servers.filter(isLive), timeoutMs);
    this.#leaderId = leader.id;
    return leader;
  }

  #db(id: string): Db | undefined {
    if (this.#cacheGone) return undefined;
    let db = this.#dbs.get(id);
    if (!db) {
      try {
        db = new BetterSqlite3(this.#dbPath(id), { readonly: true, fileMustExist: true });
      } catch {
        return undefined;
      }
      this.#dbs.set(id, db);
    }
    return db;
  }

  #leaderDb(): Db | undefined {
    return this.#leaderId === undefined ? undefined : this.#db(this.#leaderId);
  }

  #dbPath(id: string): string {
    return join(this.#dir, `cache-${id}`, "db", "nstance.db");
  }

  #closeDbs(): void {
    for (const db of this.#dbs.values()) db.close();
    this.#dbs.clear();
  }

  // ---- convergence and checks ---------------------------------------------------------------

  /** The groups the leader reports (`group list --json`), by key. */
  async #groupList(): Promise<Map<string, { size: number; actualSize: number }> | undefined> {
    const r = await this.#shardAdmin(["group", "list", "--json"]);
    if (r.code !== 0) return undefined;
    const parsed = JSON.parse(r.out) as {
      results: Array<{
        ok: boolean;
        groups?: Array<{ key: string; size: number; actual_size: number }>;
      }>;
    };
    const groups = parsed.results[0]?.groups;
    if (!groups) return undefined;
    return new Map(groups.map((g) => [g.key, { size: g.size, actualSize: g.actual_size }]));
  }

  /** Instance record IDs in the bucket (read through the S3 server). */
  async #records(): Promise<Set<string>> {
    const storage = this.#storage!;
    const ids = new Set<string>();
    for (const info of await storage.list(`shard/${FLEET_SHARD}/instance/`)) {
      if (!info.key.endsWith(".json")) continue;
      const obj = await storage.get(info.key);
      if (!obj) continue;
      const rec = JSON.parse(obj.body.toString("utf8")) as { instance_id?: string };
      if (rec.instance_id) ids.add(rec.instance_id);
    }
    return ids;
  }

  /**
   * Why the fleet has not converged yet, or undefined once it has: every group the operator is
   * sure of at its size with all instances registered and reporting the current runtime hash; the
   * leader's live rows, the running agents and the storage records are the same set (no orphan,
   * no record without an instance); the leader's group list matches every acknowledged change.
   */
  async #notConverged(): Promise<string | undefined> {
    const leader = await this.#findLeader(30_000).catch(() => undefined);
    if (!leader) return "no single leader";
    const db = this.#db(leader.id);
    if (!db) return "no leader database";
    let rows: FleetRow[];
    let hashes: Map<string, string>;
    try {
      rows = readFleetRows(db).filter((r) => r.deletedAt === undefined && !r.onDemand);
      const hs = db.prepare("SELECT group_key, runtime_config_hash FROM groups").all() as Array<{
        group_key: string;
        runtime_config_hash: string;
      }>;
      hashes = new Map(hs.map((h) => [h.group_key, h.runtime_config_hash]));
    } catch (err) {
      return `database: ${String(err)}`;
    }
    const list = await this.#groupList();
    if (!list) return "group list failed";
    for (const [key, g] of this.#expected) {
      const listed = list.get(key);
      if (!g.certain) continue;
      if (!g.present) {
        if (listed) return `${key} still listed`;
        if (rows.some((r) => r.group === key)) return `${key} still has instances`;
        continue;
      }
      if (!listed) return `${key} not listed`;
      if (listed.size !== g.size) return `${key} listed at size ${listed.size}, expected ${g.size}`;
      const mine = rows.filter((r) => r.group === key);
      if (mine.length !== g.size) return `${key}: ${mine.length} live of ${g.size}`;
      const hash = hashes.get(key);
      const stale = mine.filter(
        (r) => r.registeredAt === undefined || r.health?.config_hash !== hash,
      );
      if (stale.length > 0) return `${key}: ${stale.length} not registered or not current`;
    }
    const agents = await readLocalAgents(this.#stateDir);
    for (const a of agents) this.#seenAgents.add(a.id);
    const rowIds = new Set(rows.map((r) => r.id));
    const dead = agents.filter((a) => !a.alive);
    if (dead.length > 0) return `dead provider instances: ${dead.map((a) => a.id).join(", ")}`;
    const orphans = agents.filter((a) => !rowIds.has(a.id));
    if (orphans.length > 0) return `orphan agents: ${orphans.map((a) => a.id).join(", ")}`;
    const agentIds = new Set(agents.map((a) => a.id));
    const missing = rows.filter((r) => !agentIds.has(r.id));
    if (missing.length > 0) return `rows without agents: ${missing.map((r) => r.id).join(", ")}`;
    // Records of deleted instances stay (soft-deleted rows) for `deleted_record_retention`.
    const records = await this.#records();
    const deletedIds = new Set(
      readFleetRows(db)
        .filter((r) => r.deletedAt !== undefined)
        .map((r) => r.id),
    );
    const extra = [...records].filter((id) => !rowIds.has(id) && !deletedIds.has(id));
    if (extra.length > 0) return `records without a row: ${extra.join(", ")}`;
    const noRecord = rows.filter((r) => !records.has(r.id));
    if (noRecord.length > 0)
      return `rows without a record: ${noRecord.map((r) => r.id).join(", ")}`;
    return undefined;
  }

  async #converge(what: string, boundMs: number): Promise<void> {
    const deadline = Date.now() + boundMs;
    let why: string | undefined = "not checked";
    let lastLogAt = Date.now();
    while (Date.now() < deadline) {
      this.#o.signal?.throwIfAborted();
      why = await this.#notConverged();
      if (why === undefined) {
        const fleet = this.#expected.get(FLEET_GROUP);
        if (fleet?.certain && fleet.size !== this.#sizes.at(-1)!.size) {
          // Converged on a size whose change had an unknown outcome: it took effect by now.
          this.#sizes.push({ at: Date.now(), size: fleet.size });
        }
        this.#samplerSize = this.#sizes.at(-1)!.size;
        for (const [key, g] of this.#expected) {
          if (g.certain) this.#bound.set(key, g.present ? g.size : 0);
        }
        this.#report.invariantChecksPassed++;
        return;
      }
      if (Date.now() - lastLogAt > 10_000) {
        lastLogAt = Date.now();
        this.#o.log?.(`${what}: converging: ${why}`);
      }
      await sleep(500, this.#o.signal);
    }
    throw new Error(`${what}: not converged within ${boundMs} ms: ${why}${this.#recentLogs()}`);
  }

  /** Checks after a round: acknowledged changes present, history, terms, decisions. */
  async #checkRound(what: string): Promise<void> {
    const r = this.#report;
    const list = await this.#groupList();
    for (const [key, g] of this.#expected) {
      if (!g.certain || g.acks === 0) continue;
      r.acknowledgedChecked += g.acks;
      const listed = list?.get(key);
      const ok = g.present ? listed?.size === g.size : listed === undefined;
      if (ok) r.acknowledgedFound += g.acks;
      else
        r.violations.push(
          `${what}: acknowledged change of ${key} lost (expected ${JSON.stringify(g)}, listed ${JSON.stringify(listed)})`,
        );
      // Counted once: later rounds check only changes made since.
      g.acks = 0;
    }
    this.#passOrRecord(what, "terms exclusive", checkTermsExclusive(this.#leaderActions()));
    const db = this.#leaderDb();
    if (db) {
      const decisions = readFleetDecisions(db);
      this.#passOrRecord(what, "created once", checkCreatedOnce(decisions));
      const rows = readFleetRows(db);
      const history = checkFleetHistory({ rows, decisions, sizes: this.#sizes });
      this.#passOrRecord(what, "history", history);
      if (history.length > 0) this.#o.log?.(this.#historyEvidence(rows, decisions));
    }
  }

  /** The sizes the operator set and every row of the static group with its decisions, to explain a history violation. */
  #historyEvidence(rows: FleetRow[], decisions: ReturnType<typeof readFleetDecisions>): string {
    const t = (ms: number | undefined): string =>
      ms === undefined ? "-" : new Date(ms).toISOString().slice(11, 23);
    const lines = [
      `sizes: ${this.#sizes.map((z) => `${t(z.at)}=${z.size}`).join(", ")}`,
      ...rows
        .filter((r) => r.group === FLEET_GROUP)
        .map(
          (r) =>
            `${r.id} created ${t(r.createdAt)} drain ${t(r.drainStartedAt)} (${r.drainReason ?? "-"}) deleted ${t(r.deletedAt)} replacedBy ${r.replacedBy ?? "-"}: ${decisions
              .filter((d) => d.instanceId === r.id)
              .map((d) => `${t(d.at)} ${d.decision}/${d.reason}`)
              .join("; ")}`,
        ),
    ];
    return `history evidence:\n${lines.join("\n")}`;
  }

  #passOrRecord(what: string, check: string, violations: string[]): void {
    if (violations.length === 0) this.#report.invariantChecksPassed++;
    else this.#report.violations.push(...violations.map((v) => `${what}: ${check}: ${v}`));
  }

  #leaderActions() {
    return leaderActions(
      this.#servers.map((s) => ({ server: s.id, lines: s.history.flatMap((p) => p.logs) })),
    );
  }

  /** Deletes every server's cache dir and restarts them: nothing may change. */
  async #cacheDropCheck(): Promise<void> {
    const before = await this.#snapshot();
    const agentsBefore = new Set((await readLocalAgents(this.#stateDir)).map((a) => a.id));
    this.#cacheGone = true;
    this.#closeDbs();
    for (const s of this.#servers) if (isLive(s)) s.proc.child.kill("SIGCONT");
    await Promise.all(this.#servers.map((s) => s.proc.stop("SIGKILL")));
    await Promise.all(
      this.#servers.map((s) =>
        rm(join(this.#dir, `cache-${s.id}`), { recursive: true, force: true }),
      ),
    );
    for (const s of this.#servers) s.restart();
    this.#cacheGone = false;
    await this.#converge(
      "after deleting every cache dir",
      this.#o.convergeBoundMs ?? DEFAULT_CONVERGE_BOUND_MS,
    );
    const after = await this.#snapshot();
    const agentsAfter = new Set((await readLocalAgents(this.#stateDir)).map((a) => a.id));
    const violations: string[] = [];
    if (before !== after) violations.push(`state changed: before ${before}, after ${after}`);
    const created = [...agentsAfter].filter((id) => !agentsBefore.has(id));
    if (created.length > 0) violations.push(`new provider instances: ${created.join(", ")}`);
    const db = this.#leaderDb();
    const liveAfter = new Set(
      db
        ? readFleetRows(db)
            .filter((r) => r.deletedAt === undefined)
            .map((r) => r.id)
        : [],
    );
    for (const id of agentsBefore) {
      if (liveAfter.has(id) || !db) continue;
      const mine = readFleetDecisions(db).filter((d) => d.instanceId === id);
      const why = mine.map((d) => `${d.decision}/${d.reason} ${JSON.stringify(d.evidence)}`);
      violations.push(
        `${id} replaced after the restart: ${why.join("; ") || "no decision"}; its last log lines: ${await this.#deletedAgentLogTail(id)}`,
      );
    }
    this.#passOrRecord("cache drop", "nothing changes", violations);
  }

  /** The last info-or-above lines of a deleted agent's log (the local provider keeps them). */
  async #deletedAgentLogTail(id: string): Promise<string> {
    const text = await readFile(join(this.#stateDir, "deleted", `${id}.log`), "utf8").catch(
      () => "",
    );
    const lines = text
      .split("\n")
      .filter((l) => l.trim() !== "" && !/"level":"debug"/.test(l))
      .slice(-8);
    return lines.length > 0 ? lines.join(" | ") : "(no log)";
  }

  /** Live instance IDs by group and the listed groups with their sizes, as a string. */
  async #snapshot(): Promise<string> {
    const db = this.#leaderDb();
    const rows = db ? readFleetRows(db).filter((r) => r.deletedAt === undefined) : [];
    const list = await this.#groupList();
    return JSON.stringify({
      instances: rows.map((r) => `${r.group}/${r.id}`).sort(),
      groups: [...(list ?? [])].map(([k, g]) => `${k}=${g.size}`).sort(),
    });
  }

  async #finalChecks(): Promise<void> {
    this.#passOrRecord("final", "terms exclusive", checkTermsExclusive(this.#leaderActions()));
    for (const s of this.#servers) {
      this.#passOrRecord("final", `sqlite ${s.id}`, checkSqliteIntegrity(this.#dbPath(s.id)));
    }
    const storage = await checkStorageParses(this.#storage!);
    this.#passOrRecord("final", `storage (${storage.objects} objects)`, storage.violations);
    const untested = [...this.#expected].filter(([, g]) => !g.certain).map(([k]) => k);
    if (untested.length > 0) this.#o.log?.(`outcome unknown, not checked: ${untested.join(", ")}`);
  }

  #recentLogs(): string {
    const lines = this.#servers.flatMap((s) =>
      s.proc.logs
        .filter((l) => l.level !== "debug" && l.msg !== "Leader action")
        .slice(-8)
        .map((l) => `${s.id} ${JSON.stringify(l)}`),
    );
    return `\n--- recent server logs ---\n${lines.join("\n")}`;
  }
}
