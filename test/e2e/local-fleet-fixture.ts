// SPDX-License-Identifier: Apache-2.0
/**
 * Test support for the local-fleet end-to-end tests (issue 6 "Done when"): a {@link LocalFleet}
 * (one real `nstance-server` on file storage whose `local` provider runs real `nstance-agent`
 * processes) with what these tests check throughout:
 *
 * - a {@link FleetSampler} that polls the server's SQLite (through the reconciler tests'
 *   {@link InvariantChecker}) and the agent processes of the local provider's state directory, so
 *   an excess is seen while it happens;
 * - {@link checkFleetHistory}, an exact check over every row the server ever wrote (soft-deleted
 *   rows are kept for `deleted_record_retention`, set long here): it sees what sampling can miss.
 *
 * Invariants (seed 001, issue 6): managed instances per group never exceed size + 1 (instances
 * leaving because the group shrank are surplus); no two rotations of one group drain at once;
 * every deleted instance that was replaced had its replacement created first.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { applyEdits, type JSONPath, modify } from "jsonc-parser";
import type { EffectiveGroup } from "../../src/config/server-config.js";
import type { Db } from "../../src/db/database.js";
import type { LocalInstanceMeta } from "../../src/providers/local/local-provider.js";
import { probeProcess } from "../../src/providers/local/process-probe.js";
import { sleep } from "../../src/shared/sleep.js";
import { InvariantChecker } from "../reconcile/invariant-checker.js";
import { waitFor } from "../reconcile/reconcile-fixture.js";
import { FLEET_SHARD, FLEET_WAIT_MS, LocalFleet } from "./local-fleet.js";

/** The group of examples/local.jsonc every local-fleet test uses. */
export const FLEET_GROUP = "web";
/** Its tenant. */
export const FLEET_TENANT = "default";
/** Agent report interval (`NSTANCE_METRICS_INTERVAL`): quick, so registration shows at once. */
export const FLEET_REPORT_INTERVAL = "1s";
/** How often the sampler looks at the database and the processes. */
export const DEFAULT_SAMPLE_INTERVAL_MS = 100;

/**
 * Config edits every local-fleet test starts from: quick garbage collection, deleted rows kept for
 * the whole test (the history check reads them), and a short drain so that rotations and
 * scale-down go through drain coordination (nobody acknowledges: each drain times out).
 */
export const FLEET_EDITS: Array<[JSONPath, unknown]> = [
  [
    ["shard", "garbage_collection"],
    { interval: "2s", registration_timeout: "60s", deleted_record_retention: "1h" },
  ],
  [["groups", FLEET_TENANT, FLEET_GROUP, "drain_timeout"], "1s"],
];

const SURPLUS = new Set(["scale-down", "group-deleted"]);
const ROTATIONS = new Set(["config-drift", "eligible-expiry"]);
/** Reasons for which an instance leaves only through a replacement. */
const REPLACED = new Set(["config-drift", "eligible-expiry", "forced-expiry"]);

/** An instance row as the history check sees it (soft-deleted rows included). */
export interface FleetRow {
  id: string;
  tenant: string;
  group: string;
  onDemand: boolean;
  createdAt: number;
  deletedAt?: number;
  registeredAt?: number;
  healthAt?: number;
  drainStartedAt?: number;
  drainReason?: string;
  replacedBy?: string;
  instanceType?: string;
  /** The last stored health report, parsed. */
  health?: Record<string, unknown>;
}

/** A recorded decision (the `decisions` table). */
export interface FleetDecision {
  instanceId: string;
  at: number;
  decision: string;
  reason: string;
  evidence: Record<string, unknown>;
}

/** A desired size the test set, from `at` on. */
export interface SizeChange {
  at: number;
  size: number;
}

/** Every instance row, oldest first. */
export function readFleetRows(db: Db): FleetRow[] {
  const rows = db
    .prepare(
      `SELECT id, tenant, group_key, on_demand, created_at, deleted_at, registered_at, health_at,
         drain_started_at, drain_reason, replaced_by, instance_type, health
       FROM instances ORDER BY created_at, id`,
    )
    .all() as Array<Record<string, string | number | null>>;
  const opt = <T>(v: unknown): T | undefined => (v === null ? undefined : (v as T));
  return rows.map((r) => ({
    id: String(r.id),
    tenant: String(r.tenant),
    group: String(r.group_key),
    onDemand: r.on_demand === 1,
    createdAt: Number(r.created_at),
    deletedAt: opt<number>(r.deleted_at),
    registeredAt: opt<number>(r.registered_at),
    healthAt: opt<number>(r.health_at),
    drainStartedAt: opt<number>(r.drain_started_at),
    drainReason: opt<string>(r.drain_reason),
    replacedBy: opt<string>(r.replaced_by),
    instanceType: opt<string>(r.instance_type),
    health:
      typeof r.health === "string" ? (JSON.parse(r.health) as Record<string, unknown>) : undefined,
  }));
}

/** Every recorded decision, in order. */
export function readFleetDecisions(db: Db): FleetDecision[] {
  const rows = db
    .prepare("SELECT instance_id, at, decision, reason, evidence FROM decisions ORDER BY seq")
    .all() as Array<{
    instance_id: string;
    at: number;
    decision: string;
    reason: string;
    evidence: string;
  }>;
  return rows.map((r) => ({
    instanceId: r.instance_id,
    at: r.at,
    decision: r.decision,
    reason: r.reason,
    evidence: JSON.parse(r.evidence) as Record<string, unknown>,
  }));
}

/** Why a deleted row left: its drain reason, else the reason of its `deleted` decision. */
export function leaveReason(
  row: FleetRow,
  decisions: readonly FleetDecision[],
): string | undefined {
  if (row.drainReason !== undefined) return row.drainReason;
  const d = decisions.find((x) => x.instanceId === row.id && x.decision === "deleted");
  if (!d) return undefined;
  const drainReason = d.evidence.drain_reason;
  return typeof drainReason === "string" ? drainReason : d.reason;
}

/** Inputs of {@link checkFleetHistory}. */
export interface FleetHistory {
  rows: readonly FleetRow[];
  decisions: readonly FleetDecision[];
  /** The group's desired sizes over time, oldest first; the first applies from the start. */
  sizes: readonly SizeChange[];
  tenant?: string;
  group?: string;
}

/**
 * Checks the three invariants over the whole history of one group and returns the violations.
 * A row is alive from `created_at` (the pre-insert, before the provider create) to `deleted_at`
 * (after the provider delete), which overstates each instance's life: the check is strict.
 */
export function checkFleetHistory(h: FleetHistory): string[] {
  const tenant = h.tenant ?? FLEET_TENANT;
  const group = h.group ?? FLEET_GROUP;
  const rows = h.rows.filter((r) => r.tenant === tenant && r.group === group && !r.onDemand);
  const byId = new Map(h.rows.map((r) => [r.id, r]));
  const sizes = [...h.sizes].sort((a, b) => a.at - b.at);
  const sizeChangeAtOrBefore = (t: number): SizeChange =>
    sizes.filter((s) => s.at <= t).at(-1) ?? sizes[0] ?? { at: 0, size: 0 };
  const violations: string[] = [];
  const reasons = new Map(rows.map((r) => [r.id, leaveReason(r, h.decisions)]));

  // 1. size + 1, counted just after each creation (the only moment the count grows). A row that
  // left because the group shrank is surplus from the size change that made it so.
  const surplusFrom = (r: FleetRow): number | undefined => {
    if (!SURPLUS.has(reasons.get(r.id) ?? "")) return undefined;
    return sizeChangeAtOrBefore(r.drainStartedAt ?? r.deletedAt ?? Infinity).at;
  };
  for (const c of rows) {
    const t = c.createdAt;
    const alive = rows.filter(
      (r) => r.createdAt <= t && (r.deletedAt === undefined || r.deletedAt > t),
    );
    const counted = alive.filter((r) => {
      const from = surplusFrom(r);
      return from === undefined || t < from;
    });
    const size = sizeChangeAtOrBefore(t).size;
    if (counted.length > size + 1) {
      violations.push(
        `${group}: ${counted.length} managed instances alive when ${c.id} was created (size ${size}): ${counted.map((r) => r.id).join(", ")}`,
      );
    }
  }

  // 2. Rotations drain one at a time.
  const drains = rows
    .filter((r) => r.drainStartedAt !== undefined && ROTATIONS.has(r.drainReason ?? ""))
    .sort((a, b) => a.drainStartedAt! - b.drainStartedAt!);
  for (let i = 1; i < drains.length; i++) {
    const prev = drains[i - 1]!;
    const cur = drains[i]!;
    if (prev.deletedAt === undefined || cur.drainStartedAt! < prev.deletedAt) {
      violations.push(
        `${group}: rotations of ${prev.id} (${prev.drainReason}) and ${cur.id} (${cur.drainReason}) drained at once`,
      );
    }
  }

  // 3. Replacement first.
  for (const r of rows) {
    if (r.deletedAt === undefined) continue;
    const reason = reasons.get(r.id) ?? "";
    if (r.replacedBy === undefined) {
      if (REPLACED.has(reason)) violations.push(`${r.id} left for ${reason} without a replacement`);
      continue;
    }
    const repl = byId.get(r.replacedBy);
    const created = h.decisions.find(
      (d) => d.instanceId === r.replacedBy && d.decision === "created",
    );
    const leftAt = r.drainStartedAt ?? r.deletedAt;
    if (!repl || repl.createdAt > r.deletedAt) {
      violations.push(`${r.id} deleted before its replacement ${r.replacedBy} was created`);
    } else if (REPLACED.has(reason) && (created === undefined || created.at > leftAt)) {
      violations.push(
        `${r.id} left for ${reason} before the provider created its replacement ${r.replacedBy}`,
      );
    }
  }
  return violations;
}

/** An agent process of the local provider's state directory. */
export interface LocalAgent {
  id: string;
  group: string;
  instanceType: string;
  pid: number | undefined;
  startTicks: number | undefined;
  /** The process runs (or is stopped), and is the instance's own (start time and environment). */
  alive: boolean;
}

/** Reads every instance directory of a local provider's state dir and probes its process. */
export async function readLocalAgents(stateDir: string): Promise<LocalAgent[]> {
  const dir = join(stateDir, "instances");
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const agents = await Promise.all(
    names.map(async (n): Promise<LocalAgent | undefined> => {
      let meta: LocalInstanceMeta;
      try {
        meta = JSON.parse(await readFile(join(dir, n, "meta.json"), "utf8")) as LocalInstanceMeta;
      } catch {
        return undefined; // being created or deleted right now
      }
      const alive =
        meta.pid !== undefined &&
        ["running", "stopped"].includes(
          await probeProcess({
            pid: meta.pid,
            startTicks: meta.startTicks,
            envMarker: `NSTANCE_INSTANCE_ID=${meta.instanceId}`,
          }),
        );
      return {
        id: meta.instanceId,
        group: meta.group,
        instanceType: meta.instanceType,
        pid: meta.pid,
        startTicks: meta.startTicks,
        alive,
      };
    }),
  );
  return agents
    .filter((a): a is LocalAgent => a !== undefined)
    .sort((a, b) => (a.id < b.id ? -1 : 1));
}

/** Options for {@link FleetSampler}. */
export interface FleetSamplerOptions {
  stateDir: string;
  /** The current read-only database handle, or undefined while there is none (restart). */
  db: () => Db | undefined;
  /** The size the group may be counted against right now. */
  size: () => number;
  intervalMs?: number;
}

/**
 * Polls the database (the reconciler tests' {@link InvariantChecker}: size + 1 and one rotation
 * draining) and the agent processes (never more than size + 1 alive) until stopped.
 */
export class FleetSampler {
  /** Violations seen so far. */
  readonly violations: string[] = [];
  /** Most agent processes of the group seen alive at once. */
  maxAliveAgents = 0;
  /** Samples taken. */
  samples = 0;
  readonly #o: FleetSamplerOptions;
  readonly #checker: InvariantChecker;
  #loop: Promise<void> | undefined;
  readonly #ctl = new AbortController();

  constructor(opts: FleetSamplerOptions) {
    this.#o = opts;
    const db = opts.db;
    this.#checker = new InvariantChecker({
      // A getter: the handle changes when the cache directory is recreated.
      get db(): Db {
        const d = db();
        if (!d) throw new Error("no database");
        return d;
      },
      groups: () => [
        { tenant: FLEET_TENANT, key: FLEET_GROUP, size: opts.size() } as EffectiveGroup,
      ],
      reconciler: () => undefined,
    });
  }

  /** Starts sampling. */
  start(): void {
    this.#loop ??= this.#run(this.#ctl.signal);
  }

  /** Stops sampling (idempotent). */
  async stop(): Promise<void> {
    this.#ctl.abort();
    await this.#loop;
  }

  /** One sample; also usable by a test at a moment it cares about. */
  async sample(): Promise<void> {
    const size = this.#o.size();
    const agents = (await readLocalAgents(this.#o.stateDir)).filter(
      (a) => a.group === FLEET_GROUP && a.alive,
    );
    this.maxAliveAgents = Math.max(this.maxAliveAgents, agents.length);
    if (agents.length > size + 1) {
      this.violations.push(
        `${agents.length} agent processes alive (size ${size}): ${agents.map((a) => a.id).join(", ")}`,
      );
    }
    if (this.#o.db()) {
      try {
        this.#checker.check("sample");
      } catch (err) {
        // The database is being recreated (restart, migration): the next sample reads it.
        if (!(err instanceof BetterSqlite3.SqliteError)) throw err;
      }
    }
    for (const v of this.#checker.violations.splice(0)) this.violations.push(v);
    this.samples++;
  }

  async #run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      // A failing sample is a broken check: it shows as a violation, not as a stray rejection.
      await this.sample().catch((err: unknown) => {
        this.violations.push(`sampler failed: ${String(err)}`);
      });
      await sleep(this.#o.intervalMs ?? DEFAULT_SAMPLE_INTERVAL_MS, signal).catch(() => undefined);
    }
  }
}

/** Options for {@link TestFleet.start}. */
export interface TestFleetOptions {
  /** Prefix of the temp directory. */
  name: string;
  /** Edits after {@link FLEET_EDITS}. */
  edits?: Array<[JSONPath, unknown]>;
  /** The group's size at start (examples/local.jsonc has 3). */
  size?: number;
}

/**
 * A {@link LocalFleet} with its own read-only database handle (reopened after the cache directory
 * is recreated), the group's size history, a running {@link FleetSampler}, and helpers for
 * changing the fleet as an operator would.
 */
export class TestFleet {
  readonly fleet: LocalFleet;
  readonly sampler: FleetSampler;
  /** The sizes the test set, oldest first. */
  readonly sizes: SizeChange[];
  /** The size the sampler counts against; during a scale-down, the old size until it settles. */
  samplerSize: number;
  #db: BetterSqlite3.Database | undefined;
  /** Between {@link killServerAndDropCache} and {@link restartServer}: no database to read. */
  #cacheGone = false;

  private constructor(fleet: LocalFleet, size: number) {
    this.fleet = fleet;
    this.sizes = [{ at: 0, size }];
    this.samplerSize = size;
    this.sampler = new FleetSampler({
      stateDir: fleet.stateDir,
      db: () => this.#dbOrUndefined(),
      size: () => this.samplerSize,
    });
  }

  /** Starts the server (the group at `size`) and the sampler. */
  static async start(opts: TestFleetOptions): Promise<TestFleet> {
    const dir = await mkdtemp(join(tmpdir(), `nstance-e2e-${opts.name}-`));
    const size = opts.size ?? 3;
    const edits: Array<[JSONPath, unknown]> = [
      ...FLEET_EDITS,
      [["groups", FLEET_TENANT, FLEET_GROUP, "size"], size],
      ...(opts.edits ?? []),
    ];
    const fleet = await LocalFleet.start({
      dir,
      edits,
      agentEnv: { NSTANCE_METRICS_INTERVAL: FLEET_REPORT_INTERVAL },
    });
    const tf = new TestFleet(fleet, size);
    tf.sampler.start();
    return tf;
  }

  /** The server's SQLite cache, read-only. */
  get db(): Db {
    const db = this.#dbOrUndefined();
    if (!db) throw new Error("the server has no database yet");
    return db;
  }

  #dbOrUndefined(): Db | undefined {
    if (this.#cacheGone) return undefined;
    if (!this.#db) {
      try {
        this.#db = new BetterSqlite3(this.dbPath, { readonly: true, fileMustExist: true });
      } catch {
        return undefined;
      }
    }
    return this.#db;
  }

  /** Path of the server's database (inside its `--cachedir`). */
  get dbPath(): string {
    return join(this.cacheDir, "db", "nstance.db");
  }

  /** The server's `--cachedir`. */
  get cacheDir(): string {
    return join(this.fleet.dir, `cache-${this.fleet.server.id}`);
  }

  /** Closes the database handle. */
  closeDb(): void {
    this.#db?.close();
    this.#db = undefined;
  }

  /** `kill -9` the server, then delete its `--cachedir` (the agents keep running). */
  async killServerAndDropCache(): Promise<void> {
    await this.fleet.server.proc.stop("SIGKILL");
    this.#cacheGone = true;
    this.closeDb();
    await rm(this.cacheDir, { recursive: true, force: true });
  }

  /** Starts the server again with the same identity, ports and (now empty) cache directory. */
  restartServer(): void {
    this.fleet.server.restart();
    this.#cacheGone = false;
  }

  /** Every row of the group, soft-deleted ones included, oldest first. */
  rows(): FleetRow[] {
    return readFleetRows(this.db).filter((r) => r.group === FLEET_GROUP && !r.onDemand);
  }

  /** Live rows of the group, oldest first. */
  live(): FleetRow[] {
    return this.rows().filter((r) => r.deletedAt === undefined);
  }

  /** Every recorded decision. */
  decisions(): FleetDecision[] {
    return readFleetDecisions(this.db);
  }

  /** Agent processes of the group (dead ones included, with `alive` false). */
  async agents(): Promise<LocalAgent[]> {
    return (await readLocalAgents(this.fleet.stateDir)).filter((a) => a.group === FLEET_GROUP);
  }

  /** The instance records in the bucket (`shard/{shard}/instance/*.json`), by instance ID. */
  async records(): Promise<Map<string, Record<string, unknown>>> {
    const dir = join(this.fleet.bucket, "shard", FLEET_SHARD, "instance");
    const out = new Map<string, Record<string, unknown>>();
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (!name.endsWith(".json")) continue;
      const rec = JSON.parse(await readFile(join(dir, name), "utf8")) as Record<string, unknown>;
      out.set(String(rec.instance_id), rec);
    }
    return out;
  }

  /** The group's infra hash as the server computed it. */
  infraHash(): string | undefined {
    const r = this.db
      .prepare("SELECT infra_config_hash FROM groups WHERE tenant = ? AND group_key = ?")
      .get(FLEET_TENANT, FLEET_GROUP) as { infra_config_hash: string } | undefined;
    return r?.infra_config_hash;
  }

  /** The group's runtime hash as the server computed it. */
  runtimeHash(): string | undefined {
    const r = this.db
      .prepare("SELECT runtime_config_hash FROM groups WHERE tenant = ? AND group_key = ?")
      .get(FLEET_TENANT, FLEET_GROUP) as { runtime_config_hash: string } | undefined;
    return r?.runtime_config_hash;
  }

  /** The history check over everything the server recorded so far. */
  historyViolations(): string[] {
    return checkFleetHistory({
      rows: readFleetRows(this.db),
      decisions: this.decisions(),
      sizes: this.sizes,
    });
  }

  /**
   * Waits until `size` live instances are registered and reporting with the group's current
   * runtime hash, and as many agent processes run; returns the live rows.
   */
  async waitSettled(size: number, what = `${size} instances registered and reporting`) {
    let rows: FleetRow[] = [];
    await this.waitFor(what, async () => {
      rows = this.live();
      const hash = this.runtimeHash();
      if (rows.length !== size) return false;
      if (!rows.every((r) => r.registeredAt !== undefined && r.health?.config_hash === hash)) {
        return false;
      }
      const alive = (await this.agents()).filter((a) => a.alive);
      return alive.length === size;
    });
    return rows;
  }

  /** Waits for `cond` (bounded by {@link FLEET_WAIT_MS}); a timeout carries the fleet's recent logs. */
  async waitFor(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
    await waitFor(what, cond, FLEET_WAIT_MS).catch(async (err: unknown) => {
      throw new Error(`${String(err)}${await this.fleet.recent().catch(() => "")}`);
    });
  }

  /** `nstance-admin group scale` through the Operator API; records the size change. */
  async scale(size: number): Promise<void> {
    const prev = this.sizes.at(-1)!.size;
    this.samplerSize = Math.max(prev, size);
    this.sizes.push({ at: Date.now(), size });
    const r = await this.fleet.shardAdmin("group", "scale", FLEET_GROUP, String(size));
    if (r.code !== 0) throw new Error(`group scale exited ${r.code}: ${r.err}`);
  }

  /** Tells the sampler a scale-down has completed: count against the new size from now on. */
  settled(): void {
    this.samplerSize = this.sizes.at(-1)!.size;
  }

  /** `nstance-admin group status --json` of the group. */
  async groupStatus(): Promise<{ size: number; actual_size: number; provider_ids: string[] }> {
    const r = await this.fleet.shardAdmin("group", "status", FLEET_GROUP, "--json");
    if (r.code !== 0) throw new Error(`group status exited ${r.code}: ${r.err}`);
    const parsed = JSON.parse(r.out) as {
      results: Array<{ group: { size: number; actual_size: number; provider_ids: string[] } }>;
    };
    return parsed.results[0]!.group;
  }

  /** Edits the static config in the bucket and has the server reload it (`config refresh`). */
  async changeConfig(edits: Array<[JSONPath, unknown]>): Promise<void> {
    const path = join(this.fleet.bucket, "config", `${FLEET_SHARD}.jsonc`);
    let text = await readFile(path, "utf8");
    for (const [p, value] of edits) {
      text = applyEdits(text, modify(text, p, value, {}));
    }
    await writeFile(path, text);
    const r = await this.fleet.shardAdmin("config", "refresh");
    if (r.code !== 0) throw new Error(`config refresh exited ${r.code}: ${r.err}`);
  }

  /**
   * Stops the sampler, the server and every agent (the local provider over the state directory
   * finds them even when the test failed half-way), and removes the directory.
   */
  async stop(): Promise<void> {
    await this.sampler.stop();
    this.closeDb();
    await this.fleet.stop();
  }
}

/** Polls `cond` every `pollMs` until it holds for the whole of `forMs`; throws when it breaks. */
export async function holdsFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  forMs: number,
  pollMs = 250,
): Promise<void> {
  const until = Date.now() + forMs;
  while (Date.now() < until) {
    if (!(await cond())) throw new Error(`no longer true: ${what}`);
    await sleep(pollMs);
  }
}
