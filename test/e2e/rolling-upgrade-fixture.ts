// SPDX-License-Identifier: Apache-2.0
/**
 * Test support for the rolling-upgrade test (issue 8): an HA pair of real `nstance-server`
 * processes for one shard on file storage with the `local` provider (real agents, as in
 * {@link LocalFleet}), each server with its own cache; an {@link OperatorLoop} that keeps making
 * changes through the in-process admin CLI with both servers in `--servers`, as an operator
 * would; and a {@link LeadershipSampler} that counts leaders.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { runAdmin } from "../../src/admin/main.js";
import { captureIo } from "../../src/admin/testing.js";
import type { Db } from "../../src/db/database.js";
import { defaultAgentCommand, LocalProvider } from "../../src/providers/local/local-provider.js";
import { sleep } from "../../src/shared/sleep.js";
import { TEST_ENCRYPTION_KEY } from "../support/server-process.js";
import { STEADY_ELECTION, shardConfigText, writeShardConfig } from "../support/shard-fixture.js";
import {
  leadershipOf,
  type ShardServer,
  startShardServers,
  waitForSingleLeader,
} from "../support/shard-servers.js";
import { type AdminRun, FLEET_CLUSTER, FLEET_SHARD, FLEET_WAIT_MS } from "./local-fleet.js";
import {
  FLEET_EDITS,
  FLEET_GROUP,
  FLEET_REPORT_INTERVAL,
  FLEET_TENANT,
  type FleetRow,
  readFleetRows,
} from "./local-fleet-fixture.js";

/** How often the waits of this fixture poll HTTP endpoints. */
const POLL_MS = 200;

/** Polls `cond` every {@link POLL_MS} until it holds; throws naming `what` after `timeoutMs`. */
export async function pollUntil(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = FLEET_WAIT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

/** GET a path of a server's health listener: status (0 when nothing answers) and JSON body. */
export async function healthGet(
  s: ShardServer,
  path: string,
): Promise<{ status: number; body: Record<string, unknown> | undefined }> {
  try {
    const res = await fetch(`http://127.0.0.1:${s.ports.health}${path}`, {
      signal: AbortSignal.timeout(5_000),
    });
    const text = await res.text();
    let body: Record<string, unknown> | undefined;
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      body = undefined;
    }
    return { status: res.status, body };
  } catch {
    return { status: 0, body: undefined };
  }
}

/** Options for {@link HaFleet.start}. */
export interface HaFleetOptions {
  /** Prefix of the temp directory. */
  name: string;
  /** The static group's size. */
  size: number;
}

/** Two servers (s1, s2) of one shard, a static group of real agents, and an operator identity. */
export class HaFleet {
  readonly dir: string;
  readonly bucket: string;
  readonly stateDir: string;
  readonly identityDir: string;
  readonly servers: ShardServer[];
  readonly #dbs = new Map<string, BetterSqlite3.Database>();

  private constructor(dir: string, servers: ShardServer[]) {
    this.dir = dir;
    this.bucket = join(dir, "bucket");
    this.stateDir = join(dir, "local");
    this.identityDir = join(dir, "operator");
    this.servers = servers;
  }

  /** Writes the shard config, starts both servers, waits for one leader, mints an operator. */
  static async start(opts: HaFleetOptions): Promise<HaFleet> {
    const dir = await mkdtemp(join(tmpdir(), `nstance-e2e-${opts.name}-`));
    const bucket = join(dir, "bucket");
    const command = [
      "/usr/bin/env",
      `NSTANCE_METRICS_INTERVAL=${FLEET_REPORT_INTERVAL}`,
      ...defaultAgentCommand(),
    ];
    await writeShardConfig(
      bucket,
      await shardConfigText([
        ...STEADY_ELECTION,
        [["shard", "infra", "options"], { state_dir: join(dir, "local"), command }],
        ...FLEET_EDITS,
        [["groups", FLEET_TENANT, FLEET_GROUP, "size"], opts.size],
      ]),
    );
    const servers = await startShardServers({
      count: 2,
      workDir: dir,
      storageArgs: ["--storage", "file", "--bucket", bucket],
    });
    const fleet = new HaFleet(dir, servers);
    try {
      await waitForSingleLeader(servers, FLEET_WAIT_MS);
      const register = "cluster register-operator --encryption-key-env NSTANCE_ENCRYPTION_KEY";
      const reg = await fleet.admin([
        ...register.split(" "),
        ...["--storage", "file", "--bucket", bucket, "--identity-dir", fleet.identityDir],
      ]);
      if (reg.code !== 0) throw new Error(`register-operator exited ${reg.code}: ${reg.err}`);
    } catch (err) {
      await fleet.stop().catch(() => {});
      throw err;
    }
    return fleet;
  }

  /** The server with this ID. */
  server(id: string): ShardServer {
    const s = this.servers.find((x) => x.id === id);
    if (!s) throw new Error(`no server ${id}`);
    return s;
  }

  /** Runs nstance-admin in-process with the test encryption key in its environment. */
  async admin(argv: string[]): Promise<AdminRun> {
    const io = captureIo({ NSTANCE_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY });
    const code = await runAdmin(argv, io);
    return { code, out: io.out(), err: io.err() };
  }

  /** Runs a shard command against one server's Operator API with the operator identity. */
  shardAdmin(target: ShardServer, ...argv: string[]): Promise<AdminRun> {
    return this.admin([
      ...argv,
      "--servers",
      `${FLEET_SHARD}=localhost:${target.ports.operator}`,
      "--identity-dir",
      this.identityDir,
      "--timeout",
      "15s",
    ]);
  }

  /**
   * Runs a shard command with `--servers` naming both servers (the pair's HA set, s1 first), as
   * an operator of the pair would.
   */
  pairAdmin(...argv: string[]): Promise<AdminRun> {
    return this.admin([
      ...argv,
      "--servers",
      this.servers.map((s) => `${FLEET_SHARD}=localhost:${s.ports.operator}`).join(","),
      "--identity-dir",
      this.identityDir,
      "--timeout",
      "30s",
    ]);
  }

  /** A read-only handle on a server's SQLite cache, or undefined while it has none. */
  db(s: ShardServer): Db | undefined {
    let db = this.#dbs.get(s.id);
    if (!db) {
      try {
        db = new BetterSqlite3(join(this.dir, `cache-${s.id}`, "db", "nstance.db"), {
          readonly: true,
          fileMustExist: true,
        });
      } catch {
        return undefined;
      }
      this.#dbs.set(s.id, db);
    }
    return db;
  }

  /** Closes a server's database handle (before its restart). */
  closeDb(s: ShardServer): void {
    this.#dbs.get(s.id)?.close();
    this.#dbs.delete(s.id);
  }

  /** Every row of the static group in a server's cache, soft-deleted ones included. */
  rows(s: ShardServer): FleetRow[] {
    const db = this.db(s);
    if (!db) return [];
    return readFleetRows(db).filter((r) => r.group === FLEET_GROUP && !r.onDemand);
  }

  /** Stops a server gracefully (SIGTERM) and starts it again with the same ID, ports and cache. */
  async restart(s: ShardServer): Promise<void> {
    this.closeDb(s);
    const code = await s.proc.stop("SIGTERM", 30_000);
    if (code !== 0) throw new Error(`server ${s.id} exited ${String(code)} on SIGTERM`);
    s.restart();
  }

  /** The last log lines of both servers, for assertion messages. */
  recent(): string {
    return this.servers
      .map(
        (s) =>
          `\n--- ${s.id} ---\n${s.proc.logs
            .slice(-20)
            .map((l) => JSON.stringify(l))
            .join("\n")}`,
      )
      .join("");
  }

  /** Stops both servers, then every agent, and removes the directory. */
  async stop(): Promise<void> {
    for (const s of this.servers) this.closeDb(s);
    await Promise.all(this.servers.map((s) => s.proc.stop()));
    const local = new LocalProvider({ stateDir: this.stateDir, stopGraceMs: 2_000 });
    const running = await local.listInstances({ clusterId: FLEET_CLUSTER, shard: FLEET_SHARD });
    await Promise.all(running.map((i) => local.deleteInstance(i.instanceId, i.providerInstanceId)));
    await local.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** A loop that runs {@link BackgroundLoop.step} until stopped (the operator, the sampler). */
abstract class BackgroundLoop {
  #loop: Promise<void> | undefined;
  readonly #ctl = new AbortController();

  /** One round; `signal` aborts on stop. */
  protected abstract step(signal: AbortSignal): Promise<void>;

  /** Pause between two rounds. */
  protected abstract readonly pauseMs: number;

  /** Starts the loop. */
  start(): void {
    this.#loop ??= this.#run(this.#ctl.signal);
  }

  /** Lets the round in progress finish, then stops (idempotent). */
  async stop(): Promise<void> {
    this.#ctl.abort();
    await this.#loop;
  }

  async #run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.step(signal);
      await sleep(this.pauseMs, signal).catch(() => undefined);
    }
  }
}

/** One operator change: a single `nstance-admin group create` run. */
export interface OperatorCall {
  seq: number;
  group: string;
  /** When the run started and ended. */
  startedAt: number;
  endedAt?: number;
  /** Exit code and stderr of the run (undefined while it runs). */
  code?: number;
  err?: string;
}

/** Options for {@link OperatorLoop}. */
export interface OperatorLoopOptions {
  fleet: HaFleet;
  /** Pause between two calls. */
  intervalMs: number;
}

/**
 * Creates dynamic groups `op-{seq}` (size 0, var `seq`) one after another through the admin CLI,
 * as an operator would, with `--servers` naming both servers of the pair. Each call runs once: the
 * loop does not retry; finding the leader during a handover is the admin client's job.
 */
export class OperatorLoop extends BackgroundLoop {
  /** Every call so far, in order. */
  readonly calls: OperatorCall[] = [];
  protected readonly pauseMs: number;
  readonly #o: OperatorLoopOptions;

  constructor(opts: OperatorLoopOptions) {
    super();
    this.#o = opts;
    this.pauseMs = opts.intervalMs;
  }

  protected async step(): Promise<void> {
    const seq = this.calls.length + 1;
    const call: OperatorCall = { seq, group: `op-${seq}`, startedAt: Date.now() };
    this.calls.push(call);
    const r = await this.#o.fleet.pairAdmin(
      "group",
      "create",
      call.group,
      "--template",
      FLEET_GROUP,
      "--size",
      "0",
      "--var",
      `seq=${seq}`,
    );
    call.endedAt = Date.now();
    call.code = r.code;
    call.err = r.err.trim();
  }
}

/** Samples which servers claim the leadership until stopped. */
export class LeadershipSampler extends BackgroundLoop {
  /** Samples where more than one live server said it leads. */
  readonly violations: string[] = [];
  samples = 0;
  /** Samples in which no live server led (a handover in progress). */
  leaderless = 0;
  protected readonly pauseMs = POLL_MS;
  readonly #servers: readonly ShardServer[];

  constructor(servers: readonly ShardServer[]) {
    super();
    this.#servers = servers;
  }

  protected async step(): Promise<void> {
    const states = await Promise.all(this.#servers.map((s) => leadershipOf(s)));
    const leaders = this.#servers.filter((_, i) => states[i]?.role === "leader");
    if (leaders.length > 1) {
      this.violations.push(`two leaders at ${Date.now()}: ${JSON.stringify(states)}`);
    }
    if (leaders.length === 0) this.leaderless++;
    this.samples++;
  }
}
